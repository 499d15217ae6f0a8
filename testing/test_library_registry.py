"""The library as upstream's callers use it, against the real registry.

rules_docker and other callers pass a bare `httplib2.Http()` (or upstream's
pool of retrying httplib2 transports); those must keep working, buffered,
beside the streaming transport the tools use.
"""
import hashlib
import json

import httplib2
import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import docker_image_list
from containerregistry.testing import images
from containerregistry.transport import retry
from containerregistry.transport import transport_pool
from containerregistry.transport import pooled_http


def _transports():
    return {
        'httplib2': httplib2.Http(),
        'pool': transport_pool.Http(
            retry.Factory().WithSourceTransportCallable(httplib2.Http).Build,
            size=2),
        'pooled': pooled_http.Http(),
    }


@pytest.fixture(scope='module')
def pushed(registry):
    layers = [images.make_layer(71, 3000), images.make_layer(72, 5000)]
    return images.push_image(registry, 'lib/single:t', layers)


@pytest.mark.parametrize('kind', ['httplib2', 'pool', 'pooled'])
def test_from_registry_reads_image(registry, pushed, kind):
    transport = _transports()[kind]
    name = docker_name.Tag(pushed.by_tag)
    with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                   transport) as img:
        assert img.exists()
        assert img.digest() == pushed.digest
        assert img.manifest().encode() == pushed.manifest
        assert img.config_file().encode() == pushed.config
        assert img.fs_layers() == [l.digest for l in reversed(pushed.layers)]
        assert img.diff_ids() == [l.diff_id for l in reversed(pushed.layers)]
        for layer in pushed.layers:
            assert img.blob(layer.digest) == layer.blob
            assert img.blob_size(layer.digest) == len(layer.blob)
            assert img.uncompressed_layer(layer.diff_id) == layer.tar
        assert 't' in img.tags()


def test_exists_is_false_for_unknown_tag(registry, pushed):
    name = docker_name.Tag('%s/lib/single:nope' % registry.host)
    with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                   httplib2.Http()) as img:
        assert not img.exists()


def test_digest_name_checks_the_manifest(registry, pushed):
    name = docker_name.Digest(pushed.by_digest)
    with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                   httplib2.Http()) as img:
        assert docker_digest.SHA256(img.manifest().encode()) == pushed.digest


def test_list_resolves_with_httplib2(registry):
    index = images.push_index(
        registry, 'lib/list:t', seed=5,
        platforms=[{'os': 'linux', 'architecture': 'amd64'},
                   {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}])
    name = docker_name.Tag(index.by_tag)
    with docker_image_list.FromRegistry(name, docker_creds.Anonymous(),
                                        httplib2.Http()) as lst:
        assert lst.exists()
        assert lst.digest() == index.digest
        platform = docker_image_list.Platform(
            {'os': 'linux', 'architecture': 'arm64'})
        child = lst.resolve(platform)
        with child:
            want = index.child(os='linux', architecture='arm64', variant='v8')
            assert child.digest() == want.digest
            assert json.loads(child.config_file()) == json.loads(want.config)


_MIXED = [{'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'},
          {'os': 'windows', 'architecture': 'amd64',
           'os.version': '10.0.17763.1234'},
          {'os': 'linux', 'architecture': 'amd64'}]


@pytest.fixture(scope='module')
def mixed(registry):
    """A list whose linux/amd64 child is neither first nor alone."""
    return images.push_index(registry, 'lib/mixed:t', seed=6, platforms=_MIXED)


def _open_list(index):
    return docker_image_list.FromRegistry(
        docker_name.Tag(index.by_tag), docker_creds.Anonymous(),
        httplib2.Http())


@pytest.mark.parametrize('args', [(), (None,)], ids=['no-target', 'None'])
def test_registry_list_without_target_means_linux_amd64(mixed, args):
    amd = mixed.child(os='linux', architecture='amd64')
    with _open_list(mixed) as lst:
        assert [c.digest() for c in lst.resolve_all(*args)] == [amd.digest]
        assert lst.resolve(*args).digest() == amd.digest
        # Every entry is still there for whoever walks the list.
        assert sorted(c.digest() for _, c in lst) == sorted(
            c.digest for c in mixed.children)


class _Forwarding(docker_image_list.Delegate):
    """Delegate leaves entering to its subclasses, as upstream's does."""

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


def _children(lst):
    return [(platform, child) for platform, child in lst]


@pytest.mark.parametrize('args', [(), (None,)], ids=['no-target', 'None'])
def test_synthesized_list_without_target_means_linux_amd64(mixed, args):
    amd = mixed.child(os='linux', architecture='amd64')
    with _open_list(mixed) as lst:
        synthesized = docker_image_list.FromList(_children(lst))
        with synthesized:
            assert [c.digest() for c in synthesized.resolve_all(*args)] == [
                amd.digest]
            assert synthesized.resolve(*args).digest() == amd.digest
            delegate = _Forwarding(synthesized)
            assert [c.digest() for c in delegate.resolve_all(*args)] == [
                amd.digest]


