"""Pull benchmark: puller.par against `skopeo copy ... oci:` on a local registry.

Starts the real registry on 127.0.0.1, pushes seeded images of four shapes,
then pulls each one with the puller and with skopeo in alternating runs
(fresh output directory each run, no cache) and reports median wall time,
the ratio puller/skopeo and the peak RSS of each from `/usr/bin/time -v`.

It reports and never gates: the exit status is 0 whatever the numbers are.
See bench/README.md for the method and the results.
"""
import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'bench', 'out')
KIB = 1024
MIB = 1024 * 1024
LAYER_MTIME = 1577836800  # 2020-01-01T00:00:00Z, as in testing/images.py
CHUNK = MIB
FLOOR = os.path.join(ROOT, 'bench', 'floor_pull.py')


@dataclasses.dataclass(frozen=True)
class Shape:
    layers: int
    layer_size: int  # uncompressed payload bytes per layer
    kind: str  # 'random', or 'mixed': half random, half text
    seed: int


SHAPES: Dict[str, Shape] = {
    'tiny': Shape(1, 1 * KIB, 'random', 100),
    'many': Shape(40, 256 * KIB, 'random', 200),
    'medium': Shape(5, 40 * MIB, 'random', 300),
    'large': Shape(4, 256 * MIB, 'mixed', 400),
}

# (what, limit) per shape; 'ratio' is median puller / median skopeo wall
# time of the same run, 'rss' the puller's largest peak RSS in MiB.
TARGETS: Dict[str, List[Tuple[str, float]]] = {
    'tiny': [('ratio', 3.0)],
    'many': [('ratio', 1.0)],
    'medium': [('ratio', 0.8)],
    'large': [('ratio', 0.8), ('rss', 64.0)],
}

# Images at most this big are built in memory by testing/images.py; larger
# ones are streamed through `gzip` to files.
IN_MEMORY_LIMIT = 16 * MIB


def make_shim() -> str:
    """A temporary folder in which `containerregistry` is the checkout."""
    shim = tempfile.mkdtemp(prefix='cr-bench-shim-')
    os.symlink(ROOT, os.path.join(shim, 'containerregistry'))
    return shim


# IMAGE GENERATION (not timed).

