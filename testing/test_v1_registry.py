"""The v1 registry protocol: `v1.docker_image.FromRegistry`, `v1.docker_session.Push`.

No maintained registry serves v1, so these run against testing/v1_registry.py
(index and endpoint on two ports, Basic at the index, tokens at the
endpoint, checksums enforced). Images pushed must read back byte for byte;
credentials must reach the index only and the session token the endpoint
only; failures raise upstream's exception classes with one-line messages.
"""
import json
import random
import socket
import tarfile
import time

import httplib2
import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v1 import docker_creds as v1_creds
from containerregistry.client.v1 import docker_http
from containerregistry.client.v1 import docker_image
from containerregistry.client.v1 import docker_session
from containerregistry.client.v1 import save as v1_save
from containerregistry.testing import images
from containerregistry.testing import v1_registry
from containerregistry.transport import pooled_http
from containerregistry.transport import streaming

USER = ('alice', 's3cret')
TARS = [images.make_layer(41), images.make_layer(42, 3000, 'text'),
        images.make_layer(43, 500)]


def _transport(kind: str):
    if kind == 'httplib2':
        return httplib2.Http(timeout=30)
    return pooled_http.Http(connect_timeout=5, read_timeout=30)


@pytest.fixture
def server():
    with v1_registry.V1Registry(credentials=USER) as s:
        yield s


def _random(seed: int, num_layers: int = 3) -> docker_image.Random:
    rng = random.Random(seed)
    return docker_image.Random(lambda p, k: bytes(rng.choices(p, k=k)),
                               num_layers=num_layers, layer_byte_size=300)


def _served(server, repo: str, tag: str):
    """Serves TARS as REPO:TAG; returns [(id, json, layer)], base first."""
    layers = []
    parent = None
    for i, tar in enumerate(TARS):
        layer_id = '%02x' % (i + 1) * 32
        metadata = {'id': layer_id, 'created': images.CREATED}
        if parent:
            metadata['parent'] = parent
        layers.append((layer_id, json.dumps(metadata).encode(),
                       images.gzip_bytes(tar)))
        parent = layer_id
    server.add(repo, tag, layers)
    return layers


def _pull(server, ref: str) -> docker_image.FromRegistry:
    """FromRegistry for REF on SERVER, with the right credentials."""
    name = (docker_name.Tag if ':' in ref else docker_name.Repository)(
        '%s/%s' % (server.registry, ref))
    return docker_image.FromRegistry(name, docker_creds.Basic(*USER),
                                     pooled_http.Http())


def _push(server, ref: str, image, transport=None) -> docker_name.Tag:
    """Pushes IMAGE to REF on SERVER; returns the tag."""
    tag = docker_name.Tag('%s/%s' % (server.registry, ref))
    with docker_session.Push(tag, docker_creds.Basic(*USER),
                             transport or pooled_http.Http()) as session:
        session.upload(image)
    return tag


def _creds_reached(server):
    """{role: set of Authorization schemes} the server saw."""
    reached = {}
    for seen in server.seen:
        scheme = seen.authorization.split(' ')[0] if seen.authorization else ''
        reached.setdefault(seen.role, set()).add(scheme)
    return reached


@pytest.mark.parametrize('kind', ['httplib2', 'pooled'])
def test_from_registry_reads_image(server, kind):
    layers = _served(server, 'lib/app', 'v1')
    ids = [layer[0] for layer in layers][::-1]
    name = docker_name.Tag('%s/lib/app:v1' % server.registry)
    with docker_image.FromRegistry(name, docker_creds.Basic(*USER),
                                   _transport(kind)) as img:
        assert img.top() == ids[0]
        assert img.tags() == ['v1']
        assert img.raw_tags() == {'v1': ids[0]}
        assert img.repositories() == {'lib/app': {'v1': ids[0]}}
        assert img.ancestry(ids[0]) == ids
        assert img.ancestry(ids[1]) == ids[1:]
        for layer_id, metadata, blob in layers:
            assert img.json(layer_id).encode() == metadata
            assert img.layer(layer_id) == blob
        assert [img.uncompressed_layer(i) for i in ids] == TARS[::-1]
        assert img.parent(ids[0]) == ids[1]
        assert img.parent(ids[-1]) is None
    assert _creds_reached(server) == {'index': {'Basic'},
                                      'endpoint': {'Token'}}


def test_from_registry_without_credentials_sends_none():
    with v1_registry.V1Registry() as server:
        _served(server, 'lib/app', 'v1')
        name = docker_name.Tag('%s/lib/app:v1' % server.registry)
        with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                       pooled_http.Http()) as img:
            assert img.uncompressed_layer(img.top()) == TARS[-1]
        assert _creds_reached(server) == {'index': {''}, 'endpoint': {'Token'}}


def test_repository_name_lists_tags(server):
    _served(server, 'lib/app', 'v1')
    with _pull(server, 'lib/app') as img:
        assert img.tags() == ['v1']
        with pytest.raises(ValueError, match='names no tag'):
            img.top()


