"""Makes the checkout importable as `containerregistry` and loads the fixtures.

The repository root is the package, but a clone's folder has another name, so
a symlink named `containerregistry` in a temporary folder is put on sys.path.
"""
import hashlib
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shim() -> str:
    tag = hashlib.sha256(ROOT.encode()).hexdigest()[:12]
    shim = os.path.join(tempfile.gettempdir(), 'containerregistry-shim-' + tag)
    link = os.path.join(shim, 'containerregistry')
    if not os.path.islink(link):
        os.makedirs(shim, exist_ok=True)
        tmp = link + '.%d' % os.getpid()
        os.symlink(ROOT, tmp)
        os.replace(tmp, link)
    return shim


sys.path.insert(0, _shim())


# FIXTURES: real registries, image helpers and tool environments.
import pytest  # noqa: E402


@pytest.fixture(scope='session')
def registry():
    """An anonymous registry (plain http, `registry.host` = localhost:PORT)."""
    from containerregistry.testing import registry as reg
    r = reg.start_registry()
    yield r
    r.stop()


@pytest.fixture(scope='session')
def basic_registry():
    """A registry with htpasswd auth (`.username` / `.password`)."""
    from containerregistry.testing import registry as reg
    r = reg.start_registry(auth='basic')
    yield r
    r.stop()


@pytest.fixture(scope='session')
def token_registry():
    """A registry with bearer-token auth; anonymous pulls only under public/."""
    from containerregistry.testing import registry as reg
    r = reg.start_registry(auth='token')
    yield r
    r.stop()


@pytest.fixture(scope='session')
def tls_registry():
    """An anonymous https registry; `.tls_host`, `.ca_path`."""
    from containerregistry.testing import registry as reg
    r = reg.start_registry(tls=True)
    yield r
    r.stop()


@pytest.fixture(scope='session', autouse=True)
def _stop_registries():
    yield
    from containerregistry.testing import registry as reg
    reg.stop_all()


@pytest.fixture
def repo_name(request):
    """A repository name unique to the running test."""
    import re
    import uuid
    base = re.sub(r'[^a-z0-9]+', '-', request.node.name.lower()).strip('-')[:40]
    return 'test/%s-%s' % (base or 'repo', uuid.uuid4().hex[:8])


@pytest.fixture
def tool_env(tmp_path):
    """Environment for tool subprocesses, isolated from the machine's docker config.

    HOME and DOCKER_CONFIG point at empty temp dirs; proxies and
    SSL_CERT_FILE/SSL_CERT_DIR are cleared.
    """
    from containerregistry.testing import pars
    env = pars.tool_env()
    home = tmp_path / 'home'
    home.mkdir()
    env['HOME'] = str(home)
    env['DOCKER_CONFIG'] = str(home / '.docker')
    for key in ('SSL_CERT_FILE', 'SSL_CERT_DIR', 'REQUESTS_CA_BUNDLE',
                'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy',
                'ALL_PROXY', 'all_proxy'):
        env.pop(key, None)
    env['NO_PROXY'] = env['no_proxy'] = 'localhost,127.0.0.1'
    return env


class PullerRun:
    """Runs the puller against test registries and checks what it leaves."""

    def __init__(self, env: dict, tmp_path):
        self.env = env
        self.tmp_path = tmp_path
        self._count = 0

    def new_dir(self) -> str:
        self._count += 1
        return str(self.tmp_path / ('image%d' % self._count))

    def __call__(self, name: str, *args: str, directory: str = None, env: dict = None,
                 timeout: float = 120):
        """Pulls NAME into DIRECTORY (a fresh one by default)."""
        from containerregistry.testing import pars
        directory = directory or self.new_dir()
        argv = ['--name', name, '--directory', directory] + list(args)
        proc = pars.run_tool('puller', *argv, env=env or self.env, timeout=timeout)
        proc.directory = directory
        return proc

    @staticmethod
    def layout(directory: str) -> dict:
        """{file name: bytes} of a puller output directory."""
        out = {}
        for entry in sorted(os.listdir(directory)):
            with open(os.path.join(directory, entry), 'rb') as f:
                out[entry] = f.read()
        return out

    def assert_pulled(self, proc, image) -> None:
        """The directory holds exactly IMAGE's fast layout (a PushedImage)."""
        assert proc.returncode == 0, proc.stderr
        assert 'Traceback' not in proc.stderr
        files = self.layout(proc.directory)
        expected = {'config.json', 'digest', 'manifest.json'}
        for i in range(len(image.layers)):
            expected |= {'%03d.tar.gz' % i, '%03d.sha256' % i}
        assert set(files) == expected
        assert files['digest'] == image.digest.encode()
        assert files['manifest.json'] == image.manifest
        assert files['config.json'] == image.config
        for i, layer in enumerate(image.layers):
            assert files['%03d.sha256' % i] == layer.hex.encode(), i
            assert files['%03d.tar.gz' % i] == layer.blob, i

    @staticmethod
    def assert_failed(proc, *needles: str, exit_code: int = 1) -> str:
        """A clean one-line failure mentioning NEEDLES; returns the line.

        Each needle may be a tuple of alternatives. WARNING lines (retries)
        may come before it. Nothing that looks like a finished pull (digest,
        config.json, *.tar.gz) nor any temp file stays.
        """
        import re
        from containerregistry.testing import pars
        assert proc.returncode == exit_code, (proc.returncode, proc.stderr)
        assert 'Traceback' not in proc.stderr, proc.stderr
        lines = pars.error_lines(proc.stderr)
        assert len(lines) == 1, proc.stderr
        line = lines[0]
        for needle in needles:
            alternatives = needle if isinstance(needle, tuple) else (needle,)
            assert any(a in line for a in alternatives), (alternatives, line)
        directory = getattr(proc, 'directory', None)
        if directory and os.path.isdir(directory):
            left = os.listdir(directory)
            allowed = re.compile(r'^(manifest\.json|\d{3}\.sha256)$')
            assert all(allowed.match(n) for n in left), left
        return line


@pytest.fixture
def pull(tool_env, tmp_path):
    """`pull(name, *args)` runs the puller; see PullerRun."""
    return PullerRun(tool_env, tmp_path)
