"""The Bazel build: self-contained .par files, and use as an external repository.

These tests run real Bazel (Debian's bazel-bootstrap) offline. The main
workspace's server is stopped by `pars.shutdown_bazel()` at the end of the
session; the consumer workspace's server is stopped by its fixture.
"""
import io
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from typing import Dict, Optional

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars

ROOT = pars.ROOT
SHEBANG = b'#!/usr/bin/env python3\n'
CLEAN_ENV = ['env', '-i', 'PATH=/usr/bin:/bin']
MAIN_ENTRY = 'containerregistry/tools/fast_puller.py'


def _locked_versions() -> Dict[str, str]:
    """{normalised project name: version} from requirements.txt."""
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        pins = re.findall(r'^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)', f.read(), re.M)
    return {re.sub(r'[-_.]+', '-', name).lower(): version for name, version in pins}


def _usage_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith('usage: puller.par '), proc.stdout[:300]


@pytest.fixture(scope='module')
def par(tmp_path_factory) -> str:
    """A copy of the main workspace's puller.par, alone in a temp dir."""
    path = str(tmp_path_factory.mktemp('par') / 'puller.par')
    shutil.copyfile(pars.par_path('puller'), path)
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope='module')
def par_zip(par) -> zipfile.ZipFile:
    with zipfile.ZipFile(par) as zf:
        yield zf


def _repack(par: str, out: str, replace: Dict[str, Optional[bytes]]) -> str:
    """Copies PAR to OUT with entries replaced (None removes the entry)."""
    buf = io.BytesIO()
    buf.write(SHEBANG)
    with zipfile.ZipFile(par) as src, zipfile.ZipFile(buf, 'w') as dst:
        for info in src.infolist():
            if info.filename not in replace:
                dst.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED)
        for name, data in replace.items():
            if data is not None:
                dst.writestr(name, data, zipfile.ZIP_DEFLATED)
    with open(out, 'wb') as f:
        f.write(buf.getvalue())
    return out


# Replaces the tool's module: reports where its imports came from.
PROBE = b'''
import importlib.metadata
import json
import pkgutil
import sys

import httplib2
import pyparsing
import six
import oauth2client

json.dump({
    'name': __name__,
    'argv0': sys.argv[0],
    'path': sys.path,
    'files': {m.__name__: m.__file__ for m in (httplib2, pyparsing, six, oauth2client)},
    'versions': {d: importlib.metadata.version(d) for d in sys.argv[1:]},
    'cacerts': len(pkgutil.get_data('httplib2', 'cacerts.txt')),
}, sys.stdout)
'''


