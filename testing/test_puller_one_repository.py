"""A name means one repository: no dot segments, no redirect elsewhere."""
import http.client

import httplib2
import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.testing import images
from containerregistry.testing import proxy as proxy_mod
from containerregistry.transport import pooled_http
from containerregistry.transport import retry
from containerregistry.transport import transport_pool


@pytest.fixture
def proxy(registry):
    p = proxy_mod.start_proxy(registry)
    yield p
    p.stop()


def test_dot_segments_are_refused_before_any_request(registry, repo_name, pull):
    evil = images.push_image(registry, repo_name + '-evil/app:1',
                             [images.make_layer(870)])
    # The registry itself resolves the dot segments, by a redirect.
    conn = http.client.HTTPConnection('127.0.0.1', registry.port, timeout=10)
    try:
        conn.request('GET', '/v2/trusted/../%s-evil/app/manifests/1'
                     % repo_name)
        resp = conn.getresponse()
        assert resp.status == 301
        assert resp.getheader('Location').endswith(
            '/v2/%s-evil/app/manifests/1' % repo_name)
    finally:
        conn.close()
    mark = registry.mark()
    proc = pull('%s/trusted/../%s-evil/app:1' % (registry.host, repo_name))
    line = pull.assert_failed(proc, 'path components must not be empty')
    assert evil.digest not in line
    assert registry.requests_since(mark) == []


def test_manifest_redirect_to_another_repository_is_refused(
        registry, proxy, repo_name, pull):
    trusted = images.push_image(registry, repo_name + '-trusted:1',
                                [images.make_layer(871)])
    evil = images.push_image(registry, repo_name + '-evil:1',
                             [images.make_layer(872)])
    proxy.redirect('/v2/%s/manifests/1' % trusted.repo,
                   '/v2/%s/manifests/1' % evil.repo)
    proc = pull('%s/%s:1' % (proxy.host, trusted.repo))
    pull.assert_failed(proc, 'redirected to another repository path',
                       evil.repo)
    assert proxy.count('GET', '/blobs/') == 0


@pytest.mark.parametrize('kind', ['httplib2', 'pool', 'pooled'])
def test_library_refuses_it_on_either_transport(registry, proxy, repo_name,
                                                kind):
    trusted = images.push_image(registry, repo_name + '-trusted:1',
                                [images.make_layer(873)])
    evil = images.push_image(registry, repo_name + '-evil:1',
                             [images.make_layer(874)])
    proxy.redirect('/v2/%s/manifests/1' % trusted.repo,
                   'http://%s/v2/%s/manifests/1' % (proxy.host, evil.repo),
                   status=302)
    transport = {
        'httplib2': httplib2.Http,
        'pool': lambda: transport_pool.Http(
            retry.Factory().WithSourceTransportCallable(httplib2.Http).Build,
            size=2),
        'pooled': pooled_http.Http,
    }[kind]()
    name = docker_name.Tag('%s/%s:1' % (proxy.host, trusted.repo))
    with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                   transport) as img:
        with pytest.raises(docker_http.BadStateException,
                           match='redirected to another repository path'):
            img.manifest()


def test_redirect_to_the_same_path_on_another_host_is_followed(
        registry, proxy, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':1',
                               [images.make_layer(875)])
    path = '/v2/%s/manifests/1' % pushed.repo
    proxy.redirect(path, 'http://%s%s' % (registry.addr, path), status=307)
    pull.assert_pulled(pull('%s/%s:1' % (proxy.host, pushed.repo)), pushed)
