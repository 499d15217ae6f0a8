"""patched.Httplib2: httplib2's CA bundle when httplib2 is inside a zip."""
import os
import subprocess
import sys
import zipfile

import httplib2
import pytest

from containerregistry.tools import patched

HTTPLIB2_DIR = os.path.dirname(httplib2.__file__)


def bundled_cacerts() -> bytes:
    with open(os.path.join(HTTPLIB2_DIR, 'cacerts.txt'), 'rb') as f:
        return f.read()


def test_extracts_when_bundle_is_not_a_file(monkeypatch, tmp_path):
    missing = str(tmp_path / 'in.par' / 'httplib2' / 'cacerts.txt')
    monkeypatch.setattr(httplib2, 'CA_CERTS', missing)
    with patched.Httplib2():
        path = httplib2.CA_CERTS
        assert path != missing
        with open(path, 'rb') as f:
            assert f.read() == bundled_cacerts()
    assert httplib2.CA_CERTS == missing
    assert not os.path.exists(path)
    assert not os.path.exists(os.path.dirname(path))


def test_cleans_up_on_error(monkeypatch, tmp_path):
    monkeypatch.setattr(httplib2, 'CA_CERTS', str(tmp_path / 'missing'))
    with pytest.raises(KeyError):
        with patched.Httplib2():
            path = httplib2.CA_CERTS
            raise KeyError('boom')
    assert not os.path.exists(path)
    assert httplib2.CA_CERTS == str(tmp_path / 'missing')


def test_leaves_a_real_file_alone(monkeypatch, tmp_path):
    real = tmp_path / 'ca.pem'
    real.write_bytes(b'pem')
    monkeypatch.setattr(httplib2, 'CA_CERTS', str(real))
    with patched.Httplib2():
        assert httplib2.CA_CERTS == str(real)
    assert httplib2.CA_CERTS == str(real)
    assert real.read_bytes() == b'pem'


PROGRAM = '''
import os, sys
sys.modules['certifi'] = None  # as in a .par without certifi
import httplib2
assert httplib2.__file__.startswith(sys.argv[1]), httplib2.__file__
inside = httplib2.CA_CERTS
assert not os.path.isfile(inside), inside
from containerregistry.tools import patched
with patched.Httplib2():
    path = httplib2.CA_CERTS
    assert os.path.isfile(path)
    import ssl
    ssl.create_default_context(cafile=path)
    print(open(path, 'rb').read().count(b'BEGIN CERTIFICATE'))
assert httplib2.CA_CERTS == inside
assert not os.path.exists(path)
'''


def test_from_a_zip(tmp_path):
    """httplib2 imported from a zip, as in a .par, without a CA override."""
    archive = str(tmp_path / 'deps.zip')
    with zipfile.ZipFile(archive, 'w') as z:
        for folder, _, files in os.walk(HTTPLIB2_DIR):
            for name in files:
                if not name.endswith('.pyc'):
                    path = os.path.join(folder, name)
                    z.write(path, os.path.join(
                        'httplib2', os.path.relpath(path, HTTPLIB2_DIR)))
    shim = [p for p in sys.path
            if os.path.islink(os.path.join(p, 'containerregistry'))]
    env = {k: v for k, v in os.environ.items()
           if k not in ('HTTPLIB2_CA_CERTS', 'PYTHONPATH')}
    env['PYTHONPATH'] = os.pathsep.join([archive] + shim)
    result = subprocess.run([sys.executable, '-c', PROGRAM, archive],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == bundled_cacerts().count(b'BEGIN CERTIFICATE')
    assert int(result.stdout) > 10


def test_module_does_not_import_httplib2():
    shim = [p for p in sys.path
            if os.path.islink(os.path.join(p, 'containerregistry'))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(shim))
    code = ('import sys\n'
            'from containerregistry.tools import patched\n'
            'assert "httplib2" not in sys.modules\n')
    subprocess.run([sys.executable, '-c', code], env=env, check=True)

