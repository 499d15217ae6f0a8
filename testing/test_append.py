"""append.Layer: a base image plus one layer, config derived by metadata.

The base is a FromDisk image over generated files. Expected manifests and
configs are written out by hand; skopeo independently checks every digest
and size of the result (the config size included, which upstream left
stale).
"""
import gzip
import hashlib
import io
import json
import os

import pytest

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import append
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.transform.v2_2 import metadata
from containerregistry.testing import images

BASE_TAR = images.make_layer(51, files={'etc/base': b'base\n'})
BASE_BLOB = images.gzip_bytes(BASE_TAR)
NEW_TAR = images.make_layer(52, files={'etc/new': b'new\n'})
NEW_BLOB = images.gzip_bytes(NEW_TAR)
EPOCH = '1970-01-01T00:00:00Z'
AGENT = docker_name.USER_AGENT


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


BASE_CONFIG = json.dumps({
    'architecture': 'amd64', 'os': 'linux', 'created': '2020-01-01T00:00:00Z',
    'config': {'Env': ['PATH=/bin'], 'Cmd': ['sh']},
    'container_config': {'Cmd': ['dropped']},
    'rootfs': {'type': 'layers', 'diff_ids': [sha256(BASE_TAR)]},
    'history': [{'created_by': 'base'}],
}, sort_keys=True)


class Recording(docker_image.Delegate):
    """Forwards to an image and records which blobs were read."""

    def __init__(self, image):
        super().__init__(image)
        self.reads = []

    def blob(self, digest):
        self.reads.append(('blob', digest))
        return self._image.blob(digest)

    def blob_stream(self, digest):
        self.reads.append(('blob_stream', digest))
        return self._image.blob_stream(digest)

    def uncompressed_blob(self, digest):
        self.reads.append(('uncompressed_blob', digest))
        return self._image.uncompressed_blob(digest)

    def uncompressed_blob_stream(self, digest):
        self.reads.append(('uncompressed_blob_stream', digest))
        return self._image.uncompressed_blob_stream(digest)

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


@pytest.fixture
def base(tmp_path):
    (tmp_path / '000.tar.gz').write_bytes(BASE_BLOB)
    (tmp_path / '000.sha256').write_text(sha256(BASE_BLOB)[7:])
    with docker_image.FromDisk(BASE_CONFIG, [(
            str(tmp_path / '000.sha256'), str(tmp_path / '000.tar.gz'))]) as img:
        yield Recording(img)


def expected_config(layers_history, diff_ids) -> str:
    return json.dumps({
        'architecture': 'amd64', 'author': 'Unknown', 'created': EPOCH,
        'os': 'linux', 'config': {'Env': ['PATH=/bin'], 'Cmd': ['sh']},
        'rootfs': {'type': 'layers', 'diff_ids': diff_ids},
        'history': layers_history + [{'created_by': 'base'}],
    }, sort_keys=True)


NEW_CONFIG = expected_config(
    [{'author': 'Unknown', 'created': EPOCH, 'created_by': AGENT}],
    [sha256(BASE_TAR), sha256(NEW_TAR)])


def expected_manifest(config: str, blobs, media_type=docker_http.LAYER_MIME):
    return (
        '{"config": {"digest": "%s", "mediaType": '
        '"application/vnd.docker.container.image.v1+json", "size": %d}, '
        '"layers": [%s], "mediaType": '
        '"application/vnd.docker.distribution.manifest.v2+json", '
        '"schemaVersion": 2}' % (
            sha256(config.encode()), len(config.encode()),
            ', '.join('{"digest": "%s", "mediaType": "%s", "size": %d}' % (
                sha256(b), t, len(b)) for b, t in blobs)))


def skopeo_checks(tmp_path, img) -> None:
    """skopeo copies IMAGE (as a dir: layout) to oci:, checking digests."""
    d = tmp_path / 'skopeo-dir'
    d.mkdir()
    (d / 'manifest.json').write_text(img.manifest())
    (d / 'version').write_text('Directory Transport Version: 1.1\n')
    for digest in img.distributable_blob_set():
        (d / digest.split(':')[1]).write_bytes(img.blob(digest))
    images.skopeo('copy', 'dir:' + str(d), 'oci:%s-oci:x' % d)