def _random_chunks(seed: int, size: int):
    """SIZE seeded pseudo-random bytes: AES-CTR over zeros, fast and fixed."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    key = hashlib.sha256(b'cr-bench-random-%d' % seed).digest()[:16]
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(CHUNK)
    left = size
    while left > 0:
        n = min(CHUNK, left)
        yield enc.update(zeros[:n])
        left -= n


_WORDS = ('alpha bravo charlie delta echo foxtrot golf hotel india juliet '
          'kilo lima mike november oscar papa quebec romeo sierra tango '
          'uniform victor whiskey xray yankee zulu').split()


def _text_chunks(seed: int, size: int):
    """SIZE bytes of seeded word text.

    Eight 1 MiB blocks of random words are emitted in seeded order, each
    rotated by a seeded offset: repeats are far beyond gzip's 32 KiB window,
    so the text compresses like text that never repeats.
    """
    rng = random.Random(seed)
    blocks = []
    for _ in range(8):
        words = rng.choices(_WORDS, k=CHUNK // 4)
        lines = [' '.join(words[i:i + 8]) for i in range(0, len(words), 8)]
        blocks.append(('\n'.join(lines) + '\n').encode()[:CHUNK])
    left = size
    while left > 0:
        block = blocks[rng.randrange(len(blocks))]
        at = rng.randrange(CHUNK)
        chunk = block[at:] + block[:at]
        n = min(CHUNK, left)
        yield chunk[:n]
        left -= n


def _layer_files(shape: Shape, index: int) -> List[Tuple[str, int, str]]:
    seed = shape.seed + index
    if shape.kind == 'mixed':
        half = shape.layer_size // 2
        return [('layer-%d/data.bin' % seed, half, 'random'),
                ('layer-%d/data.txt' % seed, shape.layer_size - half, 'text')]
    return [('layer-%d/data.bin' % seed, shape.layer_size, shape.kind)]


def _tar_header(name: str, size: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.mtime = LAYER_MTIME
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    return info.tobuf(tarfile.GNU_FORMAT, 'utf-8', 'surrogateescape')


def stream_layer(directory: str, shape: Shape, index: int,
                 level: int) -> Tuple[str, str, int]:
    """Writes layer INDEX of SHAPE gzipped into DIRECTORY, memory-bounded.

    The tar is produced chunk by chunk and piped through `gzip -n -LEVEL`.
    Returns (blob digest, diff_id, blob size); the blob file is named by
    the bare hex of its digest, as skopeo's `dir:` transport wants.
    """
    seed = shape.seed + index
    temp = os.path.join(directory, 'layer-%d.tmp' % index)
    diff = hashlib.sha256()
    with open(temp, 'wb') as out:
        gz = subprocess.Popen(['gzip', '-n', '-%d' % level, '-c'],
                              stdin=subprocess.PIPE, stdout=out)
    offset = 0

    def emit(data: bytes) -> None:
        nonlocal offset
        diff.update(data)
        gz.stdin.write(data)
        offset += len(data)

    emit(_tar_header('layer-%d' % seed, 0, directory=True))
    for name, size, kind in _layer_files(shape, index):
        emit(_tar_header(name, size))
        source = _random_chunks if kind == 'random' else _text_chunks
        for chunk in source(seed * 2 + (kind == 'text'), size):
            emit(chunk)
        emit(bytes(-size % tarfile.BLOCKSIZE))
    emit(bytes(2 * tarfile.BLOCKSIZE))
    emit(bytes(-offset % tarfile.RECORDSIZE))
    gz.stdin.close()
    if gz.wait() != 0:
        raise RuntimeError('gzip failed for layer %d' % index)
    blob = hashlib.sha256()
    with open(temp, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            blob.update(chunk)
    size = os.path.getsize(temp)
    os.replace(temp, os.path.join(directory, blob.hexdigest()))
    return 'sha256:' + blob.hexdigest(), 'sha256:' + diff.hexdigest(), size


def _dumps(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=3).encode()


def push_streamed(images, reg, repo: str, shape: Shape, work: str,
                  level: int) -> Tuple[str, List[str], int]:
    """Generates SHAPE on disk, pushes it as REPO:latest with skopeo.

    Returns (manifest digest, layer digests, total blob bytes).
    """
    d = tempfile.mkdtemp(prefix='image-', dir=work)
    try:
        workers = max(1, min(shape.layers, os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            layers = list(pool.map(lambda i: stream_layer(d, shape, i, level),
                                   range(shape.layers)))
        config = _dumps({
            'architecture': 'amd64', 'os': 'linux', 'created': images.CREATED,
            'config': {'Env': ['PATH=/usr/bin:/bin'], 'Cmd': ['/bin/true']},
            'rootfs': {'type': 'layers', 'diff_ids': [l[1] for l in layers]},
            'history': [{'created': images.CREATED, 'created_by': 'layer %d' % i}
                        for i in range(len(layers))],
        })
        config_digest = images.sha256(config)
        with open(os.path.join(d, config_digest.split(':')[1]), 'wb') as f:
            f.write(config)
        manifest = _dumps({
            'schemaVersion': 2,
            'mediaType': images.DOCKER_MANIFEST,
            'config': {'mediaType': images.DOCKER_CONFIG, 'size': len(config),
                       'digest': config_digest},
            'layers': [{'mediaType': images.DOCKER_LAYER, 'size': size,
                        'digest': digest} for digest, _, size in layers],
        })
        with open(os.path.join(d, 'manifest.json'), 'wb') as f:
            f.write(manifest)
        with open(os.path.join(d, 'version'), 'w') as f:
            f.write('Directory Transport Version: 1.1\n')
        env = images.skopeo_env()
        try:
            subprocess.run(['skopeo', '--insecure-policy', 'copy',
                            '--preserve-digests', '--dest-tls-verify=false',
                            'dir:' + d, 'docker://%s/%s:latest' % (reg.host, repo)],
                           check=True, env=env, capture_output=True, timeout=1800)
        finally:
            shutil.rmtree(env['HOME'], ignore_errors=True)
        served, _ = images.Client(reg).manifest(repo, 'latest')
        if served != manifest:
            raise RuntimeError('registry serves other manifest bytes for ' + repo)
        return (images.sha256(manifest), [l[0] for l in layers],
                sum(l[2] for l in layers) + len(config))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def push_shape(images, reg, name: str, work: str,
               level: int) -> Tuple[str, List[str], int]:
    shape = SHAPES[name]
    repo = 'bench/' + name
    if shape.layers * shape.layer_size <= IN_MEMORY_LIMIT and shape.kind == 'random':
        tars = [images.make_layer(shape.seed + i, shape.layer_size)
                for i in range(shape.layers)]
        pushed = images.push_built(reg, repo + ':latest', images.build_image(tars))
        return (pushed.digest, [l.digest for l in pushed.layers],
                sum(len(l.blob) for l in pushed.layers) + len(pushed.config))
    return push_streamed(images, reg, repo, shape, work, level)


# TIMING.

_TIME_FIELDS = {
    'Maximum resident set size (kbytes)': 'rss_kib',
    'User time (seconds)': 'user_s',
    'System time (seconds)': 'sys_s',
    'Percent of CPU this job got': 'cpu_percent',
}


def timed(cmd: List[str], env: dict, stat_path: str) -> dict:
    """Runs CMD under `/usr/bin/time -v`; wall time from perf_counter."""
    start = time.perf_counter()
    proc = subprocess.run(['/usr/bin/time', '-v', '-o', stat_path] + cmd,
                          env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    result = {'wall_s': round(wall, 4), 'rc': proc.returncode}
    with open(stat_path) as f:
        for line in f:
            key, _, value = line.strip().rpartition(': ')
            if key in _TIME_FIELDS:
                value = value.rstrip('%')
                result[_TIME_FIELDS[key]] = float(value) if '.' in value else int(value)
    if proc.returncode:
        raise RuntimeError('%s failed (%d): %s' % (
            cmd[0], proc.returncode, proc.stderr.decode(errors='replace')[-2000:]))
    return result


def check_puller(directory: str, digest: str, layers: List[str]) -> None:
    with open(os.path.join(directory, 'digest')) as f:
        got = f.read()
    if got != digest:
        raise RuntimeError('puller wrote digest %s, want %s' % (got, digest))
    for i, layer in enumerate(layers):
        with open(os.path.join(directory, '%03d.sha256' % i)) as f:
            if f.read() != layer.split(':')[1]:
                raise RuntimeError('puller layer %d is not %s' % (i, layer))


def check_skopeo(directory: str, layers: List[str]) -> None:
    blobs = os.path.join(directory, 'blobs', 'sha256')
    missing = [l for l in layers if not os.path.isfile(os.path.join(blobs, l.split(':')[1]))]
    if missing:
        raise RuntimeError('skopeo output lacks layers %s' % missing)


class Runner:
    """Builds the two commands for one image and runs them in fresh dirs."""

    def __init__(self, puller_cmd: List[str], puller_env: dict,
                 skopeo_env: dict, work: str, python: str):
        self.puller_cmd = puller_cmd
        self.puller_env = puller_env
        self.skopeo_env = skopeo_env
        self.work = work
        self.python = python

    def run(self, tool: str, ref: str, digest: str, layers: List[str]) -> dict:
        base = tempfile.mkdtemp(prefix='run-', dir=self.work)
        out = os.path.join(base, 'out')
        stat = os.path.join(base, 'time.txt')
        # Our own dirty pages (generated images, earlier outputs) must not be
        # written back while the next command is timed.
        os.sync()
        try:
            if tool == 'puller':
                result = timed(self.puller_cmd + ['--name', ref, '--directory', out],
                               self.puller_env, stat)
                check_puller(out, digest, layers)
            elif tool == 'floor':
                result = timed([self.python, FLOOR, ref, out], self.puller_env, stat)
                if not os.path.isfile(os.path.join(out, 'manifest.json')):
                    raise RuntimeError('floor pull wrote no manifest')
            else:
                result = timed(['skopeo', '--insecure-policy', 'copy',
                                '--src-tls-verify=false', 'docker://' + ref,
                                'oci:%s:latest' % out], self.skopeo_env, stat)
                check_skopeo(out, layers)
            return result
        finally:
            shutil.rmtree(base, ignore_errors=True)


def summarize(runs: List[dict]) -> dict:
    return {
        'median_s': round(statistics.median(r['wall_s'] for r in runs), 4),
        'min_s': round(min(r['wall_s'] for r in runs), 4),
        'max_s': round(max(r['wall_s'] for r in runs), 4),
        'max_rss_mib': round(max(r['rss_kib'] for r in runs) / KIB, 1),
        'median_rss_mib': round(statistics.median(r['rss_kib'] for r in runs) / KIB, 1),
        'median_cpu_s': round(statistics.median(r['user_s'] + r['sys_s'] for r in runs), 3),
        'runs': runs,
    }


def bench_shape(runner: Runner, ref: str, digest: str, layers: List[str],
                runs: int, tools: List[str]) -> dict:
    """One untimed warm-up each, then RUNS rounds, order reversed every round."""
    for tool in tools:
        runner.run(tool, ref, digest, layers)
    results: Dict[str, List[dict]] = {t: [] for t in tools}
    for i in range(runs):
        order = tools if i % 2 == 0 else tools[::-1]
        for tool in order:
            r = runner.run(tool, ref, digest, layers)
            r['round'] = i
            results[tool].append(r)
            print('    %-6s round %d: %7.3f s  %6.1f MiB' % (
                tool, i, r['wall_s'], r['rss_kib'] / KIB), flush=True)
    out = {t: summarize(results[t]) for t in tools}
    out['ratio'] = round(out['puller']['median_s'] / out['skopeo']['median_s'], 3)
    # Ratio within each round: shows how much of the median ratio is noise.
    out['round_ratios'] = sorted(
        round(p['wall_s'] / s['wall_s'], 3)
        for p, s in zip(results['puller'], results['skopeo']))
    if 'floor' in out:
        out['floor_ratio'] = round(out['floor']['median_s'] / out['skopeo']['median_s'], 3)
    return out


def judge(name: str, result: dict) -> List[dict]:
    out = []
    for what, limit in TARGETS.get(name, []):
        value = result['ratio'] if what == 'ratio' else result['puller']['max_rss_mib']
        out.append({'what': what, 'limit': limit, 'value': value,
                    'pass': value <= limit})
    return out


# PULLER SELECTION.

def get_puller(args, shim: str, work: str) -> Tuple[List[str], dict, dict]:
    """The puller command, its environment and a description for the report.

    Falling back to source mode may change `args.python` to an interpreter
    that has the puller's dependencies installed.
    """
    env = dict(os.environ)
    python = args.python
    if not args.source:
        par = args.par
        built = False
        if par is None:
            print('Building //:puller.par ...', flush=True)
            proc = subprocess.run(['bazel', 'build', '//:puller.par'], cwd=ROOT,
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                par = os.path.join(ROOT, 'bazel-bin', 'puller.par')
                built = True
            else:
                print('bazel build //:puller.par failed; timing the puller in '
                      'source mode instead:\n' + proc.stderr[-1500:], flush=True)
        if par is not None:
            copy = os.path.join(work, 'puller.par')
            shutil.copyfile(par, copy)
            with open(copy, 'rb') as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            return ([python, copy], env,
                    {'mode': 'par', 'par': os.path.abspath(par), 'built': built,
                     'par_sha256': sha, 'par_bytes': os.path.getsize(copy)})
    env['PYTHONPATH'] = shim + (os.pathsep + env['PYTHONPATH']
                                if env.get('PYTHONPATH') else '')
    if subprocess.run([python, '-c', 'import urllib3'], env=env,
                      capture_output=True).returncode:
        python = args.python = os.path.realpath(sys.executable)
    return ([python, '-m', 'containerregistry.tools.fast_puller'], env,
            {'mode': 'source', 'pythonpath': shim})


def machine_info(python: str) -> dict:
    version = subprocess.run([python, '-c', 'import sys; print(sys.version.split()[0])'],
                             capture_output=True, text=True).stdout.strip()
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            model = next((l.split(':', 1)[1].strip() for l in f
                          if l.startswith('model name')), '')
    except OSError:
        pass
    skopeo = subprocess.run(['skopeo', '--version'], capture_output=True,
                            text=True).stdout.strip()
    return {'nproc': os.cpu_count(), 'cpu': model, 'kernel': platform.release(),
            'python': python, 'python_version': version, 'skopeo': skopeo,
            'mem_gib': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1)}


def git_head() -> str:
    proc = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                          capture_output=True, text=True)
    return proc.stdout.strip()


def print_table(results: Dict[str, dict]) -> None:
    head = ('shape', 'blob MB', 'puller s', 'skopeo s', 'ratio',
            'puller MiB', 'skopeo MiB')
    floor = any('floor' in r for r in results.values())
    line = '\n%-7s %8s %9s %9s %6s %11s %11s' % head
    print(line + ('   floor s  ratio' if floor else ''))
    for name, r in results.items():
        line = '%-7s %8.1f %9.3f %9.3f %6.2f %11.1f %11.1f' % (
            name, r['blob_bytes'] / 1e6, r['puller']['median_s'],
            r['skopeo']['median_s'], r['ratio'], r['puller']['max_rss_mib'],
            r['skopeo']['max_rss_mib'])
        if 'floor' in r:
            line += ' %9.3f %6.2f' % (r['floor']['median_s'], r['floor_ratio'])
        print(line)
    print()
    for name, r in results.items():
        for t in r['targets']:
            if t['what'] == 'ratio':
                text = 'time ratio %.2f <= %.1f' % (t['value'], t['limit'])
            else:
                text = 'puller peak RSS %.1f MiB <= %.0f MiB' % (t['value'], t['limit'])
            print('%-4s %-7s %s' % ('PASS' if t['pass'] else 'MISS', name, text))


def default_python() -> str:
    system = '/usr/bin/python3'
    if os.access(system, os.X_OK):
        proc = subprocess.run([system, '-c', 'import sys; print(sys.version_info >= (3, 10))'],
                              capture_output=True, text=True)
        if proc.stdout.strip() == 'True':
            return system
    return os.path.realpath(sys.executable)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--shapes', default=','.join(SHAPES),
                   help='comma-separated shapes out of %s' % ', '.join(SHAPES))
    p.add_argument('--runs', type=int, default=5,
                   help='timed runs of each tool per shape (default 5)')
    p.add_argument('--par', help='time this puller.par instead of building one')
    p.add_argument('--source', action='store_true',
                   help='time `python -m containerregistry.tools.fast_puller` '
                        'from the checkout instead of a .par')
    p.add_argument('--python',
                   help='interpreter that runs the puller (default: '
                        '/usr/bin/python3 if it is 3.10+ and a .par is timed, '
                        'else the real path of the one running this script; '
                        'never a pyenv shim)')
    p.add_argument('--floor', action='store_true',
                   help='also time bench/floor_pull.py, a minimal stdlib pull')
    p.add_argument('--gzip-level', type=int, default=6,
                   help='gzip level of generated medium/large layers (default 6)')
    p.add_argument('--json', default=os.path.join(OUT_DIR, 'pull.json'),
                   help='where to write the result (default bench/out/pull.json)')
    args = p.parse_args(argv)
    shapes = [s for s in args.shapes.split(',') if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        p.error('unknown shapes %s; choose from %s' % (unknown, ', '.join(SHAPES)))
    if args.runs < 1:
        p.error('--runs must be at least 1')
    args.shapes = shapes
    if args.python is None:
        # Source mode needs this interpreter's site-packages (urllib3, ...).
        args.python = (os.path.realpath(sys.executable) if args.source
                       else default_python())
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    shim = make_shim()
    sys.path.insert(0, shim)
    from containerregistry.testing import images
    from containerregistry.testing import registry

    work = tempfile.mkdtemp(prefix='cr-bench-pull-')
    reg = None
    skopeo_env = images.skopeo_env()
    try:
        puller_cmd, puller_env, puller_info = get_puller(args, shim, work)
        info = {
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'git_head': git_head(),
            'machine': machine_info(args.python),
            'puller': puller_info,
            'puller_cmd': puller_cmd,
            'skopeo_cmd': ['skopeo', '--insecure-policy', 'copy',
                           '--src-tls-verify=false', 'docker://REF', 'oci:DIR:latest'],
            'runs': args.runs,
            'order': 'one untimed warm-up each, then rounds alternating '
                     'puller,skopeo(,floor) and the reverse; sync before each run',
            'targets': {k: dict(v) for k, v in TARGETS.items()},
        }
        print('puller: %s (%s)' % (' '.join(puller_cmd), puller_info['mode']))
        reg = registry.start_registry()
        runner = Runner(puller_cmd, puller_env, skopeo_env, work, args.python)
        tools = ['puller', 'skopeo'] + (['floor'] if args.floor else [])
        results: Dict[str, dict] = {}
        for name in args.shapes:
            t0 = time.perf_counter()
            digest, layers, size = push_shape(images, reg, name, work, args.gzip_level)
            gen_s = time.perf_counter() - t0
            print('%s: %d layers, %.1f MB of blobs, generated and pushed in %.1f s'
                  % (name, len(layers), size / 1e6, gen_s), flush=True)
            ref = '%s/bench/%s:latest' % (reg.host, name)
            load = os.getloadavg()
            result = bench_shape(runner, ref, digest, layers, args.runs, tools)
            result.update({'layers': len(layers), 'blob_bytes': size,
                           'manifest_digest': digest,
                           'shape': dataclasses.asdict(SHAPES[name]),
                           'loadavg_before': [round(x, 2) for x in load],
                           'loadavg_after': [round(x, 2) for x in os.getloadavg()],
                           'generate_push_s': round(gen_s, 1)})
            result['targets'] = judge(name, result)
            results[name] = result
        info['shapes'] = results
        print_table(results)
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(info, f, indent=2)
            f.write('\n')
        print('\nWrote %s' % args.json)
    finally:
        if reg is not None:
            reg.stop()
        shutil.rmtree(skopeo_env['HOME'], ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shim, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
