"""What the benchmarks in bench/ share: seeded images, timing, the tools.

Images are deterministic: tar headers from `tarfile`, payload from AES-CTR
over zeros (seeded key) and seeded word text, 1 MiB at a time, so memory
stays flat whatever the layer size. Commands are timed as whole processes
(start-up and exit count) under `/usr/bin/time -v` for CPU and peak RSS.
"""
import argparse
import dataclasses
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'bench', 'out')
KIB = 1024
MIB = 1024 * 1024
LAYER_MTIME = 1577836800  # 2020-01-01T00:00:00Z, as in testing/images.py
CREATED = '2020-01-01T00:00:00Z'
CHUNK = MIB

DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json'
DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip'


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


def make_shim() -> str:
    """A temporary folder in which `containerregistry` is the checkout."""
    shim = tempfile.mkdtemp(prefix='cr-bench-shim-')
    os.symlink(ROOT, os.path.join(shim, 'containerregistry'))
    return shim


# IMAGE GENERATION (never timed).

def _random_chunks(seed: int, size: int) -> Iterator[bytes]:
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


def _text_chunks(seed: int, size: int) -> Iterator[bytes]:
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


def layer_files(shape: Shape, index: int) -> List[Tuple[str, int, str]]:
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


def layer_tar(shape: Shape, index: int) -> Iterator[bytes]:
    """The uncompressed tar of layer INDEX of SHAPE, in chunks of <= 1 MiB."""
    seed = shape.seed + index
    offset = 0
    header = _tar_header('layer-%d' % seed, 0, directory=True)
    offset += len(header)
    yield header
    for name, size, kind in layer_files(shape, index):
        header = _tar_header(name, size)
        offset += len(header)
        yield header
        source = _random_chunks if kind == 'random' else _text_chunks
        for chunk in source(seed * 2 + (kind == 'text'), size):
            offset += len(chunk)
            yield chunk
        pad = bytes(-size % tarfile.BLOCKSIZE)
        offset += len(pad)
        yield pad
    end = bytes(2 * tarfile.BLOCKSIZE)
    offset += len(end)
    yield end
    yield bytes(-offset % tarfile.RECORDSIZE)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            h.update(chunk)
    return 'sha256:' + h.hexdigest()


def stream_layer(directory: str, shape: Shape, index: int, level: int,
                 keep_tar: Optional[str] = None) -> Tuple[str, str, int]:
    """Writes layer INDEX of SHAPE gzipped into DIRECTORY, memory-bounded.

    The tar is produced chunk by chunk and piped through `gzip -n -LEVEL`
    (and also written to KEEP_TAR, if given). Returns (blob digest,
    diff_id, blob size); the blob file is named by the bare hex of its
    digest, as skopeo's `dir:` transport wants.
    """
    temp = os.path.join(directory, 'layer-%d.tmp' % index)
    diff = hashlib.sha256()
    with open(temp, 'wb') as out:
        gz = subprocess.Popen(['gzip', '-n', '-%d' % level, '-c'],
                              stdin=subprocess.PIPE, stdout=out)
    raw = open(keep_tar, 'wb') if keep_tar else None
    try:
        for chunk in layer_tar(shape, index):
            diff.update(chunk)
            gz.stdin.write(chunk)
            if raw:
                raw.write(chunk)
    finally:
        if raw:
            raw.close()
        gz.stdin.close()
    if gz.wait() != 0:
        raise RuntimeError('gzip failed for layer %d' % index)
    digest = file_sha256(temp)
    size = os.path.getsize(temp)
    os.replace(temp, os.path.join(directory, digest.split(':')[1]))
    return digest, 'sha256:' + diff.hexdigest(), size


def dumps(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=3).encode()


@dataclasses.dataclass
class DirImage:
    """An image written in skopeo's `dir:` layout (blobs named by hex)."""
    directory: str
    manifest: bytes
    config: bytes
    config_digest: str
    layers: List[Tuple[str, str, int]]  # (digest, diff_id, size), base first

    @property
    def digest(self) -> str:
        return 'sha256:' + hashlib.sha256(self.manifest).hexdigest()

    @property
    def layer_digests(self) -> List[str]:
        return [l[0] for l in self.layers]

    @property
    def blob_bytes(self) -> int:
        return sum(l[2] for l in self.layers) + len(self.config)

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.directory, digest.split(':', 1)[1])