def test_append_bytes(base, tmp_path):
    with append.Layer(base, NEW_BLOB) as img:
        assert img.config_file() == NEW_CONFIG
        manifest = expected_manifest(NEW_CONFIG, [
            (BASE_BLOB, docker_http.LAYER_MIME),
            (NEW_BLOB, docker_http.LAYER_MIME)])
        assert img.manifest() == manifest
        assert img.digest() == sha256(manifest.encode())
        assert base.reads == []
        assert img.fs_layers() == [sha256(NEW_BLOB), sha256(BASE_BLOB)]
        assert img.diff_ids() == [sha256(NEW_TAR), sha256(BASE_TAR)]
        assert img.blob(sha256(NEW_BLOB)) == NEW_BLOB
        assert img.blob_size(sha256(NEW_BLOB)) == len(NEW_BLOB)
        assert img.uncompressed_blob(sha256(NEW_BLOB)) == NEW_TAR
        assert img.uncompressed_layer(sha256(NEW_TAR)) == NEW_TAR
        assert img.blob(img.config_blob()) == NEW_CONFIG.encode()
        assert img.blob_size(img.config_blob()) == len(NEW_CONFIG)
        assert base.reads == []
        assert img.blob(sha256(BASE_BLOB)) == BASE_BLOB
        assert base.reads == [('blob', sha256(BASE_BLOB))]
        skopeo_checks(tmp_path, img)


def test_append_path_streams_and_matches_bytes(base, tmp_path):
    path = tmp_path / 'new.tar.gz'
    path.write_bytes(NEW_BLOB)
    with append.Layer(base, NEW_BLOB) as from_bytes:
        with append.Layer(base, str(path)) as from_path:
            assert from_path.manifest() == from_bytes.manifest()
            assert from_path.config_file() == from_bytes.config_file()
            with from_path.blob_stream(sha256(NEW_BLOB)) as f:
                assert f.read() == NEW_BLOB
                assert isinstance(f, io.BufferedReader)
                assert f.name == str(path)
    # A path-like works too, and the caller's file is left alone.
    with append.Layer(base, path) as img:
        assert img.manifest() == from_bytes.manifest()
    assert path.read_bytes() == NEW_BLOB
    assert base.reads == []


def test_plain_tar_is_gzipped_as_upstream(base, tmp_path):
    path = tmp_path / 'new.tar'
    path.write_bytes(NEW_TAR)
    upstream_gzip = io.BytesIO()
    compression.gzip_stream(io.BytesIO(NEW_TAR), upstream_gzip)
    blob = upstream_gzip.getvalue()
    assert blob[:10] == b'\x1f\x8b\x08\x00\xc7\x17\x11\x49\x02\xff'
    with append.Layer(base, str(path)) as img:
        assert img.manifest() == expected_manifest(NEW_CONFIG, [
            (BASE_BLOB, docker_http.LAYER_MIME),
            (blob, docker_http.LAYER_MIME)])
        assert img.blob(sha256(blob)) == blob
        temp = img._blob_path
        assert os.path.exists(temp) and temp != str(path)
        # Bytes that are not gzip are gzipped the same way.
        with append.Layer(base, NEW_TAR) as from_bytes:
            assert from_bytes.manifest() == img.manifest()
    assert not os.path.exists(temp)


def test_no_layer_is_a_history_only_entry(base, tmp_path):
    for empty in (None, b'', ''):
        with append.Layer(base, empty) as img:
            config = expected_config(
                [{'author': 'Unknown', 'created': EPOCH, 'created_by': AGENT,
                  'empty_layer': True}],
                [sha256(BASE_TAR)])
            assert img.config_file() == config
            assert img.manifest() == expected_manifest(
                config, [(BASE_BLOB, docker_http.LAYER_MIME)])
            assert img.blob(sha256(BASE_BLOB)) == BASE_BLOB
            assert img.blob(img.config_blob()) == config.encode()
    skopeo_checks(tmp_path, img)


