"""oci_compat: OCI views of v2.2 images and lists, and back.

The expected manifests are written out by hand: `json.dumps(sort_keys=True)`
with default separators, only the media types rewritten. umoci (an
independent OCI implementation) then unpacks a converted image, which only
works if gzip layers are labelled as gzip.
"""
import hashlib
import json
import subprocess

from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import docker_image_list
from containerregistry.client.v2_2 import oci_compat
from containerregistry.testing import images

CONFIG = '{"architecture": "amd64", "os": "linux"}'
CONFIG_DIGEST = docker_digest.SHA256(CONFIG.encode())
L1 = 'sha256:' + '1' * 64
L2 = 'sha256:' + '2' * 64
L3 = 'sha256:' + '3' * 64
L4 = 'sha256:' + '4' * 64


class Static(docker_image.DockerImage):
    """An image of a given manifest text (blobs are not needed here)."""

    def __init__(self, manifest: str, blobs=None):
        self._manifest = manifest
        self._blobs = blobs or {}

    def manifest(self) -> str:
        return self._manifest

    def config_file(self) -> str:
        return CONFIG

    def blob(self, digest: str) -> bytes:
        return self._blobs[digest]

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


V22 = json.dumps({
    'schemaVersion': 2,
    'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
    'config': {'mediaType': docker_http.CONFIG_JSON_MIME, 'size': len(CONFIG),
               'digest': CONFIG_DIGEST},
    'layers': [
        {'mediaType': docker_http.FOREIGN_LAYER_MIME, 'size': 40,
         'digest': L1, 'urls': ['https://example.com/base.tar.gz']},
        {'mediaType': docker_http.LAYER_MIME, 'size': 10, 'digest': L2},
        {'mediaType': oci_compat.DOCKER_UNCOMPRESSED_LAYER_MIME, 'size': 30,
         'digest': L3},
        {'mediaType': docker_http.LAYER_MIME, 'size': 20, 'digest': L4,
         'annotations': {'a': 'b'}},
    ],
}, sort_keys=True)

OCI = (
    '{"config": {"digest": "%s", '
    '"mediaType": "application/vnd.oci.image.config.v1+json", "size": 40}, '
    '"layers": ['
    '{"digest": "%s", "mediaType": '
    '"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", '
    '"size": 40, "urls": ["https://example.com/base.tar.gz"]}, '
    '{"digest": "%s", "mediaType": '
    '"application/vnd.oci.image.layer.v1.tar+gzip", "size": 10}, '
    '{"digest": "%s", "mediaType": '
    '"application/vnd.oci.image.layer.v1.tar", "size": 30}, '
    '{"annotations": {"a": "b"}, "digest": "%s", "mediaType": '
    '"application/vnd.oci.image.layer.v1.tar+gzip", "size": 20}], '
    '"mediaType": "application/vnd.oci.image.manifest.v1+json", '
    '"schemaVersion": 2}' % (CONFIG_DIGEST, L1, L2, L3, L4))


def test_config_is_40_bytes():
    assert len(CONFIG) == 40


def test_oci_from_v22_manifest():
    img = oci_compat.OCIFromV22(Static(V22))
    assert img.manifest() == OCI
    assert img.media_type() == docker_http.OCI_MANIFEST_MIME
    assert img.digest() == 'sha256:' + hashlib.sha256(OCI.encode()).hexdigest()
    # The foreign layer stays out of what a push uploads.
    assert img.distributable_blob_set() == {CONFIG_DIGEST, L2, L3, L4}
    assert img.blob_set() == {CONFIG_DIGEST, L1, L2, L3, L4}
    assert img.fs_layers() == [L4, L3, L2, L1]
    assert img.config_file() == CONFIG
    with img as entered:
        assert entered is img


