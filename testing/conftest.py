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
