"""docker_session.Push/Delete against a real registry, checked from its access log.

Skips (HEAD, manifest by digest, tag already right), cross-repository mounts,
the single PUT upload and its chunked PATCH fallback, pushes by digest, lists.
"""
import logging

import httplib2
import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import docker_image_list
from containerregistry.client.v2_2 import docker_session
from containerregistry.testing import images
from containerregistry.testing import push_helpers as ph
from containerregistry.transport import pooled_http

ANON = docker_creds.Anonymous()


def _tars(seeds):
    return [images.make_layer(s, 1500 + (7 * s) % 500) for s in seeds]


def _disk(tmp_path, seeds, name='img', **kw) -> ph.DiskImage:
    return ph.write_disk_image(str(tmp_path / name), _tars(seeds), **kw)


def _from_disk(disk: ph.DiskImage):
    with open(disk.config_path, encoding='utf8') as f:
        config = f.read()
    return docker_image.FromDisk(config, list(zip(disk.digest_paths, disk.layer_paths)))


def _push(name, image, creds=ANON, transport=None, **kw):
    transport = transport or pooled_http.Http(maxsize=8)
    with docker_session.Push(name, creds, transport, **kw) as session:
        session.upload(image)


def _tag(registry, repo, tag='t'):
    return docker_name.Tag('%s/%s:%s' % (registry.host, repo, tag))


def _assert_holds(registry, repo, ref, disk: ph.DiskImage):
    manifest, config, blobs = ph.pull_image(registry, repo, ref)
    assert manifest == disk.manifest()
    assert config == disk.config
    assert blobs == {l.digest: l.blob for l in disk.layers}


@pytest.mark.parametrize('transport', ['pooled', 'httplib2'])
def test_push_round_trip(registry, repo_name, tmp_path, transport):
    disk = _disk(tmp_path, [1, 2, 3])
    http = pooled_http.Http() if transport == 'pooled' else httplib2.Http()
    mark = registry.mark()
    with _from_disk(disk) as image:
        assert image.digest() == disk.digest()
        _push(_tag(registry, repo_name), image, transport=http)
    _assert_holds(registry, repo_name, 't', disk)
    assert ph.tag_digest(registry, repo_name, 't') == disk.digest()
    name = '%s/%s:t' % (registry.host, repo_name)
    assert images.skopeo_inspect_raw(registry, name) == disk.manifest()
    assert images.skopeo_inspect_raw(registry, name, config=True) == disk.config
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert sorted(ph.uploaded_digests(reqs)) == sorted(
        [images.sha256(disk.config)] + [l.digest for l in disk.layers])
    # One single-PUT upload per blob: no PATCH needed for a registry that takes it.
    assert [m for m, _ in ph.uploads(reqs) if m == 'PATCH'] == []
    assert ph.manifest_puts(reqs) == ['/v2/%s/manifests/t' % repo_name]


def test_push_from_tarball_sends_checked_ranges(registry, repo_name, tmp_path):
    """Blobs a tarball image has checked go from their file: gzipped members
    from inside the tarball, plain ones from the image's own gzip."""
    import io
    import json
    import tarfile
    tars = _tars([31, 32])
    gz = images.gzip_bytes(tars[0])
    config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'rootfs': {
        'type': 'layers', 'diff_ids': [images.sha256(t) for t in tars]}}).encode()
    path = str(tmp_path / 'save.tar')
    with tarfile.open(path, 'w') as tar:
        for name, data in [('c.json', config), ('pad', b'x' * 1000), ('a.tar.gz', gz),
                           ('b.tar', tars[1]),
                           ('manifest.json', json.dumps([{
                               'Config': 'c.json',
                               'Layers': ['a.tar.gz', 'b.tar']}]).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with docker_image.FromTarball(path) as image:
        layers = [l['digest'] for l in json.loads(image.manifest())['layers']]
        assert layers[0] == images.sha256(gz)
        assert [image.blob_range(d).path == path for d in layers] == [True, False]
        ours = image.blob(layers[1])
        _push(_tag(registry, repo_name), image)
        manifest, pushed_config, blobs = ph.pull_image(registry, repo_name, 't')
        assert manifest == image.manifest().encode()
    assert pushed_config == config
    assert blobs == {layers[0]: gz, layers[1]: ours}


def test_manifest_goes_last(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [5, 6])
    mark = registry.mark()
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name), image, threads=8)
    reqs = ph.repo_requests(registry, mark, repo_name)
    last_blob = max(i for i, (m, p) in enumerate(reqs) if '/blobs/' in p)
    puts = [i for i, (m, p) in enumerate(reqs) if m == 'PUT' and '/manifests/' in p]
    assert len(puts) == 1 and puts[0] > last_blob
    _assert_holds(registry, repo_name, 't', disk)