def test_oci_from_v22_upstream_layer_types():
    img = oci_compat.OCIFromV22(Static(V22), upstream_layer_types=True)
    expected = OCI
    for old in ('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
                'application/vnd.oci.image.layer.v1.tar+gzip'):
        expected = expected.replace(old, docker_http.OCI_LAYER_MIME)
    assert img.manifest() == expected
    assert expected.count('"application/vnd.oci.image.layer.v1.tar"') == 4
    # Upstream's labels make the foreign layer distributable.
    assert img.distributable_blob_set() == {CONFIG_DIGEST, L1, L2, L3, L4}


def test_v22_from_oci_is_the_reverse():
    img = oci_compat.V22FromOCI(Static(OCI))
    assert img.manifest() == V22
    assert img.media_type() == docker_http.MANIFEST_SCHEMA2_MIME
    assert img.distributable_blob_set() == {CONFIG_DIGEST, L2, L3, L4}
    assert oci_compat.V22FromOCI(oci_compat.OCIFromV22(
        Static(V22))).manifest() == V22


def test_v22_from_oci_layer_types():
    assert oci_compat.docker_layer_type(
        docker_http.OCI_NONDISTRIBUTABLE_LAYER_MIME) == (
            docker_http.FOREIGN_LAYER_MIME)
    assert oci_compat.docker_layer_type(
        docker_http.OCI_ZSTD_LAYER_MIME) == docker_http.OCI_ZSTD_LAYER_MIME
    assert oci_compat.docker_layer_type(None) == docker_http.LAYER_MIME
    assert oci_compat.oci_layer_type(None) == docker_http.OCI_GZIP_LAYER_MIME
    assert oci_compat.oci_layer_type(
        docker_http.OCI_ZSTD_LAYER_MIME) == docker_http.OCI_ZSTD_LAYER_MIME


def test_blobs_pass_through():
    img = oci_compat.OCIFromV22(Static(V22, {L2: b'layer two'}))
    assert img.blob(L2) == b'layer two'
    with img.blob_stream(L2) as f:
        assert f.read() == b'layer two'


def _child(n: int) -> Static:
    return Static(json.dumps({
        'schemaVersion': 2, 'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
        'config': {'mediaType': docker_http.CONFIG_JSON_MIME, 'size': n,
                   'digest': CONFIG_DIGEST},
        'layers': [{'mediaType': docker_http.LAYER_MIME, 'size': n,
                    'digest': L2}]}, sort_keys=True))


def _entry(media_type: str, manifest: str, platform=None) -> str:
    text = '{"digest": "sha256:%s", "mediaType": "%s", ' % (
        hashlib.sha256(manifest.encode()).hexdigest(), media_type)
    if platform:
        text += '"platform": %s, ' % platform
    return text + '"size": %d}' % len(manifest)


def test_index_from_list_and_back():
    arm = docker_image_list.Platform({'architecture': 'arm64',
                                      'os': 'linux', 'variant': 'v8'})
    source = docker_image_list.FromList([(None, _child(1)), (arm, _child(2))])
    oci1 = oci_compat.OCIFromV22(_child(1)).manifest()
    oci2 = oci_compat.OCIFromV22(_child(2)).manifest()
    assert '"application/vnd.oci.image.layer.v1.tar+gzip"' in oci1
    with oci_compat.IndexFromList(source) as index:
        assert index.media_type() == docker_http.OCI_IMAGE_INDEX_MIME
        assert index.manifest() == (
            '{"manifests": [%s, %s], "mediaType": '
            '"application/vnd.oci.image.index.v1+json", "schemaVersion": 2}'
            % (_entry(docker_http.OCI_MANIFEST_MIME, oci1),
               _entry(docker_http.OCI_MANIFEST_MIME, oci2,
                      '{"architecture": "arm64", "os": "linux", '
                      '"variant": "v8"}')))
        children = [child for _, child in index]
        assert [c.manifest() for c in children] == [oci1, oci2]
        with oci_compat.ListFromIndex(index) as back:
            assert back.media_type() == docker_http.MANIFEST_LIST_MIME
            assert back.manifest() == source.manifest()