def test_synthesized_list_searches_nested_lists(registry, mixed):
    """A nested list yields its matching images, never itself."""
    other = images.push_index(
        registry, 'lib/mixed:other', seed=7,
        platforms=[{'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'},
                   {'os': 'linux', 'architecture': 'ppc64le'}])
    arm = docker_image_list.Platform({'os': 'linux', 'architecture': 'arm64'})
    ppc = docker_image_list.Platform({'os': 'linux', 'architecture': 'ppc64le'})
    with _open_list(mixed) as inner, _open_list(other) as second:
        by_platform = {p.architecture(): c for p, c in _children(second)}
        nested = docker_image_list.FromList(_children(inner))
        outer = docker_image_list.FromList([
            (None, inner), (arm, by_platform['arm64']), (None, nested)])
        with outer:
            found = outer.resolve_all()
            assert all(isinstance(c, docker_image.DockerImage) for c in found)
            assert [c.digest() for c in found] == [
                mixed.child(os='linux', architecture='amd64').digest]
            want_arm = sorted([
                mixed.child(os='linux', architecture='arm64',
                            variant='v8').digest,
                other.child(os='linux', architecture='arm64',
                            variant='v8').digest])
            assert [c.digest() for c in outer.resolve_all(arm)] == want_arm
            assert outer.resolve(arm).digest() == want_arm[0]
            # The ppc64le image is in no entry of OUTER.
            assert outer.resolve_all(ppc) == []
            with pytest.raises(docker_image_list.PlatformNotFoundError):
                outer.resolve(ppc)


def test_wrong_blob_digest_is_refused_not_returned(registry, pushed):
    """Asking for a blob under another digest must not return its bytes."""
    name = docker_name.Tag(pushed.by_tag)
    with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                   pooled_http.Http()) as img:
        missing = 'sha256:' + hashlib.sha256(b'absent').hexdigest()
        with pytest.raises(docker_http.V2DiagnosticException) as err:
            img.blob(missing)
        assert err.value.status == 404
        assert 'BLOB_UNKNOWN' in str(err.value)


def test_save_uncompressed_writes_layer_tars_and_diff_ids(registry, pushed,
                                                          tmp_path):
    from containerregistry.client.v2_2 import save
    name = docker_name.Tag(pushed.by_tag)
    with docker_image_list.open_image(name, docker_creds.Anonymous(),
                                      pooled_http.Http()) as img:
        config_path, layers = save.uncompressed(img, str(tmp_path / 'u'),
                                                threads=2)
    assert open(config_path, 'rb').read() == pushed.config
    assert len(layers) == len(pushed.layers)
    for (hex_path, tar_path), layer in zip(layers, pushed.layers):
        assert open(tar_path, 'rb').read() == layer.tar
        assert open(hex_path).read() == layer.diff_id.split(':')[1]
    assert (tmp_path / 'u' / 'digest').read_text() == pushed.digest
    assert sorted(p.name for p in (tmp_path / 'u').iterdir()) == [
        '000.sha256', '000.tar', '001.sha256', '001.tar', 'config.json',
        'digest', 'manifest.json']


def _finishes(work, seconds: float = 60):
    """Runs WORK on a thread; fails the test if it hangs (rather than hanging)."""
    import threading
    outcome = []

    def run():
        try:
            outcome.append(('ok', work()))
        except BaseException as e:  # pylint: disable=broad-except
            outcome.append(('raised', e))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, 'still running after %d s' % seconds
    kind, value = outcome[0]
    if kind == 'raised':
        raise value
    return value


def test_one_bare_httplib2_shared_by_threads(registry, pushed, repo_name, tmp_path):
    """A bare httplib2.Http (what rules_docker passes) is not thread-safe:
    saves and pushes with threads > 1 on it must still finish, correctly."""
    from containerregistry.client.v2_2 import docker_session
    from containerregistry.client.v2_2 import save
    transport = httplib2.Http()
    name = docker_name.Tag(pushed.by_tag)
    with docker_image.FromRegistry(name, docker_creds.Anonymous(),
                                   transport) as img:
        _, layers = _finishes(lambda: save.fast(img, str(tmp_path / 'f'),
                                                threads=4))
        assert [open(p, 'rb').read() for _, p in layers] == [
            l.blob for l in pushed.layers]
        copy = docker_name.Tag('%s/%s:copy' % (registry.host, repo_name))
        with docker_session.Push(copy, docker_creds.Anonymous(), transport,
                                 threads=4) as session:
            _finishes(lambda: session.upload(img))
    status, headers, body = images.Client(registry).request(
        'GET', repo_name, 'manifests/copy', headers={'Accept': pushed.media_type})
    assert status == 200 and body == pushed.manifest
