"""FromOCILayout reads the layouts the puller, skopeo and umoci write."""
import gzip
import hashlib
import json
import os

import pytest

from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import oci_layout_image
from containerregistry.testing import images
from containerregistry.testing import oci_layouts as ol

FromOCILayout = oci_layout_image.FromOCILayout
OCILayoutError = oci_layout_image.OCILayoutError


def _tars(*seeds):
    return [images.make_layer(s, 1500) for s in seeds]


def _assert_image(image, manifest: bytes, config: bytes, layers) -> None:
    """IMAGE serves exactly these bytes, and blobs read back intact."""
    assert image.manifest().encode() == manifest
    assert image.digest() == images.sha256(manifest)
    assert image.config_file().encode() == config
    assert image.config_blob() == images.sha256(config)
    assert image.fs_layers() == [l.digest for l in reversed(layers)]
    for layer in layers:
        assert image.blob(layer.digest) == layer.blob
        assert image.blob_size(layer.digest) == len(layer.blob)
        assert image.uncompressed_blob(layer.digest) == layer.tar


def test_hand_written_layout(tmp_path):
    built = images.build_image(_tars(1, 2), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [('v1', built)])
    with FromOCILayout(layout) as image:
        _assert_image(image, built.manifest, built.config, built.layers)
        assert image.media_type() == images.OCI_MANIFEST
    with FromOCILayout(layout, ref='v1') as image:
        assert image.digest() == built.digest


def test_docker_media_types_are_kept(tmp_path):
    built = images.build_image(_tars(3), fmt='docker')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    with FromOCILayout(layout) as image:
        assert image.media_type() == images.DOCKER_MANIFEST
        _assert_image(image, built.manifest, built.config, built.layers)


def test_puller_layout(registry, repo_name, pull):
    for fmt in ('oci', 'docker'):
        pushed = images.push_image(registry, '%s:%s' % (repo_name, fmt),
                                   _tars(11, 12), fmt=fmt)
        proc = pull(pushed.by_tag, '--format', 'oci')
        assert proc.returncode == 0, proc.stderr
        entry, = ol.index_entries(proc.directory)
        with FromOCILayout(proc.directory, ref=fmt) as image:
            assert image.digest() == entry['digest']
            assert image.manifest().encode() == ol.read_blob(
                proc.directory, entry['digest'])
            assert image.config_file().encode() == pushed.config
            for layer in pushed.layers:
                assert image.blob(layer.digest) == layer.blob
        if fmt == 'oci':
            assert entry['digest'] == pushed.digest


def test_skopeo_layout(registry, repo_name, tmp_path):
    pushed = images.push_image(registry, repo_name + ':s', _tars(21, 22))
    layout = ol.skopeo_layout(registry, pushed.by_tag, str(tmp_path / 'l'), 'mine')
    entry, = ol.index_entries(layout)
    assert entry['annotations'] == {ol.REF_NAME: 'mine'}
    with FromOCILayout(layout) as image:
        assert image.digest() == entry['digest']
        assert image.media_type() == images.OCI_MANIFEST
        assert image.config_file().encode() == ol.read_blob(
            layout, image.config_blob())
        assert image.diff_ids() == [l.diff_id for l in reversed(pushed.layers)]
        for layer, digest in zip(reversed(pushed.layers), image.fs_layers()):
            assert image.uncompressed_blob(digest) == layer.tar


def test_skopeo_multi_arch_index_resolves_linux_amd64(registry, repo_name,
                                                      tmp_path):
    pushed = images.push_index(registry, repo_name + ':all', fmt='oci')
    layout = ol.skopeo_layout(registry, pushed.by_tag, str(tmp_path / 'l'),
                              'all', '--all')
    entry, = ol.index_entries(layout)
    assert entry['mediaType'] == images.OCI_INDEX
    amd64 = pushed.child(os='linux', architecture='amd64')
    with FromOCILayout(layout, ref='all') as image:
        assert image.digest() == amd64.digest
        assert image.manifest().encode() == amd64.manifest