def _hostile_env(tmp_path) -> Dict[str, str]:
    """An env whose PYTHONPATH, user site and .pth try to shadow bundled modules."""
    pythonpath = tmp_path / 'pythonpath'
    (pythonpath / 'oauth2client').mkdir(parents=True)
    poison = b'raise ImportError("host copy imported instead of the bundled one")\n'
    (pythonpath / 'httplib2.py').write_bytes(poison)
    (pythonpath / 'oauth2client' / '__init__.py').write_bytes(poison)
    home = tmp_path / 'home'
    home.mkdir()
    # A directory under the interpreter's prefix: only the standard library's
    # own directories may stay on sys.path from there.
    under_prefix = subprocess.run(
        ['/usr/bin/python3', '-c', 'import os, sys; '
         'print(os.path.join(sys.base_prefix, "share"))'],
        capture_output=True, text=True, check=True).stdout.strip()
    env = {'PATH': '/usr/bin:/bin', 'HOME': str(home),
           'PYTHONPATH': os.pathsep.join([str(pythonpath), under_prefix])}
    user_site = subprocess.run(
        ['/usr/bin/python3', '-c', 'import site; print(site.getusersitepackages())'],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert user_site.startswith(str(home)), user_site
    os.makedirs(user_site)
    with open(os.path.join(user_site, 'six.py'), 'wb') as f:
        f.write(poison)
    # A .pth that pre-imports a fake pyparsing, as namespace-package .pth do.
    fake = os.path.join(user_site, 'pyparsing.py')
    with open(os.path.join(user_site, 'zz_test.pth'), 'w') as f:
        f.write('import sys, types; m = types.ModuleType("pyparsing"); '
                'm.__file__ = %r; sys.modules["pyparsing"] = m\n' % fake)
    return env


def _run_probe(probe_par: str, env: Dict[str, str]) -> dict:
    versions = ['httplib2', 'six', 'pyparsing', 'oauth2client']
    proc = subprocess.run(['/usr/bin/python3', os.path.basename(probe_par)] + versions,
                          cwd=os.path.dirname(probe_par), env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_par_runs_with_only_python3_from_root(par):
    proc = subprocess.run(CLEAN_ENV + ['/usr/bin/python3', par, '--help'], cwd='/',
                          capture_output=True, text=True, timeout=60)
    _usage_ok(proc)


def test_par_runs_through_its_shebang(par):
    with open(par, 'rb') as f:
        assert f.readline() == SHEBANG
    assert os.stat(par).st_mode & stat.S_IXUSR
    proc = subprocess.run(CLEAN_ENV + ['./puller.par', '--help'], cwd=os.path.dirname(par),
                          capture_output=True, text=True, timeout=60)
    _usage_ok(proc)


def test_par_layout(par_zip):
    names = par_zip.namelist()
    assert names == sorted(names)
    assert {'__main__.py', '__main__.pyc', 'containerregistry/__init__.py', MAIN_ENTRY,
            'httplib2/__init__.py', 'httplib2/cacerts.txt',
            'oauth2client/__init__.py', 'six.py'} <= set(names)
    # Import roots are hoisted: no runfiles prefix of the pip repository.
    assert not [n for n in names if n.startswith(('containerregistry_pip', 'site/'))]
    assert not [n for n in names if n.startswith('containerregistry/') and
                n.split('/')[1] in ('testing', 'bench', 'build_defs')]
    # The wheels are bundled at their pinned versions, and are pure Python.
    dist_infos = {}
    for n in names:
        match = re.match(r'^([^/]+)-([^-/]+)\.dist-info/WHEEL$', n)
        if match:
            project = re.sub(r'[-_.]+', '-', match.group(1)).lower()
            dist_infos[project] = match.group(2)
            tags = re.findall(r'^Tag: (\S+)$', par_zip.read(n).decode(), re.M)
            assert tags and all(t.endswith('-none-any') for t in tags), (n, tags)
        if n.endswith('.dist-info/RECORD'):
            # RECORD lists exactly bundled files (no console scripts naming
            # the python that ran pip: they would make the build host-dependent).
            listed = [row.split(',')[0] for row in par_zip.read(n).decode().splitlines()]
            assert listed and not [p for p in listed if p not in names], (n, listed)
    # :containerregistry needs httplib2, oauth2client and
    # concurrent-log-handler (--log-file), and those the rest; absl-py is
    # locked but not used.
    bundled = {'httplib2', 'oauth2client', 'pyparsing', 'six', 'rsa', 'pyasn1',
               'pyasn1-modules', 'concurrent-log-handler', 'portalocker'}
    locked = _locked_versions()
    assert dist_infos == {name: locked[name] for name in bundled}
    for n in names:
        if n.endswith('.py'):
            assert n + 'c' in names, n
        if n.endswith('.pyc'):
            assert n[:-1] in names, n
    for info in par_zip.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        data = par_zip.read(info)
        # Nothing from the build machine: checkout path, Bazel output paths.
        for needle in (ROOT.encode(), b'execroot', b'bazel-out', b'/sandbox/'):
            assert needle not in data, (info.filename, needle)


def test_par_uses_only_bundled_code(par, tmp_path):
    probe = _repack(par, str(tmp_path / 'probe.par'),
                    {MAIN_ENTRY: PROBE, MAIN_ENTRY + 'c': None})
    out = _run_probe(probe, _hostile_env(tmp_path))
    assert out['name'] == '__main__'
    # argv[0] names the .par (tools call themselves after it), not a .pyc.
    assert os.path.basename(out['argv0']) == 'probe.par'
    # Started by a relative path; the archive entry is absolute (tools chdir).
    assert os.path.realpath(out['path'][0]) == os.path.realpath(probe)
    assert not [p for p in out['path'][1:] if 'packages' in p or str(tmp_path) in p
                or p.endswith(os.sep + 'share')]
    for module, path in out['files'].items():
        assert path.startswith(out['path'][0] + os.sep), (module, path)
        # The interpreter that compiled the .pyc runs them.
        assert path.endswith('.pyc'), (module, path)
    locked = _locked_versions()
    assert out['versions'] == {d: locked[d] for d in out['versions']}
    assert out['cacerts'] > 1000


def test_par_falls_back_to_source_for_foreign_pyc(par, par_zip, tmp_path):
    """Another Python minor version rejects the .pyc magic; the .py is used."""
    pyc = par_zip.read('httplib2/__init__.pyc')
    foreign = bytes([pyc[0] ^ 0xff, pyc[1]]) + pyc[2:]
    probe = _repack(par, str(tmp_path / 'probe.par'),
                    {MAIN_ENTRY: PROBE, MAIN_ENTRY + 'c': None,
                     'httplib2/__init__.pyc': foreign})
    out = _run_probe(probe, {'PATH': '/usr/bin:/bin'})
    assert out['files']['httplib2'] == os.path.join(probe, 'httplib2', '__init__.py')
    assert out['files']['oauth2client'].endswith('.pyc')


def test_bazel_run_in_main_workspace():
    proc = pars.bazel('run', *pars.QUIET, '//:puller.par', '--', '--help')
    _usage_ok(proc)


class Consumer:
    """A workspace that uses this checkout as @containerregistry."""

    def __init__(self, directory: str, output_base: str):
        self.directory = directory
        self.output_base = output_base
        self.started = False

    def bazel(self, *args: str, env: Optional[Dict[str, str]] = None,
              quiet: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        self.started = True
        argv = ['bazel', '--output_base=' + self.output_base] + list(args[:1])
        if quiet:
            argv += pars.QUIET
        return subprocess.run(argv + list(args[1:]), cwd=self.directory, env=env,
                              capture_output=True, text=True, timeout=timeout)


def _force_rmtree(path: str) -> None:
    def on_error(func, failed, _exc):
        os.chmod(os.path.dirname(failed), 0o755)
        if os.path.isdir(failed):
            os.chmod(failed, 0o755)
        func(failed)
    shutil.rmtree(path, onerror=on_error)


@pytest.fixture(scope='module')
def consumer(tmp_path_factory):
    base = tmp_path_factory.mktemp('consumer')
    directory = str(base / 'ws')
    shutil.copytree(os.path.join(ROOT, 'testing', 'consumer'), directory,
                    ignore=shutil.ignore_patterns('bazel-*'))
    with open(os.path.join(directory, 'WORKSPACE'), 'w') as f:
        f.write('workspace(name = "consumer")\n\n'
                'local_repository(\n'
                '    name = "containerregistry",\n'
                '    path = %s,\n'
                ')\n\n'
                'load("@containerregistry//:def.bzl", "repositories")\n\n'
                'repositories()\n' % json.dumps(ROOT))
    ws = Consumer(directory, str(base / 'output_base'))
    try:
        yield ws
    finally:
        if ws.started:
            subprocess.run(['bazel', '--output_base=' + ws.output_base, 'shutdown'],
                           cwd=directory, capture_output=True, timeout=120)
        _force_rmtree(str(base))


def _zip_differences(a: bytes, b: bytes) -> list:
    with zipfile.ZipFile(io.BytesIO(a)) as za, zipfile.ZipFile(io.BytesIO(b)) as zb:
        names = sorted(set(za.namelist()) | set(zb.namelist()))
        return [n for n in names if n not in za.namelist() or n not in zb.namelist()
                or za.read(n) != zb.read(n)]


def test_consumer_builds_the_same_par(consumer):
    """Another workspace, output base and server build the same bytes."""
    proc = consumer.bazel('build', '@containerregistry//:puller.par')
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Right after, so both builds see the same sources.
    main = pars.bazel('build', *pars.QUIET, '//:puller.par')
    assert main.returncode == 0, main.stderr[-3000:]
    built = os.path.join(consumer.directory, 'bazel-bin', 'external', 'containerregistry',
                         'puller.par')
    with open(built, 'rb') as a, open(os.path.join(ROOT, 'bazel-bin', 'puller.par'), 'rb') as b:
        consumer_par, main_par = a.read(), b.read()
    assert consumer_par == main_par, _zip_differences(consumer_par, main_par)


def test_consumer_bazel_run_par(consumer):
    _usage_ok(consumer.bazel('run', '@containerregistry//:puller.par', '--', '--help'))


def test_consumer_binary_gets_pinned_deps(consumer):
    proc = consumer.bazel('run', '//:check')
    assert proc.returncode == 0, proc.stderr[-3000:]
    locked = _locked_versions()
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout
    for line in lines:
        name, version, path = line.split(' ', 2)
        assert version == locked[name], line
        assert '/containerregistry_pip/site/' in path, line


def test_consumer_bazel_test(consumer):
    proc = consumer.bazel('test', '//:puller_par_test', '--test_output=errors')
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_consumer_bazel_run_resolves_relative_directory(consumer, registry, repo_name,
                                                         tmp_path):
    pushed = images.push_image(registry, repo_name + ':v1', [images.make_layer(701)])
    env = dict(os.environ)
    for key in ('HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'ALL_PROXY',
                'all_proxy'):
        env.pop(key, None)
    env['NO_PROXY'] = env['no_proxy'] = 'localhost,127.0.0.1'
    env['DOCKER_CONFIG'] = str(tmp_path / 'docker')
    proc = consumer.bazel('run', '@containerregistry//:puller.par', '--',
                          '--name', pushed.by_tag, '--directory', 'out/image', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    image = os.path.join(consumer.directory, 'out', 'image')
    with open(os.path.join(image, 'digest'), 'rb') as f:
        assert f.read() == pushed.digest.encode()
    with open(os.path.join(image, 'config.json'), 'rb') as f:
        assert f.read() == pushed.config