def test_second_push_skips_everything(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [10, 11])
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name), image)
        mark = registry.mark()
        _push(_tag(registry, repo_name), image)
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.uploads(reqs) == []
    assert ph.manifest_puts(reqs) == []
    assert [m for m, p in reqs if '/blobs/' in p] == []
    assert reqs, 'the second push asked the registry nothing'


def test_new_tag_for_existing_manifest_puts_only_the_manifest(registry, repo_name,
                                                              tmp_path):
    disk = _disk(tmp_path, [12, 13])
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name, 'one'), image)
        mark = registry.mark()
        _push(_tag(registry, repo_name, 'two'), image)
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.uploads(reqs) == []
    assert ph.manifest_puts(reqs) == ['/v2/%s/manifests/two' % repo_name]
    assert ph.tag_digest(registry, repo_name, 'two') == disk.digest()


def test_retag_moves_tag(registry, repo_name, tmp_path):
    first, second = _disk(tmp_path, [14], 'a'), _disk(tmp_path, [15], 'b')
    with _from_disk(first) as image:
        _push(_tag(registry, repo_name), image)
    with _from_disk(second) as image:
        _push(_tag(registry, repo_name), image)
    assert ph.tag_digest(registry, repo_name, 't') == second.digest()
    _assert_holds(registry, repo_name, 't', second)


def test_existing_blobs_are_not_uploaded(registry, repo_name, tmp_path):
    base = _disk(tmp_path, [20, 21], 'base')
    with _from_disk(base) as image:
        _push(_tag(registry, repo_name, 'base'), image)
    top = _disk(tmp_path, [20, 21, 22], 'top')
    assert [l.digest for l in top.layers[:2]] == [l.digest for l in base.layers]
    mark = registry.mark()
    with _from_disk(top) as image:
        _push(_tag(registry, repo_name, 'top'), image)
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert sorted(ph.uploaded_digests(reqs)) == sorted(
        [images.sha256(top.config), top.layers[2].digest])
    heads = [p for m, p in reqs if m == 'HEAD' and '/blobs/' in p]
    for layer in base.layers:
        assert '/v2/%s/blobs/%s' % (repo_name, layer.digest) in heads
    _assert_holds(registry, repo_name, 'top', top)


def test_blob_in_other_repo_without_mount_is_uploaded(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [30, 31])
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name + '-src'), image)
        mark = registry.mark()
        _push(_tag(registry, repo_name + '-dst'), image)
    reqs = ph.repo_requests(registry, mark, repo_name + '-dst')
    assert ph.mounts(reqs) == []
    assert sorted(ph.uploaded_digests(reqs)) == sorted(
        [images.sha256(disk.config)] + [l.digest for l in disk.layers])
    _assert_holds(registry, repo_name + '-dst', 't', disk)


@pytest.mark.parametrize('kind', ['anonymous', 'token'])
def test_mount_from_other_repo(request, kind, repo_name, tmp_path):
    registry = request.getfixturevalue('registry' if kind == 'anonymous'
                                       else 'token_registry')
    creds = (ANON if registry.username is None
             else docker_creds.Basic(registry.username, registry.password))
    disk = _disk(tmp_path, [40, 41])
    src = _tag(registry, repo_name + '-src')
    with _from_disk(disk) as image:
        _push(src, image, creds=creds)
        mark = registry.mark()
        _push(_tag(registry, repo_name + '-dst'), image, creds=creds,
              mount=[src.as_repository()])
    reqs = ph.repo_requests(registry, mark, repo_name + '-dst')
    blobs = [images.sha256(disk.config)] + [l.digest for l in disk.layers]
    assert sorted(ph.mounts(reqs)) == sorted(blobs)
    for m, p in reqs:
        if m == 'POST':
            assert 'from=' + (repo_name + '-src').replace('/', '%2F') in p, p
    assert [m for m, _ in ph.uploads(reqs) if m != 'POST'] == []
    _assert_holds(registry, repo_name + '-dst', 't', disk)
    if kind == 'token':
        scopes = ' '.join(r['path'] for r in registry.token_server.requests)
        src_scope = 'repository:%s:pull' % (repo_name + '-src')
        assert (src_scope in scopes or
                src_scope.replace(':', '%3A').replace('/', '%2F') in scopes), scopes