def test_non_recursive_only_relabels_the_list():
    source = docker_image_list.FromList([(None, _child(1))])
    with oci_compat.IndexFromList(source, recursive=False) as index:
        assert index.manifest() == source.manifest().replace(
            docker_http.MANIFEST_LIST_MIME, docker_http.OCI_IMAGE_INDEX_MIME)
        assert '"%s"' % docker_http.MANIFEST_SCHEMA2_MIME in index.manifest()


def test_nested_lists_are_converted():
    inner = docker_image_list.FromList([(None, _child(3))])
    outer = docker_image_list.FromList([(None, inner)])
    with oci_compat.IndexFromList(outer) as index:
        [(_, child)] = list(index)
        assert isinstance(child, oci_compat.IndexFromList)
        assert child.media_type() == docker_http.OCI_IMAGE_INDEX_MIME
        entry = json.loads(index.manifest())['manifests'][0]
        assert entry['mediaType'] == docker_http.OCI_IMAGE_INDEX_MIME
        assert entry['digest'] == child.digest()


def _oci_layout(tmp_path, tars, upstream_layer_types=False) -> str:
    """Writes an OCI layout of OCIFromV22(FromDisk(TARS)); returns `dir:x`."""
    blobs = [images.gzip_bytes(t) for t in tars]
    config = json.dumps({
        'architecture': 'amd64', 'os': 'linux', 'config': {},
        'rootfs': {'type': 'layers',
                   'diff_ids': [images.sha256(t) for t in tars]}},
        sort_keys=True)
    layers = []
    for i, blob in enumerate(blobs):
        path = tmp_path / ('%03d.tar.gz' % i)
        path.write_bytes(blob)
        (tmp_path / ('%03d.sha256' % i)).write_text(
            hashlib.sha256(blob).hexdigest())
        layers.append((str(tmp_path / ('%03d.sha256' % i)), str(path)))
    layout = tmp_path / 'layout'
    blob_dir = layout / 'blobs' / 'sha256'
    blob_dir.mkdir(parents=True)
    with docker_image.FromDisk(config, layers) as v22:
        img = oci_compat.OCIFromV22(
            v22, upstream_layer_types=upstream_layer_types)
        for digest in img.blob_set():
            (blob_dir / digest[len('sha256:'):]).write_bytes(img.blob(digest))
        manifest = img.manifest().encode()
        (blob_dir / img.digest()[len('sha256:'):]).write_bytes(manifest)
        (layout / 'oci-layout').write_text('{"imageLayoutVersion": "1.0.0"}')
        (layout / 'index.json').write_text(json.dumps({
            'schemaVersion': 2, 'manifests': [{
                'mediaType': docker_http.OCI_MANIFEST_MIME,
                'digest': img.digest(), 'size': len(manifest),
                'annotations': {'org.opencontainers.image.ref.name': 'x'}}]}))
    return '%s:x' % layout


def _umoci_unpack(image: str, bundle) -> subprocess.CompletedProcess:
    return subprocess.run(
        ['umoci', 'unpack', '--rootless', '--image', image, str(bundle)],
        capture_output=True, text=True)


def test_umoci_unpacks_a_converted_image(tmp_path):
    """An OCI tool reads the converted image: layer types match the bytes."""
    image = _oci_layout(tmp_path, [
        images.make_layer(41, files={'etc/one': b'1\n'}),
        images.make_layer(42, files={'etc/two': b'2\n'})])
    result = _umoci_unpack(image, tmp_path / 'bundle')
    assert result.returncode == 0, result.stderr
    rootfs = tmp_path / 'bundle' / 'rootfs'
    assert (rootfs / 'etc' / 'one').read_bytes() == b'1\n'
    assert (rootfs / 'etc' / 'two').read_bytes() == b'2\n'


def test_umoci_rejects_upstream_labels(tmp_path):
    """Upstream's `tar` label on gzip data is what the fix is about."""
    image = _oci_layout(tmp_path, [images.make_layer(43, files={'x': b'x'})],
                        upstream_layer_types=True)
    result = _umoci_unpack(image, tmp_path / 'bundle')
    assert result.returncode != 0
    assert 'unpack layer' in result.stderr, result.stderr
