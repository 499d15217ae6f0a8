"""Push benchmark: pusher.par against `skopeo copy dir: docker://` on a local registry.

Generates seeded images of three shapes once, as a skopeo `dir:` layout and
as the fast layout the pusher reads (same blob files, hardlinked), then
pushes each one with the pusher and with skopeo in alternating runs. Every
run pushes into a registry of its own, started empty just before and
removed after, so every blob is uploaded every time. After each run the
registry's manifest must name the expected config and layer digests.

The registry keeps its storage on tmpfs (/dev/shm) unless told otherwise:
it fsyncs every blob it takes, and on a slow disk that I/O wait, the same
for every client, would be what is timed (`--registry-storage disk` shows it).

It reports and never gates: the exit status is 0 whatever the numbers are.
See bench/README.md for the method and the results.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import common
from common import SHAPES

PUSH_SHAPES = ['many', 'medium', 'large']

# (what, limit) per shape; 'ratio' is median pusher / median skopeo wall
# time of the same run, 'rss' the pusher's largest peak RSS in MiB.
TARGETS: Dict[str, List[Tuple[str, float]]] = {
    'many': [('ratio', 1.0)],
    'medium': [('ratio', 0.8)],
    'large': [('ratio', 0.6), ('rss', 64.0)],
}

FLOOR = os.path.join(common.ROOT, 'bench', 'floor_push.py')
TMPFS = '/dev/shm'
SKOPEO_CMD = ['skopeo', '--insecure-policy', 'copy', '--preserve-digests',
              '--dest-tls-verify=false']


def check_pushed(images, reg, repo: str, image: common.DirImage,
                 same_manifest: bool) -> None:
    """The registry's REPO:latest names IMAGE's config and layers, all present.

    SAME_MANIFEST: the manifest bytes must be IMAGE's own (skopeo copies them
    as they are; the pusher writes its own serialization).
    """
    client = images.Client(reg)
    body, _ = client.manifest(repo, 'latest')
    if same_manifest and body != image.manifest:
        raise RuntimeError('%s: the registry serves other manifest bytes' % repo)
    manifest = json.loads(body)
    if manifest['config']['digest'] != image.config_digest:
        raise RuntimeError('%s: config %s, want %s' % (
            repo, manifest['config']['digest'], image.config_digest))
    got = [(l['digest'], l['size']) for l in manifest['layers']]
    want = [(d, s) for d, _, s in image.layers]
    if got != want:
        raise RuntimeError('%s: layers %s, want %s' % (repo, got, want))
    for digest, size in want + [(image.config_digest, len(image.config))]:
        status, headers, _ = client.request('HEAD', repo, 'blobs/' + digest)
        if status != 200 or int(headers.get('Content-Length', -1)) != size:
            raise RuntimeError('%s: blob %s is missing (HEAD %d)' % (repo, digest, status))


def process_cpu(pid: int) -> float:
    """User + system CPU seconds process PID has used so far."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class Runner:
    """Runs one push of one image into a fresh, empty registry."""

    def __init__(self, registry, images, pusher_cmd: List[str], pusher_env: dict,
                 skopeo_env: dict, work: str, python: str,
                 registry_parent: Optional[str],
                 baseline_cmd: Optional[List[str]] = None):
        self.registry = registry
        self.registry_parent = registry_parent
        self.images = images
        self.pusher_cmd = pusher_cmd
        self.pusher_env = pusher_env
        self.baseline_cmd = baseline_cmd
        self.skopeo_env = skopeo_env
        self.work = work
        self.python = python

    def run(self, tool: str, name: str, image: common.DirImage,
            fast_args: List[str]) -> dict:
        reg = self.registry.start_registry(parent=self.registry_parent)
        repo = 'bench/' + name
        ref = '%s/%s:latest' % (reg.host, repo)
        stat = os.path.join(self.work, 'time.txt')
        try:
            # Writeback of the previous run's data must not land in this one.
            os.sync()
            cpu = process_cpu(reg.proc.pid)
            if tool in ('pusher', 'baseline'):
                cmd = self.pusher_cmd if tool == 'pusher' else self.baseline_cmd
                result = common.timed(cmd + ['--name', ref] + fast_args,
                                      self.pusher_env, stat)
            elif tool == 'floor':
                fast = os.path.dirname(fast_args[fast_args.index('--config') + 1])
                result = common.timed([self.python, FLOOR, ref, fast],
                                      self.pusher_env, stat)
            else:
                result = common.timed(SKOPEO_CMD + ['dir:' + image.directory,
                                                    'docker://' + ref],
                                      self.skopeo_env, stat)
            # The registry's own work for this push (it is the same for every
            # client: receive, hash and store each blob).
            result['registry_cpu_s'] = round(process_cpu(reg.proc.pid) - cpu, 2)
            check_pushed(self.images, reg, repo, image, same_manifest=tool == 'skopeo')
            return result
        finally:
            reg.stop()


def bench_shape(runner: Runner, name: str, image: common.DirImage,
                fast_args: List[str], runs: int, tools: List[str]) -> dict:
    results = common.alternate(tools, runs,
                               lambda tool: runner.run(tool, name, image, fast_args))
    out = common.compare(results, 'pusher')
    for tool in tools:
        out[tool]['median_registry_cpu_s'] = round(statistics.median(
            r['registry_cpu_s'] for r in results[tool]), 2)
    return out