def test_mount_source_on_other_registry_is_ignored(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [42])
    other = docker_name.Repository('localhost:1/%s-src' % repo_name)
    mark = registry.mark()
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name), image, mount=[other])
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.mounts(reqs) == []
    _assert_holds(registry, repo_name, 't', disk)


def test_mount_of_missing_blob_falls_back_to_upload(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [43, 44])
    src = _tag(registry, repo_name + '-empty-src')
    mark = registry.mark()
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name), image, mount=[src.as_repository()])
    reqs = ph.repo_requests(registry, mark, repo_name)
    blobs = sorted([images.sha256(disk.config)] + [l.digest for l in disk.layers])
    assert sorted(ph.mounts(reqs)) == blobs
    assert sorted(ph.uploaded_digests(reqs)) == blobs
    _assert_holds(registry, repo_name, 't', disk)


def test_push_by_digest(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [50, 51])
    name = docker_name.Digest('%s/%s@%s' % (registry.host, repo_name, disk.digest()))
    mark = registry.mark()
    with _from_disk(disk) as image:
        _push(name, image)
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.manifest_puts(reqs) == ['/v2/%s/manifests/%s' % (repo_name, disk.digest())]
    assert ph.tags(registry, repo_name) == []
    _assert_holds(registry, repo_name, disk.digest(), disk)
    # Again: the manifest exists, so nothing at all is sent.
    mark = registry.mark()
    with _from_disk(disk) as image:
        _push(name, image)
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.uploads(reqs) == [] and ph.manifest_puts(reqs) == []


def test_use_digest_with_tag_name(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [52])
    mark = registry.mark()
    with _from_disk(disk) as image:
        with docker_session.Push(_tag(registry, repo_name), ANON,
                                 pooled_http.Http()) as session:
            session.upload(image, use_digest=True)
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.manifest_puts(reqs) == ['/v2/%s/manifests/%s' % (repo_name, disk.digest())]
    assert ph.tags(registry, repo_name) == []


def test_chunked_fallback_when_single_put_refused(registry, repo_name, tmp_path):
    proxy = ph.NoMonolithicUpload(registry)
    try:
        disk = _disk(tmp_path, [60, 61])
        name = docker_name.Tag('%s/%s:t' % (proxy.host, repo_name))
        with _from_disk(disk) as image:
            _push(name, image)
    finally:
        proxy.stop()
    refused = [r for r in proxy.requests if r[0] == 'PUT' and '/blobs/uploads/' in r[1]
               and r[2] > 0]
    patches = [r for r in proxy.requests if r[0] == 'PATCH']
    closing = [r for r in proxy.requests if r[0] == 'PUT' and '/blobs/uploads/' in r[1]
               and r[2] == 0]
    sizes = sorted([len(disk.config)] + [len(l.blob) for l in disk.layers])
    assert sorted(r[2] for r in refused) == sizes
    assert sorted(r[2] for r in patches) == sizes
    assert len(closing) == 3
    _assert_holds(registry, repo_name, 't', disk)


