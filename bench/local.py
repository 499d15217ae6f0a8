"""Importer and flatten benchmarks on the `large` image (4 x 256 MiB layers).

No registry: both tools work on local files. The image is generated once
(gzip -6 layers, half random, half word text) together with each layer's
uncompressed tar, then packed, streaming, into two docker-save tarballs:
one whose layers are the gzipped blobs, one whose layers are plain tars.
Three groups of commands then run in alternating rounds:

- import-gz: `importer.par --format tar.gz` on the gzipped tarball against
  `cp` of that tarball into the output directory (the cost of moving the
  same bytes; cp copies inside the kernel); for information also `cat` of
  it into a file (the bytes pass through a process),
  `importer.par --format tar` (rules_docker's default, which writes the
  layers inflated), and `floor_import.py` with and without `--no-inflate`
  (the least an import that checks CRCs and diff_ids must do, and the same
  without those checks), and with `--zlib-ng` (inflating with the zlib-ng
  the importer .par carries, as the importer does).
- import-raw: `importer.par --format tar.gz` on the plain tarball, which
  must gzip every layer at level 9, against `gzip -9 -n` of the same layer
  tars, one after the other on one core. No warm-up, and fewer rounds
  (`--raw-runs`): one round takes minutes.
- flatten: `flatten.par` on the image's fast layout against `gzip -dc` of
  its layers into one file (the inflating any flatten has to do, once).

It reports and never gates: the exit status is 0 whatever the numbers are.
See bench/README.md for the method and the results.
"""
import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import common
from common import MIB, SHAPES

GROUPS = ['import-gz', 'flatten', 'import-raw']
FLOOR_IMPORT = os.path.join(common.ROOT, 'bench', 'floor_import.py')

# Per group: (reference tool, what, limit). 'speed' is the tool's MB/s over
# the reference's MB/s (same bytes, same round), 'rss' the tool's peak RSS.
TARGETS: Dict[str, List[Tuple[str, float]]] = {
    'import-gz': [('speed', 0.5), ('rss', 64.0)],
    'import-raw': [('speed', 1.8), ('rss', 64.0)],
    'flatten': [('rss', 64.0)],
}
# The tool judged in each group, and the reference it is compared with.
MAIN = {'import-gz': ('importer', 'cp'), 'import-raw': ('importer', 'gzip -9'),
        'flatten': ('flatten', 'gzip -dc')}


def docker_save(path: str, image: common.DirImage, layer_files: List[str]) -> int:
    """Writes a docker-save tarball of IMAGE whose layers are LAYER_FILES.

    Streams every file into the tar (tarfile copies in chunks). Returns
    the tarball's size.
    """
    config_name = image.config_digest.split(':')[1] + '.json'
    members = ['%s/layer.tar' % diff_id.split(':')[1] for _, diff_id, _ in image.layers]
    manifest = json.dumps([{'Config': config_name, 'RepoTags': ['bench/large:latest'],
                            'Layers': members}]).encode()

    def add(tar: tarfile.TarFile, name: str, size: int, reader) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = common.LAYER_MTIME
        tar.addfile(info, reader)

    with open(path, 'wb') as out:
        with tarfile.open(fileobj=out, mode='w', format=tarfile.GNU_FORMAT,
                          copybufsize=MIB) as tar:
            for member, source in zip(members, layer_files):
                with open(source, 'rb') as f:
                    add(tar, member, os.path.getsize(source), f)
            add(tar, config_name, len(image.config), io.BytesIO(image.config))
            add(tar, 'manifest.json', len(manifest), io.BytesIO(manifest))
    return os.path.getsize(path)


def check_import(out: str, image: common.DirImage, fmt: str, same_blobs: bool) -> None:
    """The importer wrote a complete layout; gzipped input stays byte for byte."""
    if not os.path.isfile(os.path.join(out, 'digest')):
        raise RuntimeError('the importer wrote no digest file')
    with open(os.path.join(out, 'config.json'), 'rb') as f:
        if f.read() != image.config:
            raise RuntimeError('the importer wrote another config')
    manifest = json.load(open(os.path.join(out, 'manifest.json')))
    digests = [l['digest'] for l in manifest['layers']]
    if same_blobs and digests != image.layer_digests:
        raise RuntimeError('gzipped layers changed on import: %s' % digests)
    for i, (_, diff_id, _) in enumerate(image.layers):
        with open(os.path.join(out, '%03d.sha256' % i)) as f:
            hex_ = f.read()
        want = (diff_id if fmt == 'tar' else digests[i]).split(':')[1]
        if hex_ != want:
            raise RuntimeError('%03d.sha256 holds %s, want %s' % (i, hex_, want))
        ext = 'tar' if fmt == 'tar' else 'tar.gz'
        if not os.path.isfile(os.path.join(out, '%03d.%s' % (i, ext))):
            raise RuntimeError('the importer wrote no %03d.%s' % (i, ext))