def print_table(results: Dict[str, dict]) -> None:
    floor = any('floor' in r for r in results.values())
    baseline = any('baseline' in r for r in results.values())
    print('\n%-7s %8s %9s %9s %6s %11s %11s %9s %9s' % (
        'shape', 'blob MB', 'pusher s', 'skopeo s', 'ratio', 'pusher MiB',
        'skopeo MiB', 'load', 'reg CPU') + ('   floor s  ratio' if floor else '')
          + (common.BASELINE_HEAD if baseline else ''))
    for name, r in results.items():
        line = '%-7s %8.1f %9.3f %9.3f %6.2f %11.1f %11.1f %4.1f-%.1f %9.2f' % (
            name, r['blob_bytes'] / 1e6, r['pusher']['median_s'],
            r['skopeo']['median_s'], r['ratio'], r['pusher']['max_rss_mib'],
            r['skopeo']['max_rss_mib'], r['load_min'], r['load_max'],
            r['pusher']['median_registry_cpu_s'])
        if 'floor' in r:
            line += ' %9.3f %6.2f' % (r['floor']['median_s'], r['floor_ratio'])
        print(line + common.baseline_cells(r))
    print()
    common.print_targets(results, 'pusher')

def tmpfs_parent(needed: int) -> Optional[str]:
    """TMPFS if it is a writable tmpfs mount with NEEDED bytes free, else None."""
    with open('/proc/mounts') as f:
        mounts = {fields[1]: fields[2] for fields in (line.split() for line in f)}
    if mounts.get(TMPFS) != 'tmpfs' or not os.access(TMPFS, os.W_OK):
        return None
    st = os.statvfs(TMPFS)
    return TMPFS if st.f_bavail * st.f_frsize >= needed else None


def parse_args(argv=None) -> argparse.Namespace:
    p = common.registry_tool_parser(__doc__, 'pusher', 'fast_pusher', 'floor_push.py',
                                    PUSH_SHAPES, 'push.json')
    p.add_argument('--registry-storage', choices=['tmpfs', 'disk'], default='tmpfs',
                   help='where the registry stores blobs: tmpfs (%s, the default) '
                        'or the temporary directory\'s disk' % TMPFS)
    return common.check_benchmark_args(p, p.parse_args(argv), 'shapes', PUSH_SHAPES)


def main(argv=None) -> int:
    args = parse_args(argv)
    shim = common.make_shim()
    sys.path.insert(0, shim)
    from containerregistry.testing import images
    from containerregistry.testing import registry

    work = tempfile.mkdtemp(prefix='cr-bench-push-')
    skopeo_env = images.skopeo_env()
    try:
        pusher_cmd, pusher_env, pusher_info = common.tool_command(
            'pusher', 'fast_pusher', args, shim, work, args.par)
        info = {
            'date': common.now_utc(),
            'git_head': common.git_head(),
            'machine': common.machine_info(args.python),
            'pusher': pusher_info,
            'pusher_cmd': pusher_cmd + ['--name', 'REF', '--config', 'config.json',
                                        '--digest', 'NNN.sha256', '--layer',
                                        'NNN.tar.gz', '...'],
            'skopeo_cmd': SKOPEO_CMD + ['dir:DIR', 'docker://REF'],
            'runs': args.runs,
            'order': 'one untimed warm-up each, then rounds alternating '
                     'pusher,skopeo(,floor)(,baseline) and the reverse; each run '
                     'into a new, empty registry; sync before each run',
            'targets': {k: dict(v) for k, v in TARGETS.items()},
        }
        print('pusher: %s (%s)' % (' '.join(pusher_cmd), pusher_info['mode']))
        parent = None
        if args.registry_storage == 'tmpfs':
            # Room for the largest shape pushed twice over (upload, then blob).
            needed = 2 * max(SHAPES[n].layers * SHAPES[n].layer_size for n in args.shapes)
            parent = tmpfs_parent(needed)
            if parent is None:
                print('no tmpfs with room at %s: the registry stores on disk' % TMPFS)
        info['registry_storage'] = parent or 'disk (%s)' % tempfile.gettempdir()
        print('registry storage: %s' % info['registry_storage'])
        baseline_cmd = None
        if args.baseline_par:
            baseline_cmd, info['baseline'] = common.baseline_command(
                'pusher', args.baseline_par, args, work)
            print('baseline: %s' % ' '.join(baseline_cmd))
        runner = Runner(registry, images, pusher_cmd, pusher_env, skopeo_env, work,
                        args.python, parent, baseline_cmd)
        tools = (['pusher', 'skopeo'] + (['floor'] if args.floor else [])
                 + (['baseline'] if baseline_cmd else []))
        results: Dict[str, dict] = {}
        for name in args.shapes:
            t0 = time.perf_counter()
            image = common.write_dir_image(os.path.join(work, 'dir-' + name),
                                           SHAPES[name], args.gzip_level)
            fast_args = common.write_fast_layout(image, os.path.join(work, 'fast-' + name))
            gen_s = time.perf_counter() - t0
            print('%s: %d layers, %.1f MB of blobs, generated in %.1f s'
                  % (name, len(image.layers), image.blob_bytes / 1e6, gen_s), flush=True)
            result = bench_shape(runner, name, image, fast_args, args.runs, tools)
            loads = [r['load1'] for t in tools for r in result[t]['runs']]
            result.update({'layers': len(image.layers), 'blob_bytes': image.blob_bytes,
                           'layer_digests': image.layer_digests,
                           'shape': vars(SHAPES[name]),
                           'load_min': min(loads), 'load_max': max(loads),
                           'generate_s': round(gen_s, 1)})
            result['targets'] = common.judge_ratio_rss(TARGETS.get(name, []), result, 'pusher')
            results[name] = result
            shutil.rmtree(image.directory, ignore_errors=True)
            shutil.rmtree(os.path.join(work, 'fast-' + name), ignore_errors=True)
        info['shapes'] = results
        print_table(results)
        common.write_json(args.json, info)
    finally:
        shutil.rmtree(skopeo_env['HOME'], ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shim, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