def test_chunked_upload_in_several_patches(registry, repo_name, tmp_path, monkeypatch):
    monkeypatch.setattr(docker_session, 'DEFAULT_CHUNK_SIZE', 1000)
    proxy = ph.NoMonolithicUpload(registry)
    try:
        disk = ph.write_disk_image(str(tmp_path / 'img'),
                                   [images.make_layer(62, 4500)])
        name = docker_name.Tag('%s/%s:t' % (proxy.host, repo_name))
        with _from_disk(disk) as image:
            _push(name, image)
    finally:
        proxy.stop()
    patches = [r[2] for r in proxy.requests if r[0] == 'PATCH']
    blob = len(disk.layers[0].blob)
    assert blob > 3000
    expected = [1000] * (blob // 1000) + ([blob % 1000] if blob % 1000 else [])
    assert sorted(patches) == sorted(expected + [len(disk.config)])
    _assert_holds(registry, repo_name, 't', disk)


def test_relative_location_and_minimum_chunk_are_honoured(
        registry, repo_name, tmp_path, monkeypatch):
    monkeypatch.setattr(docker_session, 'DEFAULT_CHUNK_SIZE', 1000)
    proxy = ph.NoMonolithicUpload(registry, relative_location=True,
                                  min_chunk=2000)
    try:
        disk = ph.write_disk_image(str(tmp_path / 'img'),
                                   [images.make_layer(63, 4500)])
        name = docker_name.Tag('%s/%s:t' % (proxy.host, repo_name))
        with _from_disk(disk) as image:
            _push(name, image)
    finally:
        proxy.stop()
    blob = len(disk.layers[0].blob)
    patches = sorted(r[2] for r in proxy.requests if r[0] == 'PATCH')
    expected = [2000] * (blob // 2000) + ([blob % 2000] if blob % 2000 else [])
    assert patches == sorted(expected + [len(disk.config)])
    # Every upload request came back through the proxy by the relative URL.
    uploads = [r for r in proxy.requests if '/blobs/uploads/' in r[1]]
    assert len(uploads) >= 2 * (1 + len(disk.layers))
    _assert_holds(registry, repo_name, 't', disk)


def test_upload_error_leaves_no_tag(registry, repo_name, tmp_path, caplog):
    disk = _disk(tmp_path, [70, 71])
    with open(disk.digest_paths[1], 'w') as f:
        f.write('ab' * 32)  # not the digest of the layer file
    caplog.set_level(logging.INFO)
    with _from_disk(disk) as image:
        with pytest.raises(docker_http.V2DiagnosticException) as err:
            _push(_tag(registry, repo_name), image)
    assert 'DIGEST_INVALID' in str(err.value) or any(
        d.code == 'DIGEST_INVALID' for d in err.value.diagnostics)
    assert ph.tags(registry, repo_name) == []
    assert 'Error during upload of' in caplog.text


@pytest.mark.parametrize('threads', [1, 8])
def test_existing_blob_of_another_size_is_not_skipped_over(registry, repo_name,
                                                          tmp_path, threads):
    """A skipped blob is not read, so the registry cannot check it: a layer
    file that is not its digest file's blob must be caught by its size."""
    disk = _disk(tmp_path, [72, 73])
    assert len(disk.layers[0].blob) != len(disk.layers[1].blob)
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name, 'good'), image)
    swapped = docker_image.FromDisk(disk.config.decode(), [
        (disk.digest_paths[0], disk.layer_paths[1]),
        (disk.digest_paths[1], disk.layer_paths[0])])
    mark = registry.mark()
    with swapped:
        with pytest.raises(docker_session.BlobSizeError) as err:
            _push(_tag(registry, repo_name, 'bad'), swapped, threads=threads)
    index = [l.digest for l in disk.layers].index(err.value.digest)
    assert (err.value.found, err.value.listed) == (
        len(disk.layers[index].blob), len(disk.layers[1 - index].blob))
    assert str(err.value) == (
        'the registry already has %s as %d bytes, but the image gives it %d '
        'bytes' % (err.value.digest, err.value.found, err.value.listed))
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.manifest_puts(reqs) == [] and ph.uploads(reqs) == []
    assert ph.tags(registry, repo_name) == ['good']


def test_push_with_basic_auth(basic_registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [80])
    creds = docker_creds.Basic(basic_registry.username, basic_registry.password)
    with _from_disk(disk) as image:
        _push(_tag(basic_registry, repo_name), image, creds=creds)
    _assert_holds(basic_registry, repo_name, 't', disk)


def test_push_without_rights_fails(token_registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [81])
    with _from_disk(disk) as image:
        with pytest.raises((docker_http.V2DiagnosticException,
                            docker_http.BadStateException)) as err:
            _push(_tag(token_registry, repo_name), image)
    assert any(w in str(err.value) for w in ph.UNAUTHORIZED), str(err.value)
    assert ph.tags(token_registry, repo_name) == []


