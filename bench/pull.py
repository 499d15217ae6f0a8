"""Pull benchmark: puller.par against `skopeo copy ... oci:` on a local registry.

Starts the real registry on 127.0.0.1, pushes seeded images of four shapes,
then pulls each one with the puller and with skopeo in alternating runs
(fresh output directory each run, no cache) and reports median wall time,
the ratio puller/skopeo and the peak RSS of each from `/usr/bin/time -v`.

It reports and never gates: the exit status is 0 whatever the numbers are.
See bench/README.md for the method and the results.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import common
from common import MIB, ROOT, SHAPES, Shape

FLOOR = os.path.join(ROOT, 'bench', 'floor_pull.py')

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


# IMAGE GENERATION (not timed).

def push_streamed(images, reg, repo: str, shape: Shape, work: str,
                  level: int) -> Tuple[str, List[str], int]:
    """Generates SHAPE on disk, pushes it as REPO:latest with skopeo.

    Returns (manifest digest, layer digests, total blob bytes).
    """
    d = tempfile.mkdtemp(prefix='image-', dir=work)
    try:
        image = common.write_dir_image(d, shape, level)
        env = images.skopeo_env()
        try:
            subprocess.run(['skopeo', '--insecure-policy', 'copy',
                            '--preserve-digests', '--dest-tls-verify=false',
                            'dir:' + d, 'docker://%s/%s:latest' % (reg.host, repo)],
                           check=True, env=env, capture_output=True, timeout=1800)
        finally:
            shutil.rmtree(env['HOME'], ignore_errors=True)
        served, _ = images.Client(reg).manifest(repo, 'latest')
        if served != image.manifest:
            raise RuntimeError('registry serves other manifest bytes for ' + repo)
        return image.digest, image.layer_digests, image.blob_bytes
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
                 skopeo_env: dict, work: str, python: str,
                 baseline_cmd: Optional[List[str]] = None):
        self.puller_cmd = puller_cmd
        self.baseline_cmd = baseline_cmd
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
            if tool in ('puller', 'baseline'):
                cmd = self.puller_cmd if tool == 'puller' else self.baseline_cmd
                result = common.timed(cmd + ['--name', ref, '--directory', out],
                                      self.puller_env, stat)
                check_puller(out, digest, layers)
            elif tool == 'floor':
                result = common.timed([self.python, FLOOR, ref, out], self.puller_env, stat)
                if not os.path.isfile(os.path.join(out, 'manifest.json')):
                    raise RuntimeError('floor pull wrote no manifest')
            else:
                result = common.timed(['skopeo', '--insecure-policy', 'copy',
                                '--src-tls-verify=false', 'docker://' + ref,
                                'oci:%s:latest' % out], self.skopeo_env, stat)
                check_skopeo(out, layers)
            return result
        finally:
            shutil.rmtree(base, ignore_errors=True)


def bench_shape(runner: Runner, ref: str, digest: str, layers: List[str],
                runs: int, tools: List[str]) -> dict:
    """One untimed warm-up each, then RUNS rounds, order reversed every round."""
    results = common.alternate(
        tools, runs, lambda tool: runner.run(tool, ref, digest, layers))
    return common.compare(results, 'puller')


def print_table(results: Dict[str, dict]) -> None:
    head = ('shape', 'blob MB', 'puller s', 'skopeo s', 'ratio',
            'puller MiB', 'skopeo MiB')
    floor = any('floor' in r for r in results.values())
    line = '\n%-7s %8s %9s %9s %6s %11s %11s' % head
    baseline = any('baseline' in r for r in results.values())
    print(line + ('   floor s  ratio' if floor else '')
          + (common.BASELINE_HEAD if baseline else ''))
    for name, r in results.items():
        line = '%-7s %8.1f %9.3f %9.3f %6.2f %11.1f %11.1f' % (
            name, r['blob_bytes'] / 1e6, r['puller']['median_s'],
            r['skopeo']['median_s'], r['ratio'], r['puller']['max_rss_mib'],
            r['skopeo']['max_rss_mib'])
        if 'floor' in r:
            line += ' %9.3f %6.2f' % (r['floor']['median_s'], r['floor_ratio'])
        print(line + common.baseline_cells(r))
    print()
    common.print_targets(results, 'puller')

def parse_args(argv=None) -> argparse.Namespace:
    p = common.registry_tool_parser(__doc__, 'puller', 'fast_puller', 'floor_pull.py',
                                    SHAPES, 'pull.json')
    return common.check_benchmark_args(p, p.parse_args(argv), 'shapes', SHAPES)


def main(argv=None) -> int:
    args = parse_args(argv)
    shim = common.make_shim()
    sys.path.insert(0, shim)
    from containerregistry.testing import images
    from containerregistry.testing import registry

    work = tempfile.mkdtemp(prefix='cr-bench-pull-')
    reg = None
    skopeo_env = images.skopeo_env()
    try:
        puller_cmd, puller_env, puller_info = common.tool_command(
            'puller', 'fast_puller', args, shim, work, args.par)
        info = {
            'date': common.now_utc(),
            'git_head': common.git_head(),
            'machine': common.machine_info(args.python),
            'puller': puller_info,
            'puller_cmd': puller_cmd,
            'skopeo_cmd': ['skopeo', '--insecure-policy', 'copy',
                           '--src-tls-verify=false', 'docker://REF', 'oci:DIR:latest'],
            'runs': args.runs,
            'order': 'one untimed warm-up each, then rounds alternating '
                     'puller,skopeo(,floor)(,baseline) and the reverse; sync '
                     'before each run',
            'targets': {k: dict(v) for k, v in TARGETS.items()},
        }
        print('puller: %s (%s)' % (' '.join(puller_cmd), puller_info['mode']))
        reg = registry.start_registry()
        baseline_cmd = None
        if args.baseline_par:
            baseline_cmd, info['baseline'] = common.baseline_command(
                'puller', args.baseline_par, args, work)
            print('baseline: %s' % ' '.join(baseline_cmd))
        runner = Runner(puller_cmd, puller_env, skopeo_env, work, args.python,
                        baseline_cmd)
        tools = (['puller', 'skopeo'] + (['floor'] if args.floor else [])
                 + (['baseline'] if baseline_cmd else []))
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
                           'shape': vars(SHAPES[name]),
                           'loadavg_before': [round(x, 2) for x in load],
                           'loadavg_after': [round(x, 2) for x in os.getloadavg()],
                           'generate_push_s': round(gen_s, 1)})
            result['targets'] = common.judge_ratio_rss(TARGETS.get(name, []), result, 'puller')
            results[name] = result
        info['shapes'] = results
        print_table(results)
        common.write_json(args.json, info)
    finally:
        if reg is not None:
            reg.stop()
        shutil.rmtree(skopeo_env['HOME'], ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shim, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