def write_dir_image(directory: str, shape: Shape, level: int,
                    raw_tars: Optional[str] = None) -> DirImage:
    """Generates SHAPE into DIRECTORY as a Docker schema 2 `dir:` image.

    Layers are gzipped on one thread per CPU. With RAW_TARS (a directory),
    each layer's uncompressed tar is also kept there as NNN.tar.
    """
    import concurrent.futures
    os.makedirs(directory, exist_ok=True)
    workers = max(1, min(shape.layers, os.cpu_count() or 1))

    def one(i: int) -> Tuple[str, str, int]:
        keep = os.path.join(raw_tars, '%03d.tar' % i) if raw_tars else None
        return stream_layer(directory, shape, i, level, keep)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        layers = list(pool.map(one, range(shape.layers)))
    config = dumps({
        'architecture': 'amd64', 'os': 'linux', 'created': CREATED,
        'config': {'Env': ['PATH=/usr/bin:/bin'], 'Cmd': ['/bin/true']},
        'rootfs': {'type': 'layers', 'diff_ids': [l[1] for l in layers]},
        'history': [{'created': CREATED, 'created_by': 'layer %d' % i}
                    for i in range(len(layers))],
    })
    config_digest = 'sha256:' + hashlib.sha256(config).hexdigest()
    with open(os.path.join(directory, config_digest.split(':')[1]), 'wb') as f:
        f.write(config)
    manifest = dumps({
        'schemaVersion': 2,
        'mediaType': DOCKER_MANIFEST,
        'config': {'mediaType': DOCKER_CONFIG, 'size': len(config),
                   'digest': config_digest},
        'layers': [{'mediaType': DOCKER_LAYER, 'size': size, 'digest': digest}
                   for digest, _, size in layers],
    })
    with open(os.path.join(directory, 'manifest.json'), 'wb') as f:
        f.write(manifest)
    with open(os.path.join(directory, 'version'), 'w') as f:
        f.write('Directory Transport Version: 1.1\n')
    return DirImage(directory, manifest, config, config_digest, layers)


def write_fast_layout(image: DirImage, directory: str) -> List[str]:
    """The puller's fast layout of IMAGE in DIRECTORY, blobs hardlinked.

    Returns the pusher/flatten arguments `--config ... --digest ... --layer ...`.
    """
    os.makedirs(directory, exist_ok=True)
    config = os.path.join(directory, 'config.json')
    os.link(image.blob_path(image.config_digest), config)
    args = ['--config', config]
    for i, (digest, _, _) in enumerate(image.layers):
        sha = os.path.join(directory, '%03d.sha256' % i)
        with open(sha, 'w') as f:
            f.write(digest.split(':')[1])
        layer = os.path.join(directory, '%03d.tar.gz' % i)
        os.link(image.blob_path(digest), layer)
        args += ['--digest', sha, '--layer', layer]
    return args


# TIMING.

_TIME_FIELDS = {
    'Maximum resident set size (kbytes)': 'rss_kib',
    'User time (seconds)': 'user_s',
    'System time (seconds)': 'sys_s',
    'Percent of CPU this job got': 'cpu_percent',
}