def test_list_upload(registry, repo_name, tmp_path):
    amd = _disk(tmp_path, [90, 91], 'amd64')
    arm = _disk(tmp_path, [92], 'arm64', config_extra={'architecture': 'arm64'})
    mark = registry.mark()
    with _from_disk(amd) as a, _from_disk(arm) as b:
        plat_a = docker_image_list.Platform({'os': 'linux', 'architecture': 'amd64'})
        plat_b = docker_image_list.Platform({'os': 'linux', 'architecture': 'arm64'})
        lst = docker_image_list.FromList([(plat_a, a), (plat_b, b)])
        expected = ph.manifest_json({
            'mediaType': images.DOCKER_LIST, 'schemaVersion': 2,
            'manifests': [
                {'digest': amd.digest(), 'mediaType': images.DOCKER_MANIFEST,
                 'size': len(amd.manifest()),
                 'platform': {'os': 'linux', 'architecture': 'amd64'}},
                {'digest': arm.digest(), 'mediaType': images.DOCKER_MANIFEST,
                 'size': len(arm.manifest()),
                 'platform': {'os': 'linux', 'architecture': 'arm64'}}]})
        assert lst.manifest().encode() == expected
        _push(_tag(registry, repo_name), lst)
    body, ctype = images.Client(registry).manifest(repo_name, 't')
    assert body == expected and ctype == images.DOCKER_LIST
    _assert_holds(registry, repo_name, amd.digest(), amd)
    _assert_holds(registry, repo_name, arm.digest(), arm)
    reqs = ph.repo_requests(registry, mark, repo_name)
    puts = ph.manifest_puts(reqs)
    assert sorted(puts[:2]) == sorted('/v2/%s/manifests/%s' % (repo_name, d.digest())
                                      for d in (amd, arm))
    assert puts[2:] == ['/v2/%s/manifests/t' % repo_name]
    assert ph.tags(registry, repo_name) == ['t']


def test_copy_between_repositories(registry, repo_name, tmp_path):
    """A registry image pushed elsewhere streams its blobs through (no tmp files)."""
    pushed = images.push_image(registry, repo_name + '-src:v1',
                               [images.make_layer(95), images.make_layer(96)])
    src = docker_name.Tag(pushed.by_tag)
    with docker_image.FromRegistry(src, ANON, pooled_http.Http()) as image:
        _push(_tag(registry, repo_name + '-dst'), image)
    manifest, config, blobs = ph.pull_image(registry, repo_name + '-dst', 't')
    assert manifest == pushed.manifest
    assert config == pushed.config
    assert blobs == {l.digest: l.blob for l in pushed.layers}


def test_delete_by_digest(registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [97])
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name), image)
    name = docker_name.Digest('%s/%s@%s' % (registry.host, repo_name, disk.digest()))
    mark = registry.mark()
    docker_session.Delete(name, ANON, pooled_http.Http())
    assert ('DELETE', '/v2/%s/manifests/%s' % (repo_name, disk.digest())) in \
        registry.requests_since(mark)
    assert ph.tag_digest(registry, repo_name, disk.digest()) is None
    assert ph.tag_digest(registry, repo_name, 't') is None


def test_delete_missing_manifest_fails(registry, repo_name):
    name = docker_name.Digest('%s/%s@sha256:%s' % (registry.host, repo_name, 'cd' * 32))
    with pytest.raises(docker_http.V2DiagnosticException) as err:
        docker_session.Delete(name, ANON, pooled_http.Http())
    assert err.value.status == 404


def test_delete_with_token_auth(token_registry, repo_name, tmp_path):
    disk = _disk(tmp_path, [98])
    creds = docker_creds.Basic(token_registry.username, token_registry.password)
    with _from_disk(disk) as image:
        _push(_tag(token_registry, repo_name), image, creds=creds)
    name = docker_name.Digest('%s/%s@%s' % (token_registry.host, repo_name,
                                            disk.digest()))
    docker_session.Delete(name, creds, pooled_http.Http())
    assert ph.tag_digest(token_registry, repo_name, disk.digest()) is None


def test_delete_by_tag_is_refused_by_the_registry(registry, repo_name, tmp_path):
    """distribution 2.8 only deletes by digest; the error reaches the caller."""
    disk = _disk(tmp_path, [99])
    with _from_disk(disk) as image:
        _push(_tag(registry, repo_name), image)
    with pytest.raises(docker_http.V2DiagnosticException) as err:
        docker_session.Delete(_tag(registry, repo_name), ANON, pooled_http.Http())
    assert err.value.status == 400
    assert ph.tag_digest(registry, repo_name, 't') == disk.digest()