def check_floor(out: str, image: common.DirImage) -> None:
    """floor_import.py wrote each layer and its digest."""
    for i, digest in enumerate(image.layer_digests):
        with open(os.path.join(out, '%03d.sha256' % i)) as f:
            if 'sha256:' + f.read() != digest:
                raise RuntimeError('floor_import.py: wrong %03d.sha256' % i)
        if os.path.getsize(os.path.join(out, '%03d.tar.gz' % i)) != image.layers[i][2]:
            raise RuntimeError('floor_import.py: wrong %03d.tar.gz' % i)


def check_flatten(path: str, image: common.DirImage, shape: common.Shape) -> None:
    """The flattened tar holds every layer's directory and files, sized right."""
    want = {}
    for i in range(shape.layers):
        want['layer-%d' % (shape.seed + i)] = 0
        for name, size, _ in common.layer_files(shape, i):
            want[name] = size
    got = {}
    with tarfile.open(path, 'r:') as tar:
        for info in tar:
            got[info.name] = info.size
    if got != want:
        raise RuntimeError('flatten output lists %s, want %s' % (got, want))


class Group:
    """Commands compared in one group, each run into a fresh directory."""

    def __init__(self, name: str, work: str,
                 commands: Dict[str, Callable[[str], Tuple[List[str], dict]]],
                 checks: Dict[str, Callable[[str], None]], data_bytes: int,
                 warmup: bool = True):
        self.name = name
        self.warmup = warmup
        self.work = work
        self.commands = commands
        self.checks = checks
        self.data_bytes = data_bytes
        self.failures: List[dict] = []

    def run(self, tool: str) -> dict:
        """One timed run; a failed run is recorded and run again (twice at most)."""
        for attempt in range(3):
            try:
                return self._run(tool)
            except RuntimeError as e:
                if attempt == 2:
                    raise
                self.failures.append({'tool': tool, 'error': str(e)[-1500:]})
                print('    %-10s FAILED, running it again: %s' % (
                    tool, ' '.join(str(e).split())[-300:]), flush=True)
        raise AssertionError('unreachable')

    def _run(self, tool: str) -> dict:
        base = tempfile.mkdtemp(prefix='run-', dir=self.work)
        out = os.path.join(base, 'out')
        os.mkdir(out)
        try:
            cmd, env = self.commands[tool](out)
            os.sync()
            result = common.timed(cmd, env, os.path.join(base, 'time.txt'))
            if tool in self.checks:
                self.checks[tool](out)
            result['mb_per_s'] = round(self.data_bytes / 1e6 / result['wall_s'], 1)
            return result
        finally:
            shutil.rmtree(base, ignore_errors=True)


def bench_group(group: Group, runs: int) -> dict:
    tools = list(group.commands)
    results = common.alternate(tools, runs, group.run, warmup=group.warmup)
    out: dict = {t: common.summarize(results[t]) for t in tools}
    for t in tools:
        out[t]['mb_per_s'] = round(group.data_bytes / 1e6 / out[t]['median_s'], 1)
    main, ref = MAIN[group.name]
    # Speed relative to the reference: its time over the tool's.
    out['speed'] = round(out[ref]['median_s'] / out[main]['median_s'], 3)
    out['round_speeds'] = sorted(round(1 / r, 3) for r in
                                 common.round_ratios(results[main], results[ref]))
    if 'baseline' in out:
        out['baseline_speed'] = round(out[ref]['median_s'] / out['baseline']['median_s'], 3)
    common.versus_baseline(out, results, main)
    out['data_bytes'] = group.data_bytes
    out['failures'] = group.failures
    loads = [r['load1'] for t in tools for r in results[t]]
    out['load_min'], out['load_max'] = min(loads), max(loads)
    return out


def judge(name: str, result: dict) -> List[dict]:
    main = MAIN[name][0]
    out = []
    for what, limit in TARGETS[name]:
        if what == 'speed':
            value, ok = result['speed'], result['speed'] >= limit
        else:
            value = result[main]['max_rss_mib']
            ok = value <= limit
        out.append({'what': what, 'limit': limit, 'value': value, 'pass': ok})
    return out