def test_umoci_layout(tmp_path):
    layout = ol.umoci_layout(str(tmp_path / 'l'), 'u',
                             {'hello.txt': b'hello\n', 'world.txt': b'world\n'},
                             str(tmp_path))
    entry, = ol.index_entries(layout)
    with FromOCILayout(layout, ref='u') as image:
        assert image.digest() == entry['digest']
        assert len(image.fs_layers()) == 2
        for digest, diff_id in zip(image.fs_layers(), image.diff_ids()):
            tar = image.uncompressed_blob(digest)
            assert images.sha256(tar) == diff_id
        # umoci 0.4 ends its tars without padding, so Python's tarfile
        # cannot list them: look at the header and data directly.
        top = image.uncompressed_blob(image.fs_layers()[0])
        assert top[:100].rstrip(b'\0') == b'world.txt'
        assert top[512:518] == b'world\n'


def test_refs_pick_among_several(tmp_path):
    one = images.build_image(_tars(31), fmt='oci')
    two = images.build_image(_tars(32), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [('one', one), ('two', two)])
    with FromOCILayout(layout, ref='two') as image:
        assert image.digest() == two.digest
    with FromOCILayout(layout, ref='one') as image:
        assert image.digest() == one.digest
    with pytest.raises(OCILayoutError, match=r'holds 2 images.*refs: one, two'):
        FromOCILayout(layout)
    with pytest.raises(OCILayoutError,
                       match=r"no image named 'three'.*refs: one, two"):
        FromOCILayout(layout, ref='three')


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(OCILayoutError, match='does not exist'):
        FromOCILayout(str(tmp_path / 'nope'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(OCILayoutError, match='not an OCI image layout: it has '
                       'no oci-layout'):
        FromOCILayout(str(empty))
    (empty / 'oci-layout').write_text('{"imageLayoutVersion": "1.0.0"}')
    with pytest.raises(OCILayoutError, match='it has no index.json'):
        FromOCILayout(str(empty))
    (empty / 'index.json').write_text('{"manifests": [')
    with pytest.raises(OCILayoutError, match='index.json of .* is not valid JSON'):
        FromOCILayout(str(empty))


def test_oversized_index_is_refused(tmp_path):
    built = images.build_image(_tars(33), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    with open(os.path.join(layout, 'index.json'), 'ab') as f:
        f.write(b' ' * (8 << 20))
    with pytest.raises(OCILayoutError, match='more than 8 MiB'):
        FromOCILayout(layout)


def test_missing_layer_is_named(tmp_path):
    built = images.build_image(_tars(41, 42), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    missing = built.layers[1].digest
    os.unlink(ol.blob_path(layout, missing))
    with pytest.raises(OCILayoutError,
                       match='layer blob %s is missing' % missing):
        FromOCILayout(layout)


def test_corrupted_layer_is_refused_when_read(tmp_path):
    built = images.build_image(_tars(43), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    digest = built.layers[0].digest
    data = bytearray(built.layers[0].blob)
    data[len(data) // 2] ^= 0xff
    with open(ol.blob_path(layout, digest), 'wb') as f:
        f.write(data)
    with FromOCILayout(layout) as image:
        with pytest.raises(docker_digest.DigestMismatchedError, match=digest):
            image.blob(digest)
        with pytest.raises(docker_digest.DigestMismatchedError):
            with image.blob_stream(digest) as reader:
                while reader.read(1000):
                    pass
        assert image.blob_range(digest) is None


def test_corrupted_manifest_is_refused(tmp_path):
    built = images.build_image(_tars(44), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    with open(ol.blob_path(layout, built.digest), 'wb') as f:
        f.write(built.manifest.replace(b'"schemaVersion": 2',
                                       b'"schemaVersion": 3'))
    with pytest.raises(OCILayoutError, match='digest mismatch for manifest %s'
                       % built.digest):
        FromOCILayout(layout)


def test_blob_path_escape_is_refused(tmp_path):
    built = images.build_image(_tars(45), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    ol.write_index(layout, [{'mediaType': images.OCI_MANIFEST,
                             'size': len(built.manifest),
                             'digest': 'sha256:../../../outside'}])
    with pytest.raises(OCILayoutError, match='invalid digest'):
        FromOCILayout(layout)
    # A blob that is a symlink out of the layout is not followed.
    outside = tmp_path / 'outside'
    outside.write_bytes(built.manifest)
    os.unlink(ol.blob_path(layout, built.digest))
    os.symlink(str(outside), ol.blob_path(layout, built.digest))
    ol.write_layout(layout, [(None, built)])
    os.unlink(ol.blob_path(layout, built.digest))
    os.symlink(str(outside), ol.blob_path(layout, built.digest))
    with pytest.raises(OCILayoutError, match='leads outside the layout'):
        FromOCILayout(layout)


def test_blob_range_only_after_an_intact_read(tmp_path):
    built = images.build_image(_tars(46), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    layer = built.layers[0]
    with FromOCILayout(layout) as image:
        assert image.blob_range(layer.digest) is None
        assert hashlib.sha256(image.blob(layer.digest)).hexdigest() == layer.hex
        found = image.blob_range(layer.digest)
        assert found is not None and found.size == len(layer.blob)
        with found.open() as f:
            assert f.read() == layer.blob
        # Changed since: read (and checked) again.
        with open(ol.blob_path(layout, layer.digest), 'wb') as f:
            f.write(gzip.compress(b'other', mtime=0))
        assert image.blob_range(layer.digest) is None


def test_unknown_blob_is_refused(tmp_path):
    built = images.build_image(_tars(47), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    other = 'sha256:' + 'ab' * 32
    with FromOCILayout(layout) as image:
        with pytest.raises(OCILayoutError, match='has no blob %s' % other):
            image.blob(other)


def test_index_entry_and_manifest_must_agree(tmp_path):
    built = images.build_image(_tars(48), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    entry, = ol.index_entries(layout)
    entry['mediaType'] = images.DOCKER_MANIFEST
    ol.write_index(layout, [entry])
    with pytest.raises(OCILayoutError, match='says its media type is'):
        FromOCILayout(layout)
    assert json.loads(built.manifest)['mediaType'] == images.OCI_MANIFEST


def test_entry_without_media_type_is_typed_by_its_manifest(tmp_path):
    built = images.build_image(_tars(49), fmt='docker')
    layout = ol.write_layout(str(tmp_path / 'l'), [(None, built)])
    entry, = ol.index_entries(layout)
    del entry['mediaType']
    ol.write_index(layout, [entry])
    with FromOCILayout(layout) as image:
        assert image.media_type() == images.DOCKER_MANIFEST
        assert image.digest() == built.digest


def _index_layout(directory, children, fmt='oci', attestations=()):
    """A layout whose one entry, 'all', is a list over CHILDREN."""
    top = images.build_list(children, fmt, attestations)
    for built in [*children, *attestations]:
        for data in [built.manifest, *built.blobs().values()]:
            ol.put_blob(directory, data)
    ol.put_blob(directory, top)
    media_type = json.loads(top)['mediaType']
    ol.write_index(directory, [{'mediaType': media_type, 'digest':
                                images.sha256(top), 'size': len(top),
                                'annotations': {ol.REF_NAME: 'all'}}])
    return top


@pytest.mark.parametrize('fmt', ['oci', 'docker'])
def test_open_layout_gives_an_index_whole(tmp_path, fmt):
    children = [images.build_image(_tars(30 + i), fmt, platform)
                for i, platform in enumerate(
                    [{'os': 'linux', 'architecture': 'arm64'},
                     {'os': 'linux', 'architecture': 'amd64'}])]
    layout = str(tmp_path / 'l')
    top = _index_layout(layout, children, fmt)
    with oci_layout_image.open_layout(layout, 'all') as whole:
        assert whole.manifest().encode() == top
        assert whole.digest() == images.sha256(top)
        assert whole.media_type() == json.loads(top)['mediaType']
        got = [(dict(p), child.digest()) for p, child in whole]
        assert got == [(dict(c.platform), c.digest) for c in children]
        assert whole.resolve().digest() == children[1].digest
    # The image sources still resolve the entry to linux/amd64.
    with FromOCILayout(layout, 'all') as image:
        assert image.digest() == children[1].digest


def test_index_missing_a_child_is_refused_up_front(tmp_path):
    child = images.build_image(_tars(40), 'oci')
    attestation = images.build_attestation(child, 40)
    layout = str(tmp_path / 'l')
    _index_layout(layout, [child], attestations=[attestation])
    os.remove(ol.blob_path(layout, attestation.digest))
    with pytest.raises(OCILayoutError) as caught:
        oci_layout_image.open_layout(layout)
    assert attestation.digest in str(caught.value)
    assert '--include-attestations' in str(caught.value)
    os.remove(ol.blob_path(layout, child.layers[0].digest))
    with pytest.raises(OCILayoutError) as caught:
        oci_layout_image.open_layout(layout)
    assert 'layer blob %s is missing' % child.layers[0].digest in str(
        caught.value)
