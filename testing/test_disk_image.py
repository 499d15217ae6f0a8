"""FromDisk over the fast layout.

The synthesized manifest must serialize byte for byte as upstream's
(`json.dumps(sort_keys=True)`); skopeo, copying a `dir:` image made of that
manifest and the files, checks every digest and size independently.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import save
from containerregistry.client.v2_2 import tarball_writer
from containerregistry.testing import images

TARS = [images.make_layer(31), images.make_layer(32, 4000, 'text')]


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def config_for(tars, extra_diff_ids=()) -> str:
    return json.dumps({
        'architecture': 'amd64', 'os': 'linux',
        'rootfs': {'type': 'layers',
                   'diff_ids': list(extra_diff_ids) + [sha256(t) for t in tars]},
        'history': [{'created_by': 'l%d' % i}
                    for i in range(len(extra_diff_ids) + len(tars))],
    }, sort_keys=True)


def fast_layout(directory, tars, digest_text=lambda hexd: hexd, start=0):
    """Writes NNN.tar.gz/NNN.sha256 (+ NNN.tar/NNN.diffid); returns pairs."""
    os.makedirs(directory, exist_ok=True)
    layers, uncompressed = [], []
    for i, tar in enumerate(tars, start):
        blob = images.gzip_bytes(tar)
        base = os.path.join(directory, '%03d' % i)
        with open(base + '.tar.gz', 'wb') as f:
            f.write(blob)
        with open(base + '.sha256', 'w') as f:
            f.write(digest_text(hashlib.sha256(blob).hexdigest()))
        with open(base + '.tar', 'wb') as f:
            f.write(tar)
        with open(base + '.diffid', 'w') as f:
            f.write(hashlib.sha256(tar).hexdigest() + '\n')
        layers.append((base + '.sha256', base + '.tar.gz'))
        uncompressed.append((base + '.diffid', base + '.tar'))
    return layers, uncompressed


def skopeo_checks(tmp_path, img: docker_image.DockerImage) -> None:
    """skopeo copies IMAGE (as a dir: layout) to oci:, verifying digests."""
    d = tmp_path / ('dir-%d' % len(list(tmp_path.iterdir())))
    d.mkdir()
    (d / 'manifest.json').write_text(img.manifest())
    (d / 'version').write_text('Directory Transport Version: 1.1\n')
    for digest in img.distributable_blob_set():
        (d / digest.split(':')[1]).write_bytes(img.blob(digest))
    images.skopeo('copy', 'dir:' + str(d), 'oci:%s-oci:x' % d)


def test_manifest_bytes_match_upstream_serialization(tmp_path):
    layers, _ = fast_layout(str(tmp_path / 'img'), TARS,
                            digest_text=lambda h: h + '\n')
    config = config_for(TARS)
    with docker_image.FromDisk(config, layers) as img:
        blobs = [images.gzip_bytes(t) for t in TARS]
        expected = (
            '{"config": {"digest": "%s", "mediaType": "%s", "size": %d}, '
            '"layers": [%s], "mediaType": "%s", "schemaVersion": 2}' % (
                sha256(config.encode()), docker_http.CONFIG_JSON_MIME,
                len(config),
                ', '.join('{"digest": "%s", "mediaType": "%s", "size": %d}'
                          % (sha256(b), docker_http.LAYER_MIME, len(b))
                          for b in blobs),
                docker_http.MANIFEST_SCHEMA2_MIME))
        assert img.manifest() == expected
        assert img.digest() == sha256(expected.encode())
        assert img.fs_layers() == [sha256(b) for b in reversed(blobs)]
        for blob, tar in zip(blobs, TARS):
            assert img.blob(sha256(blob)) == blob
            assert img.blob_size(sha256(blob)) == len(blob)
            with img.blob_stream(sha256(blob)) as f:
                assert f.read() == blob
            assert img.uncompressed_blob(sha256(blob)) == tar
            assert img.uncompressed_layer(sha256(tar)) == tar
        assert img.blob(img.config_blob()) == config.encode()
        skopeo_checks(tmp_path, img)


def test_digest_files_with_prefix_or_whitespace(tmp_path):
    plain, _ = fast_layout(str(tmp_path / 'a'), TARS)
    prefixed, _ = fast_layout(str(tmp_path / 'b'), TARS,
                              digest_text=lambda h: ' sha256:%s\r\n' % h)
    config = config_for(TARS)
    with docker_image.FromDisk(config, plain) as a, \
            docker_image.FromDisk(config, prefixed) as b:
        assert a.manifest() == b.manifest()


def test_config_size_is_utf8_bytes(tmp_path):
    layers, _ = fast_layout(str(tmp_path / 'img'), TARS)
    config = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': [
        sha256(t) for t in TARS]}, 'author': 'Zoë'}, ensure_ascii=False)
    with docker_image.FromDisk(config, layers) as img:
        descriptor = json.loads(img.manifest())['config']
        assert descriptor['size'] == len(config.encode()) == len(config) + 1
        assert descriptor['digest'] == sha256(config.encode())


def test_uncompressed_layers_are_used(tmp_path):
    layers, uncompressed = fast_layout(str(tmp_path / 'img'), TARS)
    # Prove the .tar files are what is read: corrupt the gzips' bodies
    # after the digests were taken.
    with docker_image.FromDisk(config_for(TARS), layers,
                               uncompressed_layers=uncompressed) as img:
        digest = img.fs_layers()[0]
        with open(layers[-1][1], 'wb') as f:
            f.write(b'not gzip any more')
        assert img.uncompressed_layer(sha256(TARS[-1])) == TARS[-1]
        assert img.uncompressed_blob(digest) == TARS[-1]
        assert img.uncompressed_blob_size(digest) == len(TARS[-1])


def base_tarball(tmp_path, tars) -> str:
    path = str(tmp_path / 'base.tar')
    with tarfile.open(path, 'w') as tar:
        config = config_for(tars).encode()
        info = tarfile.TarInfo('c.json')
        info.size = len(config)
        tar.addfile(info, io.BytesIO(config))
        for i, t in enumerate(tars):
            info = tarfile.TarInfo('l%d/layer.tar' % i)
            info.size = len(t)
            tar.addfile(info, io.BytesIO(t))
        manifest = json.dumps([{'Config': 'c.json', 'RepoTags': ['b/b:1'],
                                'Layers': ['l%d/layer.tar' % i
                                           for i in range(len(tars))]}]).encode()
        info = tarfile.TarInfo('manifest.json')
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return path


def test_legacy_base(tmp_path):
    base_tars = [images.make_layer(41), images.make_layer(42)]
    base = base_tarball(tmp_path, base_tars)
    layers, _ = fast_layout(str(tmp_path / 'img'), TARS, start=0)
    config = config_for(TARS, [sha256(t) for t in base_tars])
    with docker_image.FromTarball(base) as b:
        base_layers = json.loads(b.manifest())['layers']
    with docker_image.FromDisk(config, layers, legacy_base=base) as img:
        manifest = json.loads(img.manifest())
        assert manifest['layers'][:2] == base_layers
        assert [l['digest'] for l in manifest['layers'][2:]] == [
            sha256(images.gzip_bytes(t)) for t in TARS]
        assert img.blob_size(base_layers[0]['digest']) == base_layers[0]['size']
        assert img.uncompressed_blob(base_layers[1]['digest']) == base_tars[1]
        assert img.uncompressed_layer(sha256(base_tars[0])) == base_tars[0]
        skopeo_checks(tmp_path, img)
        out = str(tmp_path / 'saved.tar')
        with tarfile.open(out, 'w') as tar:
            tarball_writer.tarball(docker_name.Tag('r/d:1', strict=False),
                                   img, tar)
    with docker_image.FromTarball(out) as saved:
        assert [saved.uncompressed_layer(d) for d in reversed(saved.diff_ids())
                ] == base_tars + TARS


def test_missing_legacy_base_and_unknown_blob(tmp_path):
    layers, _ = fast_layout(str(tmp_path / 'img'), TARS)
    with pytest.raises(ValueError, match='legacy base tarball .*nope.tar does '
                       'not exist'):
        docker_image.FromDisk(config_for(TARS), layers,
                              legacy_base=str(tmp_path / 'nope.tar'))
    with docker_image.FromDisk(config_for(TARS), layers) as img:
        with pytest.raises(ValueError, match='no blob sha256:0+ .*no legacy base'):
            img.blob('sha256:' + '0' * 64)
    with pytest.raises(ValueError, match='cannot read digest file'):
        docker_image.FromDisk(config_for(TARS),
                              [(str(tmp_path / 'missing.sha256'), layers[0][1])])
    empty = tmp_path / 'empty.sha256'
    empty.write_text('\n')
    with pytest.raises(ValueError, match='does not hold a sha256 hex'):
        docker_image.FromDisk(config_for(TARS), [(str(empty), layers[0][1])])


def test_foreign_layers_manifest(tmp_path):
    layers, _ = fast_layout(str(tmp_path / 'img'), TARS[1:])
    foreign = {'mediaType': docker_http.FOREIGN_LAYER_MIME, 'size': 99,
               'digest': 'sha256:' + 'a' * 64, 'urls': ['https://x/y']}
    base_manifest = json.dumps({
        'schemaVersion': 2, 'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
        'layers': [foreign, {'mediaType': docker_http.LAYER_MIME, 'size': 5,
                             'digest': 'sha256:' + 'b' * 64}]})
    config = config_for(TARS[1:], ['sha256:' + 'c' * 64])
    with docker_image.FromDisk(config, layers,
                               foreign_layers_manifest=base_manifest) as img:
        manifest = json.loads(img.manifest())
        assert manifest['layers'][0] == foreign
        assert len(manifest['layers']) == 2
        assert img.uncompressed_blob(foreign['digest']) == b''
        assert img.blob_size(foreign['digest']) == 99
        assert foreign['digest'] not in img.distributable_blob_set()
        # The foreign descriptor is re-serialized with sorted keys.
        assert ('{"digest": "%s", "mediaType": "%s", "size": 99, "urls": '
                '["https://x/y"]}' % (foreign['digest'],
                                      docker_http.FOREIGN_LAYER_MIME)
                ) in img.manifest()


def test_fast_layout_round_trip(tmp_path):
    """save.fast of a FromTarball reads back through FromDisk unchanged."""
    base = base_tarball(tmp_path, TARS)
    with docker_image.FromTarball(base) as src:
        config_path, layers = save.fast(src, str(tmp_path / 'fast'))
        with open(config_path) as f:
            config = f.read()
        with docker_image.FromDisk(config, layers) as img:
            assert img.manifest() == src.manifest()
            assert img.digest() == src.digest()
            for digest in src.fs_layers():
                assert img.blob(digest) == src.blob(digest)
                assert gzip.decompress(img.blob(digest)) == \
                    src.uncompressed_blob(digest)


def test_two_layer_files_claiming_one_digest_must_both_match(tmp_path):
    """A copied digest file must not make one layer silently replace another."""
    import gzip as _gzip
    import hashlib as _hashlib
    from containerregistry.client.v2_2 import disk_image
    blobs = [_gzip.compress(b'layer %d' % i, mtime=0) for i in range(2)]
    paths = []
    for i, blob in enumerate(blobs):
        layer = tmp_path / ('%03d.tar.gz' % i)
        layer.write_bytes(blob)
        paths.append(str(layer))
    wrong = tmp_path / 'wrong.sha256'
    wrong.write_text(_hashlib.sha256(blobs[1]).hexdigest())
    with pytest.raises(disk_image.DiskImageError,
                       match='000.tar.gz does not match its digest file'):
        disk_image.FromDisk('{}', [(str(wrong), paths[0]),
                                   (str(wrong), paths[1])])
    same = tmp_path / 'copy.tar.gz'
    same.write_bytes(blobs[1])
    img = disk_image.FromDisk('{}', [(str(wrong), paths[1]),
                                     (str(wrong), str(same))])
    assert img.fs_layers() == ['sha256:' + wrong.read_text()] * 2


def test_config_diff_ids_must_match_the_layer_count(tmp_path):
    from containerregistry.client.v2_2 import disk_image
    layers, uncompressed = fast_layout(str(tmp_path / 'img'), TARS)
    extra = 'sha256:' + 'c' * 64
    for config, listed in ((config_for(TARS, [extra]), '3 layers'),
                           (config_for(TARS[1:]), '1 layer')):
        img = docker_image.FromDisk(config, layers)
        for _ in range(2):  # a failed manifest is not kept
            with pytest.raises(disk_image.LayerCountError,
                               match='^the config lists %s in rootfs.diff_ids, '
                               'but the image has 2$' % listed):
                img.manifest()
    # Without rootfs.diff_ids there is nothing to compare.
    assert len(json.loads(docker_image.FromDisk('{}', layers).manifest())[
        'layers']) == 2
    # Layers given only uncompressed (flatten's input) count.
    with docker_image.FromDisk(config_for(TARS), [],
                               uncompressed_layers=uncompressed) as img:
        assert json.loads(img.manifest())['layers'] == []


def test_config_diff_ids_count_the_foreign_layers(tmp_path):
    from containerregistry.client.v2_2 import disk_image
    layers, _ = fast_layout(str(tmp_path / 'img'), TARS[1:])
    foreign = {'mediaType': docker_http.FOREIGN_LAYER_MIME, 'size': 99,
               'digest': 'sha256:' + 'a' * 64, 'urls': ['https://x/y']}
    base_manifest = json.dumps({'schemaVersion': 2, 'layers': [foreign]})
    img = docker_image.FromDisk(config_for(TARS[1:]), layers,
                                foreign_layers_manifest=base_manifest)
    with pytest.raises(disk_image.LayerCountError,
                       match='lists 1 layer in rootfs.diff_ids, but the image '
                       'has 2'):
        img.manifest()


@pytest.mark.parametrize('text', [
    'zzzz', 'AB' * 32, 'ab' * 31, 'ab' * 33, 'sha256:' + 'ab' * 31,
    'sha512:' + 'ab' * 32, 'ab' * 16 + ' ' + 'ab' * 16, 'sha256:sha256:' + 'ab' * 32,
])
def test_digest_file_must_hold_a_sha256(tmp_path, text):
    layers, _ = fast_layout(str(tmp_path / 'img'), TARS[:1])
    bad = tmp_path / 'bad.sha256'
    bad.write_text(text)
    with pytest.raises(ValueError, match='digest file .*bad.sha256 does not '
                       'hold a sha256 hex digest'):
        docker_image.FromDisk(config_for(TARS[:1]), [(str(bad), layers[0][1])])


@pytest.mark.parametrize('field, value', [
    ('digest', 'sha256:zz'), ('digest', 'sha256:' + 'A' * 64), ('digest', 7),
    ('size', 'x'), ('size', -1), ('size', True), ('size', None),
])
def test_foreign_layer_descriptors_are_checked(tmp_path, field, value):
    from containerregistry.client.v2_2 import disk_image
    foreign = {'mediaType': docker_http.FOREIGN_LAYER_MIME, 'size': 99,
               'digest': 'sha256:' + 'a' * 64, 'urls': ['https://x/y']}
    foreign[field] = value
    base_manifest = json.dumps({'schemaVersion': 2, 'layers': [foreign]})
    with pytest.raises(disk_image.ForeignManifestError,
                       match='^foreign layer 0 .*has an invalid %s %s'
                       % (field, json.dumps(value).replace('.', r'\.'))):
        docker_image.FromDisk(config_for([], ['sha256:' + 'c' * 64]), [],
                              foreign_layers_manifest=base_manifest)