def timed(cmd: List[str], env: Optional[dict], stat_path: str) -> dict:
    """Runs CMD under `/usr/bin/time -v`; wall time from perf_counter.

    Raises RuntimeError if CMD fails. The load average just before the run
    is recorded with it.
    """
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(['/usr/bin/time', '-v', '-o', stat_path] + cmd,
                          env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    result = {'wall_s': round(wall, 4), 'rc': proc.returncode,
              'load1': round(load, 2)}
    with open(stat_path) as f:
        for line in f:
            key, _, value = line.strip().rpartition(': ')
            if key in _TIME_FIELDS:
                value = value.rstrip('%')
                result[_TIME_FIELDS[key]] = float(value) if '.' in value else int(value)
    if proc.returncode:
        raise RuntimeError('%s failed (%d): %s' % (
            ' '.join(cmd[:3]), proc.returncode,
            proc.stderr.decode(errors='replace')[-2000:]))
    return result


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


def alternate(tools: List[str], runs: int, run_one: Callable[[str], dict],
              warmup: bool = True) -> Dict[str, List[dict]]:
    """One untimed warm-up per tool, then RUNS rounds, reversed every round.

    RUN_ONE(tool) runs one timed command and returns its `timed` result.
    """
    for tool in tools if warmup else []:
        run_one(tool)
    results: Dict[str, List[dict]] = {t: [] for t in tools}
    for i in range(runs):
        order = tools if i % 2 == 0 else tools[::-1]
        for tool in order:
            r = run_one(tool)
            r['round'] = i
            results[tool].append(r)
            print('    %-10s round %d: %7.3f s  %6.1f MiB  load %.2f' % (
                tool, i, r['wall_s'], r['rss_kib'] / KIB, r['load1']),
                flush=True)
    return results


def round_ratios(a: List[dict], b: List[dict]) -> List[float]:
    """Wall time of A over B inside each round, sorted: shows the noise."""
    return sorted(round(x['wall_s'] / y['wall_s'], 3) for x, y in zip(a, b))


def compare(results: Dict[str, List[dict]], tool: str,
            reference: str = 'skopeo') -> dict:
    """Each command's summary, and TOOL's (and the floor's) ratio to REFERENCE.

    Ratios are of medians of the same run; `round_ratios` are those inside
    each round, to show how much of the median ratio is noise.
    """
    out = {t: summarize(runs) for t, runs in results.items()}
    ref = out[reference]['median_s']
    out['ratio'] = round(out[tool]['median_s'] / ref, 3)
    out['round_ratios'] = round_ratios(results[tool], results[reference])
    if 'floor' in out:
        out['floor_ratio'] = round(out['floor']['median_s'] / ref, 3)
    if 'baseline' in out:
        out['baseline_ratio'] = round(out['baseline']['median_s'] / ref, 3)
    versus_baseline(out, results, tool)
    return out


def versus_baseline(out: dict, results: Dict[str, List[dict]], tool: str) -> None:
    """TOOL against `baseline` (its earlier build), if RESULTS has one.

    Adds to OUT (the summaries of RESULTS) TOOL's median over the
    baseline's (`after_before`), the same inside each round, and both peak
    RSS.
    """
    if 'baseline' not in results:
        return
    out['after_before'] = round(out[tool]['median_s'] / out['baseline']['median_s'], 3)
    out['round_after_before'] = round_ratios(results[tool], results['baseline'])
    out['rss_after_before_mib'] = [out[tool]['max_rss_mib'],
                                   out['baseline']['max_rss_mib']]


BASELINE_HEAD = '  before s b.ratio  after/before (rounds)  before MiB'


def baseline_cells(result: dict) -> str:
    """The baseline's columns of a row of a printed table ('' without one)."""
    if 'baseline' not in result:
        return ''
    rounds = result['round_after_before']
    return ' %9.3f %7.2f %7.3f (%.2f-%.2f) %11.1f' % (
        result['baseline']['median_s'], result['baseline_ratio'],
        result['after_before'], rounds[0], rounds[-1],
        result['baseline']['max_rss_mib'])


def judge_ratio_rss(targets: List[Tuple[str, float]], result: dict,
                    tool: str) -> List[dict]:
    """TARGETS of ('ratio', most) or ('rss', most MiB) checked on RESULT."""
    out = []
    for what, limit in targets:
        value = result['ratio'] if what == 'ratio' else result[tool]['max_rss_mib']
        out.append({'what': what, 'limit': limit, 'value': value,
                    'pass': value <= limit})
    return out


# THE TOOLS.

def build_par(name: str, given: Optional[str], work: str,
              prefix: str = '') -> Tuple[Optional[str], dict]:
    """A private copy, WORK/PREFIX+NAME.par, of GIVEN or of `bazel build //:NAME.par`.

    Returns (path, description), or (None, description) when the build
    failed and the caller should fall back to source mode.
    """
    par = given
    built = False
    if par is None:
        print('Building //:%s.par ...' % name, flush=True)
        proc = subprocess.run(['bazel', 'build', '//:%s.par' % name], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print('bazel build //:%s.par failed; timing the tool in source mode '
                  'instead:\n%s' % (name, proc.stderr[-1500:]), flush=True)
            return None, {'mode': 'source', 'build_error': proc.stderr[-1500:]}
        par = os.path.join(ROOT, 'bazel-bin', '%s.par' % name)
        built = True
    copy = os.path.join(work, '%s%s.par' % (prefix, name))
    shutil.copyfile(par, copy)
    return copy, {'mode': 'par', 'par': os.path.abspath(par), 'built': built,
                  'par_sha256': file_sha256(copy).split(':')[1],
                  'par_bytes': os.path.getsize(copy)}


def tool_command(name: str, module: str, args, shim: str, work: str,
                 par: Optional[str] = None) -> Tuple[List[str], dict, dict]:
    """(command, environment, description) that runs tool NAME.

    The .par (PAR, or built) unless ARGS.source is set or the build fails;
    then `python -m containerregistry.tools.MODULE` with the checkout on
    PYTHONPATH through SHIM. ARGS.python runs either.
    """
    env = dict(os.environ)
    if not args.source:
        par, info = build_par(name, par, work)
        if par is not None:
            return [args.python, par], env, info
    else:
        info = {'mode': 'source'}
    env['PYTHONPATH'] = shim + (os.pathsep + env['PYTHONPATH']
                                if env.get('PYTHONPATH') else '')
    info['pythonpath'] = shim
    return [args.python, '-m', 'containerregistry.tools.' + module], env, info


def baseline_command(name: str, par: str, args, work: str) -> Tuple[List[str], dict]:
    """(command, description) that runs PAR, an earlier build of NAME.par.

    It is timed as one more command, `baseline`, in the same rounds as the
    tool, so the two builds are compared under the same load.
    """
    copy, info = build_par(name, par, work, 'baseline-')
    return [args.python, copy], info


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


def default_python() -> str:
    """/usr/bin/python3 if it is 3.10+, else the real path of this one."""
    system = '/usr/bin/python3'
    if os.access(system, os.X_OK):
        proc = subprocess.run([system, '-c', 'import sys; print(sys.version_info >= (3, 10))'],
                              capture_output=True, text=True)
        if proc.stdout.strip() == 'True':
            return system
    return os.path.realpath(sys.executable)


def now_utc() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def write_json(path: str, info: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(info, f, indent=2)
        f.write('\n')
    print('\nWrote %s' % path)


def benchmark_parser(doc: str, noun: str, choices: List[str], tool: str,
                     json_name: str) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark here takes.

    NOUN names what is chosen (`shapes`, `groups`) out of CHOICES; TOOL is
    what runs under --python; results go to bench/out/JSON_NAME.
    """
    p = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    p.add_argument('--' + noun, default=','.join(choices),
                   help='comma-separated %s out of %s' % (noun, ', '.join(choices)))
    p.add_argument('--runs', type=int, default=5,
                   help='timed runs of each command (default 5)')
    p.add_argument('--python',
                   help='interpreter that runs the %s (default: '
                        '/usr/bin/python3 if it is 3.10+, else the real path '
                        'of the one running this script; never a pyenv shim)'
                   % tool)
    p.add_argument('--gzip-level', type=int, default=6,
                   help='gzip level of the generated layers (default 6)')
    p.add_argument('--json', default=os.path.join(OUT_DIR, json_name),
                   help='where to write the result (default bench/out/%s)'
                   % json_name)
    return p


def registry_tool_parser(doc: str, tool: str, module: str, floor: str,
                         choices: List[str], json_name: str) -> argparse.ArgumentParser:
    """benchmark_parser plus the flags of the registry benchmarks (pull, push).

    TOOL is `puller` or `pusher`, MODULE its module under tools/, FLOOR the
    minimal stdlib client in bench/ that `--floor` also times.
    """
    p = benchmark_parser(doc, 'shapes', choices, tool, json_name)
    p.add_argument('--par', help='time this %s.par instead of building one' % tool)
    p.add_argument('--source', action='store_true',
                   help='time `python -m containerregistry.tools.%s` '
                        'from the checkout instead of a .par' % module)
    p.add_argument('--baseline-par',
                   help='also time this earlier build of %s.par in the same rounds '
                        'and report the after/before ratio' % tool)
    p.add_argument('--floor', action='store_true',
                   help='also time bench/%s, a minimal stdlib %s' % (floor, tool[:-2]))
    return p


def check_benchmark_args(p: argparse.ArgumentParser, args: argparse.Namespace,
                         noun: str, choices: List[str]) -> argparse.Namespace:
    """Turns the NOUN list into a list, checks it and --runs, fills --python."""
    picked = [s for s in getattr(args, noun).split(',') if s]
    unknown = [s for s in picked if s not in choices]
    if unknown or not picked:
        p.error('unknown %s %s; choose from %s' % (noun, unknown, ', '.join(choices)))
    if args.runs < 1:
        p.error('--runs must be at least 1')
    setattr(args, noun, picked)
    if args.python is None:
        args.python = default_python()
    return args


def print_targets(results: Dict[str, dict], tool: str) -> None:
    """One PASS/MISS line per target of each result."""
    for name, r in results.items():
        for t in r['targets']:
            if t['what'] == 'ratio':
                text = 'time ratio %.2f <= %.1f' % (t['value'], t['limit'])
            else:
                text = '%s peak RSS %.1f MiB <= %.0f MiB' % (tool, t['value'], t['limit'])
            print('%-4s %-7s %s' % ('PASS' if t['pass'] else 'MISS', name, text))