def test_missing_tag_names_the_tags_there(server):
    _served(server, 'lib/app', 'v1')
    with _pull(server, 'lib/app:nope') as img:
        with pytest.raises(KeyError, match='nope: no such tag .*tags: v1'):
            img.top()


def test_unknown_image_is_bad_status_404(server):
    _served(server, 'lib/app', 'v1')
    with _pull(server, 'lib/app:v1') as img:
        with pytest.raises(docker_http.BadStatusException) as e:
            img.json('f' * 64)
    assert e.value.status == 404
    assert str(e.value) == ('GET http://%s/v1/images/%s/json: 404 Not Found: '
                            'Image not found' % (server.endpoint, 'f' * 64))
    assert json.loads(e.value.content) == {'error': 'Image not found'}


def test_unknown_repository_is_bad_status_404(server):
    with pytest.raises(docker_http.BadStatusException) as e:
        with _pull(server, 'lib/none:v1'):
            pass
    assert e.value.status == 404


@pytest.mark.parametrize('creds', [docker_creds.Basic('alice', 'wrong'),
                                   docker_creds.Anonymous()])
def test_bad_credentials_are_bad_status_401(server, creds):
    _served(server, 'lib/app', 'v1')
    name = docker_name.Tag('%s/lib/app:v1' % server.registry)
    with pytest.raises(docker_http.BadStatusException) as e:
        with docker_image.FromRegistry(name, creds, pooled_http.Http()):
            pass
    assert e.value.status == 401
    assert 'wrong' not in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(docker_http.BadStatusException) as e:
        with docker_session.Push(docker_name.Tag('%s/lib/new:v1'
                                                 % server.registry),
                                 creds, pooled_http.Http()):
            pass
    assert e.value.status == 401
    assert {s.role for s in server.seen} == {'index'}


def test_json_of_another_image_is_refused(server):
    other = 'e' * 64
    server.add('lib/app', 'v1', [('d' * 64, json.dumps({'id': other}).encode(),
                                  images.gzip_bytes(TARS[0]))])
    with _pull(server, 'lib/app:v1') as img:
        with pytest.raises(docker_http.BadStateException,
                           match='is not its own'):
            img.json(img.top())


def _read_back(server, tag: docker_name.Tag, source) -> None:
    """TAG on SERVER holds SOURCE's layers, JSON and chain byte for byte."""
    ids = source.ancestry(source.top())
    assert server.repositories[tag.repository][tag.tag] == source.top()
    for layer_id in ids:
        assert server.images[layer_id].json == source.json(layer_id).encode()
        assert server.images[layer_id].layer == source.layer(layer_id)
    with _pull(server, '%s:%s' % (tag.repository, tag.tag)) as back:
        assert back.top() == source.top()
        assert back.ancestry(back.top()) == ids
        for layer_id in ids:
            assert back.json(layer_id) == source.json(layer_id)
            assert back.layer(layer_id) == source.layer(layer_id)


@pytest.mark.parametrize('kind', ['httplib2', 'pooled'])
def test_push_random_image_reads_back(server, kind):
    image = _random(7)
    tag = _push(server, 'pushed/random:latest', image, _transport(kind))
    _read_back(server, tag, image)
    ids = image.ancestry(image.top())
    assert server.closed == [('pushed/random', [{'id': i} for i in ids])]
    assert _creds_reached(server) == {'index': {'Basic'},
                                      'endpoint': {'Token'}}
    # The session's token died with it.
    assert all('access=write' not in t for t in server.tokens)


def test_push_tarball_image_reads_back(server, tmp_path):
    path = str(tmp_path / 'v1.tar')
    with tarfile.open(path, 'w') as tar:
        v1_save.tarball(docker_name.Tag('bazel/app:v1', strict=False),
                        _random(8, num_layers=2), tar)
    with docker_image.FromTarball(path) as image:
        tag = _push(server, 'bazel/app:v1', image)
        _read_back(server, tag, image)
        with _pull(server, 'bazel/app:v1') as back:
            assert back.uncompressed_layer(back.top()) == \
                image.uncompressed_layer(image.top())


def test_push_skips_layers_the_endpoint_has(server):
    base = _random(9, num_layers=2)
    _push(server, 'lib/a:1', base)
    del server.seen[:]
    second = _push(server, 'lib/b:1', base)
    puts = [s.path for s in server.seen if s.method == 'PUT']
    assert puts == ['/v1/repositories/lib/b/',
                    '/v1/repositories/lib/b/tags/1',
                    '/v1/repositories/lib/b/images']
    _read_back(server, second, base)


def test_failed_push_moves_no_tag(server):
    tag = docker_name.Tag('%s/lib/app:v1' % server.registry)
    with pytest.raises(RuntimeError):
        with docker_session.Push(tag, docker_creds.Basic(*USER),
                                 pooled_http.Http()) as session:
            session.upload(_random(10, num_layers=1))
            raise RuntimeError('interrupted')
    assert server.repositories == {'lib/app': {}}
    assert server.closed == []


