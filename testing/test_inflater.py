"""inflater: zlib-ng where the interpreter can load it, else the stdlib's zlib.

The archive cases run a fresh interpreter without site-packages (`-S`),
with only a zip on its path holding `zlib_ng` the way a .par holds it: the
package's Python files next to extension modules for several interpreters.
"""
import glob
import gzip
import hashlib
import importlib.machinery
import io
import json
import os
import tarfile
import subprocess
import sys
import zipfile
import zlib

import pytest

import containerregistry
from containerregistry.client.v2_2 import inflater
from containerregistry.testing import pars

PROBE = '''
import gzip, hashlib, sys
from containerregistry.client.v2_2 import compression, inflater
mod = inflater.module()
blob = gzip.compress(b"layer bytes " * 50000)
found = compression.digest_layer(__import__("io").BytesIO(blob))
print(inflater.name(mod), getattr(mod, "__file__", ""), found.diff_id ==
      "sha256:" + hashlib.sha256(b"layer bytes " * 50000).hexdigest(), sep="|")
'''


def installed_extension() -> str:
    """The zlib-ng extension module installed for this interpreter (requirements-native.txt)."""
    from zlib_ng import zlib_ng
    return zlib_ng.__file__


def archive(path: str, suffixes) -> str:
    """A zip holding the zlib_ng package with the extension under each of SUFFIXES."""
    package = os.path.dirname(installed_extension())
    with zipfile.ZipFile(path, 'w') as z:
        for name in ('__init__.py', '_version.py'):
            z.write(os.path.join(package, name), 'zlib_ng/' + name)
        for suffix in suffixes:
            z.write(installed_extension(), 'zlib_ng/zlib_ng' + suffix)
    return path


def probe(tmp_path, zip_path: str, **env: str):
    shim = tmp_path / 'shim'
    shim.mkdir()
    (shim / 'containerregistry').symlink_to(os.path.dirname(containerregistry.__file__))
    environ = {'PATH': os.environ.get('PATH', ''),
               'PYTHONPATH': os.pathsep.join([zip_path, str(shim)]), **env}
    proc = subprocess.run([sys.executable, '-S', '-c', PROBE], env=environ,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split('|')


def test_this_environment_inflates_with_zlib_ng(monkeypatch):
    monkeypatch.delenv(inflater.ENV, raising=False)
    inflater.reset()
    try:
        mod = inflater.module()
        assert inflater.name(mod) == 'zlib-ng'
        assert mod.__file__ == installed_extension()
    finally:
        inflater.reset()


def test_loaded_from_a_zip_through_memory(tmp_path):
    ours = importlib.machinery.EXTENSION_SUFFIXES[0]
    path = archive(str(tmp_path / 'lib.zip'),
                   ['.cpython-20-x86_64-linux-gnu.so', ours])
    name, where, ok = probe(tmp_path, path)
    assert name == 'zlib-ng'
    assert where.startswith('/proc/self/fd/')
    assert ok == 'True'


def test_no_extension_for_this_interpreter_means_zlib(tmp_path):
    path = archive(str(tmp_path / 'lib.zip'), ['.cpython-20-x86_64-linux-gnu.so'])
    assert probe(tmp_path, path) == ['zlib', getattr(zlib, '__file__', ''), 'True']


def test_broken_extension_means_zlib(tmp_path):
    path = str(tmp_path / 'lib.zip')
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('zlib_ng/__init__.py', '')
        z.writestr('zlib_ng/zlib_ng' + importlib.machinery.EXTENSION_SUFFIXES[0],
                   b'\x7fELF but not a library')
    assert probe(tmp_path, path)[0::2] == ['zlib', 'True']


def test_environment_asks_for_zlib(tmp_path):
    path = archive(str(tmp_path / 'lib.zip'), importlib.machinery.EXTENSION_SUFFIXES[:1])
    assert probe(tmp_path, path, CONTAINERREGISTRY_INFLATER='zlib')[0::2] == ['zlib', 'True']


@pytest.mark.parametrize('choice', ['zlib-ng', 'zlib'])
def test_deflate_stays_upstreams(monkeypatch, choice):
    """Only inflating changes: gzip_stream writes stock zlib level 9 either way."""
    import gzip
    import io
    from containerregistry.client.v2_2 import compression
    monkeypatch.setenv(inflater.ENV, 'zlib' if choice == 'zlib' else '')
    inflater.reset()
    try:
        assert inflater.name(inflater.module()) == choice
        data = b'some layer data ' * 10000
        out = io.BytesIO()
        compression.gzip_stream(io.BytesIO(data), out)
        assert out.getvalue() == gzip.compress(data, 9, mtime=compression.GZIP_MTIME)
    finally:
        inflater.reset()


def interpreters() -> dict:
    """Extension suffix -> a CPython 3.10+ on this machine that has it.

    The one running the tests, /usr/bin/python3 and pyenv's, when present.
    """
    found = {}
    candidates = [sys.executable, '/usr/bin/python3'] + sorted(
        glob.glob(os.path.expanduser('~/.pyenv/versions/3.*/bin/python3')))
    for python in candidates:
        try:
            proc = subprocess.run(
                [python, '-c', 'import sys, sysconfig; '
                 'print(sys.version_info >= (3, 10), sysconfig.get_config_var("EXT_SUFFIX"))'],
                capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        ok, _, suffix = proc.stdout.strip().partition(' ')
        if proc.returncode == 0 and ok == 'True':
            found.setdefault(suffix, python)
    return found


def small_save_tarball(path: str) -> bytes:
    """A one-layer docker-save tarball with a gzipped layer; returns the layer's tar."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode='w') as tar:
        info = tarfile.TarInfo('etc/words')
        payload = b'alpha bravo charlie ' * 20000
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = data.getvalue()
    config = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': [
        'sha256:' + hashlib.sha256(layer).hexdigest()]}}).encode()
    manifest = json.dumps([{'Config': 'c.json', 'Layers': ['l.tar.gz'],
                            'RepoTags': ['a/b:c']}]).encode()
    with tarfile.open(path, 'w') as tar:
        for name, body in (('c.json', config), ('l.tar.gz', gzip.compress(layer)),
                           ('manifest.json', manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return layer


def test_par_inflates_with_zlib_ng_on_every_interpreter_it_carries(tmp_path):
    """The importer .par on each CPython here: zlib-ng where it carries that
    interpreter's module, zlib otherwise; the same layout either way."""
    par = pars.par_path('importer')
    with zipfile.ZipFile(par) as z:
        carried = {n[len('zlib_ng/zlib_ng'):] for n in z.namelist()
                   if n.startswith('zlib_ng/zlib_ng.') and n.endswith('.so')}
    assert importlib.machinery.EXTENSION_SUFFIXES[0] in carried
    tarball = str(tmp_path / 'save.tar')
    small_save_tarball(tarball)
    env = {'PATH': os.environ.get('PATH', '')}
    layouts = []
    for suffix, python in sorted(interpreters().items()):
        out = tmp_path / ('out' + suffix)
        proc = subprocess.run([python, par, '--tarball', tarball, '--directory', str(out),
                               '--format', 'tar.gz', '--stderrthreshold', 'DEBUG'],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (python, proc.stderr)
        want = 'zlib-ng' if suffix in carried else 'zlib'
        assert [line for line in proc.stderr.splitlines()
                if line.endswith('] inflating with ' + want)], (python, proc.stderr)
        layouts.append({n: (out / n).read_bytes() for n in sorted(os.listdir(out))})
    assert layouts and all(layout == layouts[0] for layout in layouts)