def test_given_diff_id_is_used_without_inflating(base):
    given = 'sha256:' + 'd' * 64
    with append.Layer(base, NEW_BLOB, diff_id=given) as img:
        assert json.loads(img.config_file())['rootfs']['diff_ids'] == [
            sha256(BASE_TAR), given]
    with append.Layer(base, NEW_BLOB, diff_id='d' * 64) as img:
        assert json.loads(img.config_file())['rootfs']['diff_ids'][-1] == given


def test_overrides_apply_but_created_by_is_the_user_agent(base):
    overrides = metadata.Overrides(
        env={'PATH': '$PATH:/opt'}, created_by='someone else', author='me',
        creation_time='2021-01-01T00:00:00Z', layers=['f' * 64])
    with append.Layer(base, NEW_BLOB, overrides=overrides) as img:
        config = json.loads(img.config_file())
    assert config['config']['Env'] == ['PATH=/bin:/opt']
    assert config['author'] == 'me'
    assert config['created'] == '2021-01-01T00:00:00Z'
    assert config['history'][0] == {
        'author': 'me', 'created': '2021-01-01T00:00:00Z',
        'created_by': AGENT}
    # The appended layer replaces any layers in the overrides.
    assert config['rootfs']['diff_ids'] == [sha256(BASE_TAR), sha256(NEW_TAR)]


def test_oci_base_gets_an_oci_layer_type(base):
    from containerregistry.client.v2_2 import oci_compat
    with append.Layer(oci_compat.OCIFromV22(base), NEW_BLOB) as img:
        manifest = json.loads(img.manifest())
    assert manifest['mediaType'] == docker_http.OCI_MANIFEST_MIME
    assert manifest['config']['mediaType'] == docker_http.OCI_CONFIG_JSON_MIME
    assert [layer['mediaType'] for layer in manifest['layers']] == [
        docker_http.OCI_GZIP_LAYER_MIME] * 2


def test_bad_layers_are_clear_errors(base, tmp_path):
    broken = NEW_BLOB[:len(NEW_BLOB) // 2]
    with pytest.raises(append.LayerError, match='not a valid gzip'):
        append.Layer(base, broken)
    path = tmp_path / 'broken.tar.gz'
    path.write_bytes(broken)
    with pytest.raises(append.LayerError,
                       match='broken.tar.gz is not a valid gzip'):
        append.Layer(base, str(path))
    with pytest.raises(append.LayerError,
                       match='cannot read layer .*missing.tar.gz: No such'):
        append.Layer(base, str(tmp_path / 'missing.tar.gz'))


def test_multi_member_gzip_diff_id(base):
    blob = gzip.compress(NEW_TAR[:1024], mtime=0) + gzip.compress(
        NEW_TAR[1024:], mtime=0)
    with append.Layer(base, blob) as img:
        assert img.diff_ids()[0] == sha256(NEW_TAR)


def zstd_bytes(data: bytes) -> bytes:
    import subprocess
    return subprocess.run(['zstd', '-q', '-c', '-3'], input=data, check=True,
                          capture_output=True).stdout


def test_zstd_tarball_is_gzipped_as_upstream(base, tmp_path):
    packed = zstd_bytes(NEW_TAR)
    assert packed[:4] == compression.ZSTD_MAGIC
    path = tmp_path / 'new.tar.zst'
    path.write_bytes(packed)
    with append.Layer(base, NEW_TAR) as from_plain:
        with append.Layer(base, str(path)) as from_path, \
                append.Layer(base, packed) as from_bytes:
            for img in (from_path, from_bytes):
                assert img.manifest() == from_plain.manifest()
                assert img.config_file() == from_plain.config_file()
                assert img.diff_ids()[0] == sha256(NEW_TAR)
                assert img.uncompressed_blob(img.fs_layers()[0]) == NEW_TAR
    assert path.read_bytes() == packed


def test_broken_zstd_is_a_clear_error(base, tmp_path):
    broken = zstd_bytes(NEW_TAR)[:-20]
    with pytest.raises(append.LayerError, match='^the layer is not a valid zstd file: '):
        append.Layer(base, broken)
    path = tmp_path / 'broken.tar.zst'
    path.write_bytes(broken)
    with pytest.raises(append.LayerError, match='broken.tar.zst is not a valid zstd file: '):
        append.Layer(base, str(path))