def print_table(results: Dict[str, dict]) -> None:
    print('\n%-11s %-14s %9s %8s %8s %8s %9s' % (
        'group', 'command', 'median s', 'MB/s', 'CPU s', 'RSS MiB', 'load'))
    for name, r in results.items():
        for tool in [t for t in r if isinstance(r[t], dict) and 'median_s' in r[t]]:
            s = r[tool]
            print('%-11s %-14s %9.3f %8.1f %8.2f %8.1f %4.1f-%.1f' % (
                name, tool, s['median_s'], s['mb_per_s'], s['median_cpu_s'],
                s['max_rss_mib'], r['load_min'], r['load_max']))
    print()
    for name, r in results.items():
        main, ref = MAIN[name]
        for t in r['targets']:
            if t['what'] == 'speed':
                text = '%s speed %.2f x %s (>= %.1f)' % (main, t['value'], ref, t['limit'])
            else:
                text = '%s peak RSS %.1f MiB <= %.0f MiB' % (main, t['value'], t['limit'])
            print('%-4s %-11s %s' % ('PASS' if t['pass'] else 'MISS', name, text))
        if 'speed' not in [t['what'] for t in r['targets']]:
            print('info %-11s %s speed %.2f x %s' % (name, main, r['speed'], ref))
        if 'baseline' in r:
            rounds = r['round_after_before']
            print('info %-11s %s after/before %.3f (rounds %.2f-%.2f), baseline '
                  'speed %.2f x %s, peak RSS %.1f/%.1f MiB' % (
                      name, main, r['after_before'], rounds[0], rounds[-1],
                      r['baseline_speed'], ref, *r['rss_after_before_mib']))


