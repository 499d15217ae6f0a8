"""inflater: zlib-ng where the interpreter can load it, else the stdlib's zlib.

The archive cases run a fresh interpreter without site-packages (`-S`),
with only a zip on its path holding `zlib_ng` the way a .par holds it: the
package's Python files next to extension modules for several interpreters.
"""
import importlib.machinery
import os
import subprocess
import sys
import zipfile
import zlib

import pytest

import containerregistry
from containerregistry.client.v2_2 import inflater

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
