"""HTTP(S)_PROXY / NO_PROXY: choice of proxy, CONNECT tunnels, forwarded requests.

The registry is real; clients name it `registry.test:PORT` (PROXIED_NAME),
which only the test proxy (testing/forward_proxy.py) resolves, so a request
that reached the registry went through the proxy.
"""
import base64

import pytest

from containerregistry.testing import forward_proxy
from containerregistry.testing import images
from containerregistry.testing import registry as reg
from containerregistry.transport import pooled_http
from containerregistry.transport import proxy_env

_VARS = ('HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY',
         'no_proxy', 'ALL_PROXY', 'all_proxy', 'REQUEST_METHOD')


@pytest.fixture
def env(monkeypatch):
    """A clean proxy environment for this process; returns monkeypatch."""
    for key in _VARS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def basic(user: str, password: str) -> str:
    return 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode()).decode()


# Choosing the proxy (no server).

def test_scheme_picks_the_variable(env):
    env.setenv('https_proxy', 'http://secure.corp:3128')
    env.setenv('http_proxy', 'plain.corp:8080')
    assert proxy_env.for_url('https', 'gcr.io') == proxy_env.Proxy('secure.corp', 3128)
    assert proxy_env.for_url('http', 'registry.corp') == proxy_env.Proxy('plain.corp',
                                                                         8080)


def test_lower_case_wins_and_upper_case_works(env):
    env.setenv('HTTPS_PROXY', 'http://upper:1')
    assert proxy_env.for_url('https', 'gcr.io').host == 'upper'
    env.setenv('https_proxy', 'http://lower:2')
    assert proxy_env.for_url('https', 'gcr.io').host == 'lower'


def test_credentials_become_basic_and_stay_out_of_messages(env):
    env.setenv('https_proxy', 'http://me:p%40ss@proxy.corp:3128')
    proxy = proxy_env.for_url('https', 'gcr.io')
    assert proxy.authorization == basic('me', 'p@ss')
    assert str(proxy) == 'proxy proxy.corp:3128'


def test_no_proxy_and_loopback_go_direct(env):
    env.setenv('https_proxy', 'http://proxy.corp:3128')
    env.setenv('no_proxy', 'example.com,.internal')
    assert proxy_env.for_url('https', 'reg.example.com') is None
    assert proxy_env.for_url('https', 'example.com') is None
    assert proxy_env.for_url('https', 'hub.internal') is None
    assert proxy_env.for_url('https', 'gcr.io') is not None
    for host in ('localhost', 'LOCALHOST', 'a.localhost', '127.0.0.1', '127.3.4.5',
                 '::1', '[::1]'):
        assert proxy_env.for_url('https', host) is None, host
    env.setenv('no_proxy', '*')
    assert proxy_env.for_url('https', 'gcr.io') is None


def test_http_proxy_is_ignored_in_a_cgi_request(env):
    env.setenv('REQUEST_METHOD', 'GET')
    env.setenv('HTTP_PROXY', 'http://from-a-client-header:1')
    assert proxy_env.for_url('http', 'registry.corp') is None


def test_unusable_proxy_settings(env):
    for value, message in [('socks5://proxy:1080', "unsupported proxy scheme 'socks5'"),
                           ('https://proxy:443', "unsupported proxy scheme 'https'"),
                           ('http://proxy:99999', 'bad proxy port')]:
        env.setenv('https_proxy', value)
        with pytest.raises(proxy_env.ProxyConfigError, match=message):
            proxy_env.for_url('https', 'gcr.io')


# Through a real proxy to the real registry.

@pytest.fixture
def proxy():
    p = forward_proxy.ForwardProxy({reg.PROXIED_NAME: '127.0.0.1'},
                                   credentials=('pu', 'pp'))
    yield p
    p.stop()


def test_https_goes_through_a_connect_tunnel(env, proxy, tls_registry):
    env.setenv('HTTPS_PROXY', proxy.url(('pu', 'pp')))
    url = 'https://%s:%d/v2/' % (reg.PROXIED_NAME, tls_registry.port)
    http = pooled_http.Http(ca_certs=tls_registry.ca_path)
    resp, _ = http.request(url)
    assert resp.status == 200
    assert resp['docker-distribution-api-version'] == 'registry/2.0'
    http.request(url)
    # One tunnel, kept alive for the second request.
    assert [(line.rsplit(' ', 1)[0], auth) for line, auth in proxy.seen] == [
        ('CONNECT %s:%d' % (reg.PROXIED_NAME, tls_registry.port), basic('pu', 'pp'))]


def test_plain_http_is_forwarded_with_absolute_urls(env, proxy, registry, tmp_path):
    env.setenv('http_proxy', proxy.url(('pu', 'pp')))
    base = 'http://%s:%d' % (reg.PROXIED_NAME, registry.port)
    http = pooled_http.Http()
    data = b'through the proxy ' * 5000
    blob = tmp_path / 'blob'
    blob.write_bytes(data)
    resp, _ = http.request(base + '/v2/proxied/blob/blobs/uploads/', 'POST',
                           headers={'Content-Length': '0'})
    assert resp.status == 202
    location = resp['location']
    location = location if location.startswith('http') else base + location
    with open(blob, 'rb') as f:
        resp, _ = http.request(location + '&digest=' + images.sha256(data), 'PUT', body=f,
                               headers={'Content-Length': str(len(data))})
    assert resp.status == 201
    resp, got = http.request(base + '/v2/proxied/blob/blobs/' + images.sha256(data))
    assert resp.status == 200 and got == data
    assert proxy.seen[0] == ('POST %s/v2/proxied/blob/blobs/uploads/ HTTP/1.1' % base,
                             basic('pu', 'pp'))


def test_puller_through_the_proxy(proxy, tls_registry, repo_name, pull, tool_env):
    pushed = images.push_image(tls_registry, repo_name + ':t', [
        images.make_layer(601), images.make_layer(602)])
    env = dict(tool_env, HTTPS_PROXY=proxy.url(('pu', 'pp')),
               SSL_CERT_FILE=tls_registry.ca_path)
    proc = pull('%s:%d/%s:t' % (reg.PROXIED_NAME, tls_registry.port, repo_name), env=env)
    pull.assert_pulled(proc, pushed)
    assert proxy.seen and all(line.startswith('CONNECT %s:' % reg.PROXIED_NAME)
                              for line, _ in proxy.seen)


def test_proxy_refusing_credentials_is_one_line(proxy, tls_registry, repo_name, pull,
                                                tool_env):
    env = dict(tool_env, HTTPS_PROXY=proxy.url(('pu', 'wrong-secret')),
               SSL_CERT_FILE=tls_registry.ca_path)
    proc = pull('%s:%d/%s:t' % (reg.PROXIED_NAME, tls_registry.port, repo_name), env=env)
    line = pull.assert_failed(proc, 'proxy 127.0.0.1:%d' % proxy.port, '407')
    assert 'wrong-secret' not in proc.stderr
    # Refused is final: not asked again.
    assert len(proxy.seen) == 1, line


def test_localhost_never_goes_through_a_proxy(registry, repo_name, pull, tool_env):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(611)])
    dead = 'http://127.0.0.1:9'  # discard port: nothing listens
    env = dict(tool_env, HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead,
               https_proxy=dead)
    env.pop('NO_PROXY')
    env.pop('no_proxy')
    pull.assert_pulled(pull('%s/%s:t' % (registry.host, repo_name), env=env), pushed)