def parse_args(argv=None) -> argparse.Namespace:
    p = common.benchmark_parser(__doc__, 'groups', GROUPS, 'tools', 'local.json')
    p.add_argument('--raw-runs', type=int, default=3,
                   help='timed runs in import-raw, where one round takes '
                        'minutes; no warm-up there (default 3)')
    p.add_argument('--importer-par', help='time this importer.par instead of building one')
    p.add_argument('--flatten-par', help='time this flatten.par instead of building one')
    p.add_argument('--baseline-importer-par',
                   help='also time this earlier build of importer.par (as '
                        '`baseline`, --format tar.gz) in the import groups')
    p.add_argument('--baseline-flatten-par',
                   help='also time this earlier build of flatten.par (as '
                        '`baseline`) in the flatten group')
    p.add_argument('--source', action='store_true',
                   help='time `python -m containerregistry.tools.fast_importer` '
                        '(and fast_flatten) from the checkout instead of .par files')
    p.add_argument('--no-format-tar', action='store_true',
                   help='leave out `importer --format tar` in import-gz')
    args = common.check_benchmark_args(p, p.parse_args(argv), 'groups', GROUPS)
    if args.raw_runs < 1:
        p.error('--raw-runs must be at least 1')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    shim = common.make_shim()
    work = tempfile.mkdtemp(prefix='cr-bench-local-')
    shape = SHAPES['large']
    try:
        tools = {}
        info = {'date': common.now_utc(), 'git_head': common.git_head(),
                'machine': common.machine_info(args.python), 'runs': args.runs,
                'order': 'one untimed warm-up each, then rounds alternating the '
                         'commands and the reverse; fresh output directory and '
                         'sync before each run',
                'targets': {k: dict(v) for k, v in TARGETS.items()}}
        need = {'importer': ('fast_importer', args.importer_par),
                'flatten': ('fast_flatten', args.flatten_par)}
        for tool, (module, par) in need.items():
            if tool == 'importer' and not any(g.startswith('import') for g in args.groups):
                continue
            if tool == 'flatten' and 'flatten' not in args.groups:
                continue
            cmd, env, desc = common.tool_command(tool, module, args, shim, work, par)
            tools[tool] = (cmd, env)
            info[tool] = desc
            print('%s: %s (%s)' % (tool, ' '.join(cmd), desc['mode']))
        baselines = {}
        for tool, par in (('importer', args.baseline_importer_par),
                          ('flatten', args.baseline_flatten_par)):
            if par and tool in tools:
                cmd, info['baseline_' + tool] = common.baseline_command(
                    tool, par, args, work)
                baselines[tool] = (cmd, None)
                print('baseline %s: %s' % (tool, ' '.join(cmd)))

        t0 = time.perf_counter()
        raw_dir = os.path.join(work, 'raw')
        os.mkdir(raw_dir)
        image = common.write_dir_image(os.path.join(work, 'dir'), shape,
                                       args.gzip_level, raw_tars=raw_dir)
        raw_tars = [os.path.join(raw_dir, '%03d.tar' % i) for i in range(shape.layers)]
        raw_bytes = sum(os.path.getsize(p) for p in raw_tars)
        fast = os.path.join(work, 'fast')
        fast_args = common.write_fast_layout(image, fast)
        save_gz = os.path.join(work, 'save-gz.tar')
        save_raw = os.path.join(work, 'save-raw.tar')
        gz_bytes = raw_size = 0
        if 'import-gz' in args.groups:
            gz_bytes = docker_save(save_gz, image,
                                   [image.blob_path(d) for d in image.layer_digests])
        if 'import-raw' in args.groups:
            raw_size = docker_save(save_raw, image, raw_tars)
        gen_s = time.perf_counter() - t0
        print('large: %d layers, %.1f MB gzipped, %.1f MB of layer tars; '
              'gzipped tarball %.1f MB, plain tarball %.1f MB; generated in %.1f s'
              % (len(image.layers), image.blob_bytes / 1e6, raw_bytes / 1e6,
                 gz_bytes / 1e6, raw_size / 1e6, gen_s), flush=True)
        info.update({'shape': vars(shape), 'layer_digests': image.layer_digests,
                     'blob_bytes': image.blob_bytes, 'layer_tar_bytes': raw_bytes,
                     'tarball_gz_bytes': gz_bytes, 'tarball_raw_bytes': raw_size,
                     'generate_s': round(gen_s, 1)})

        def importer(tarball: str, fmt: str, build: Dict[str, tuple] = tools):
            cmd, env = build['importer']
            return lambda out: (cmd + ['--tarball', tarball, '--format', fmt,
                                       '--directory', out], env)

        groups: Dict[str, Group] = {}
        if 'import-gz' in args.groups:
            commands = {'importer': importer(save_gz, 'tar.gz'),
                        'cp': lambda out: (['cp', save_gz, out], None),
                        'cat': lambda out: (['sh', '-c', 'cat "$1" > "$0/copy.tar"',
                                             out, save_gz], None)}
            checks = {'importer': lambda out: check_import(out, image, 'tar.gz', True)}
            # What any import that keeps the CRC and diff_id checks must do,
            # and the same without inflating (bench/floor_import.py).
            commands['floor'] = lambda out: ([args.python, FLOOR_IMPORT, save_gz, out], None)
            commands['floor-no-inflate'] = lambda out: (
                [args.python, FLOOR_IMPORT, save_gz, out, '--no-inflate'], None)
            checks['floor'] = checks['floor-no-inflate'] = \
                lambda out: check_floor(out, image)
            par = tools['importer'][0][-1]
            if par.endswith('.par'):
                # The same, inflating with the zlib-ng the importer carries.
                commands['floor-zlib-ng'] = lambda out: (
                    [args.python, FLOOR_IMPORT, save_gz, out, '--zlib-ng', par], None)
                checks['floor-zlib-ng'] = lambda out: check_floor(out, image)
            if not args.no_format_tar:
                commands['importer-tar'] = importer(save_gz, 'tar')
                checks['importer-tar'] = lambda out: check_import(out, image, 'tar', True)
            if 'importer' in baselines:
                commands['baseline'] = importer(save_gz, 'tar.gz', baselines)
                checks['baseline'] = checks['importer']
            groups['import-gz'] = Group('import-gz', work, commands, checks, gz_bytes)
        if 'import-raw' in args.groups:
            script = 'for f in "$@"; do gzip -9 -n -c "$f" > "$0/${f##*/}.gz"; done'
            commands = {'importer': importer(save_raw, 'tar.gz'),
                        'gzip -9': lambda out: (['sh', '-c', script, out] + raw_tars, None)}
            checks = {'importer': lambda out: check_import(out, image, 'tar.gz', False)}
            if 'importer' in baselines:
                commands['baseline'] = importer(save_raw, 'tar.gz', baselines)
                checks['baseline'] = checks['importer']
            groups['import-raw'] = Group('import-raw', work, commands, checks,
                                         raw_bytes, warmup=False)
        if 'flatten' in args.groups:
            layers = [fast_args[i + 1] for i in range(len(fast_args))
                      if fast_args[i] == '--layer']

            def flatten(build: Dict[str, tuple]):
                cmd, env = build['flatten']
                return lambda out: (cmd + fast_args + [
                    '--filesystem', os.path.join(out, 'fs.tar'),
                    '--metadata', os.path.join(out, 'metadata.json')], env)

            commands = {'flatten': flatten(tools),
                        'gzip -dc': lambda out: (
                            ['sh', '-c', 'gzip -dc "$@" > "$0/fs.tar"', out] + layers, None)}
            checks = {'flatten': lambda out: check_flatten(os.path.join(out, 'fs.tar'),
                                                           image, shape)}
            if 'flatten' in baselines:
                commands['baseline'] = flatten(baselines)
                checks['baseline'] = checks['flatten']
            groups['flatten'] = Group('flatten', work, commands, checks, raw_bytes)

        results: Dict[str, dict] = {}
        # The longest group (import-raw) goes last.
        groups = {g: groups[g] for g in GROUPS if g in groups}
        for name, group in groups.items():
            print('%s:' % name, flush=True)
            runs = args.raw_runs if name == 'import-raw' else args.runs
            result = bench_group(group, runs)
            result['targets'] = judge(name, result)
            results[name] = result
        info['groups'] = results
        print_table(results)
        common.write_json(args.json, info)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shim, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