def test_push_needs_a_tag(server):
    with pytest.raises(TypeError):
        docker_session.Push(docker_name.Repository('%s/lib/app'
                                                   % server.registry),
                            docker_creds.Anonymous(), pooled_http.Http())


def test_a_silent_registry_fails_within_the_transport_timeout():
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(1)
        name = docker_name.Tag('localhost:%d/lib/app:v1'
                               % silent.getsockname()[1])
        transport = pooled_http.Http(connect_timeout=1, read_timeout=1,
                                     max_retries=0)
        start = time.monotonic()
        with pytest.raises(pooled_http.TransportError, match='sent nothing for 1s'):
            with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                           transport):
                pass
        assert time.monotonic() - start < 5


def _write_session(server):
    resp, _ = docker_http.Request(
        pooled_http.Http(), 'http://%s/v1/repositories/lib/x/'
        % server.registry, docker_creds.Basic(*USER), [200], b'[]')
    return docker_http.EndpointAccess(resp, server.registry,
                                      docker_creds.Basic(*USER))


def test_server_refuses_a_wrong_checksum(server):
    """What the push's checksum guards against: the server notices."""
    base, token = _write_session(server)
    image = _random(11, num_layers=1)
    layer_id = image.top()
    metadata = image.json(layer_id).encode()
    transport = pooled_http.Http()
    docker_http.Request(transport, docker_http.ImageUrl(base, layer_id, 'json'),
                        token, [200], metadata)
    docker_http.Request(transport, docker_http.ImageUrl(base, layer_id, 'layer'),
                        token, [200], image.layer(layer_id))
    with pytest.raises(docker_http.BadStatusException, match='400 .*Checksum '
                       'mismatch'):
        docker_http.Request(
            transport, docker_http.ImageUrl(base, layer_id, 'checksum'), token,
            [200], b'', headers={'X-Docker-Checksum-Payload':
                                 docker_session.checksum_payload(
                                     metadata, image.layer(layer_id) + b'x')})
    # Without its checksum the image is not there: no tag may name it.
    with pytest.raises(docker_http.BadStatusException, match='404'):
        docker_http.Request(transport, '%s/v1/repositories/lib/x/tags/t'
                            % base, token, [200], json.dumps(layer_id))


def test_endpoint_refuses_basic_credentials(server):
    _served(server, 'lib/app', 'v1')
    base, _ = _write_session(server)
    with pytest.raises(docker_http.BadStatusException, match='401'):
        docker_http.Request(pooled_http.Http(),
                            '%s/v1/repositories/lib/app/tags' % base,
                            docker_creds.Basic(*USER), [200])


def _index_answer(**headers):
    return streaming.Response(200, headers)


def test_endpoint_access_token_goes_to_the_endpoint():
    base, creds = docker_http.EndpointAccess(
        _index_answer(**{'X-Docker-Token': 'signature=1,access=read',
                         'X-Docker-Endpoints': 'cdn.example.com, b.example'}),
        'index.example.com', docker_creds.Basic(*USER))
    assert base == 'https://cdn.example.com'
    assert isinstance(creds, v1_creds.Token)
    assert creds.Get() == 'Token signature=1,access=read'
    assert 'signature' not in repr(creds)


def test_endpoint_access_without_token():
    basic = docker_creds.Basic(*USER)
    assert docker_http.EndpointAccess(
        _index_answer(), 'localhost:5000', basic) == ('http://localhost:5000',
                                                      basic)
    base, creds = docker_http.EndpointAccess(
        _index_answer(**{'X-Docker-Endpoints': 'other.example'}),
        'index.example', basic)
    assert base == 'https://other.example'
    assert creds.Get() == ''


def test_endpoint_access_keeps_an_https_index_on_https():
    base, _ = docker_http.EndpointAccess(
        _index_answer(**{'X-Docker-Token': 't',
                         'X-Docker-Endpoints': 'localhost:5000'}),
        'index.example', docker_creds.Anonymous())
    assert base == 'https://localhost:5000'


@pytest.mark.parametrize('headers, error', [
    ({'X-Docker-Endpoints': 'evil.example/path'}, 'invalid endpoint'),
    ({'X-Docker-Endpoints': 'user@evil.example'}, 'invalid endpoint'),
    ({'X-Docker-Token': 'secret\x01', 'X-Docker-Endpoints': 'a.example'},
     'not a valid header value'),
])
def test_endpoint_access_refuses_bad_answers(headers, error):
    with pytest.raises(docker_http.BadStateException, match=error) as e:
        docker_http.EndpointAccess(_index_answer(**headers), 'index.example',
                                   docker_creds.Anonymous())
    assert 'secret' not in str(e.value)


def test_image_url_refuses_ids_that_leave_the_path():
    assert docker_http.ImageUrl('https://a', 'ab' * 32, 'json') == (
        'https://a/v1/images/%s/json' % ('ab' * 32))
    for bad in ['../x', 'a/b', '', '?q']:
        with pytest.raises(ValueError, match='not a v1 image id'):
            docker_http.ImageUrl('https://a', bad, 'json')
