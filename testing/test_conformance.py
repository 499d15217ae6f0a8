"""Every image source and view passes `conformance.check_image`; a source that
implements only the core streams through every sink.

A new source adds its case here: build the image, and give `check_image` a
function that damages one stored blob.
"""
import io
import json
import os
import tarfile
from typing import Dict

import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2 import docker_image as v2_image
from containerregistry.client.v2_2 import append
from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import docker_session
from containerregistry.client.v2_2 import flatten
from containerregistry.client.v2_2 import foreign_layers
from containerregistry.client.v2_2 import oci_compat
from containerregistry.client.v2_2 import oci_layout_image
from containerregistry.client.v2_2 import save
from containerregistry.client.v2_2 import tarball_writer
from containerregistry.client.v2_2 import v2_compat
from containerregistry.testing import conformance
from containerregistry.testing import images
from containerregistry.testing import oci_layouts as ol
from containerregistry.testing import push_helpers as ph
from containerregistry.testing import schema1
from containerregistry.transport import pooled_http

sha256 = images.sha256
ANON = docker_creds.Anonymous()


def _tars(seed: int):
    return [images.make_layer(seed, 3000),
            images.make_layer(seed + 1, 5000, kind='text')]


def _flip(path: str, offset: int, size: int) -> None:
    """One byte in the middle of SIZE bytes at OFFSET of PATH flipped."""
    with open(path, 'r+b') as f:
        f.seek(offset + size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xff]))
    os.utime(path, ns=(0, 12345))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _docker_save(path: str, tars) -> str:
    """A docker-save tarball: the base layer gzipped, the next one plain."""
    config = ph.config_bytes([sha256(t) for t in tars])
    with tarfile.open(path, 'w') as tar:
        _add(tar, 'c.json', config)
        _add(tar, 'l0.tar.gz', images.gzip_bytes(tars[0]))
        _add(tar, 'l1.tar', tars[1])
        _add(tar, 'manifest.json', json.dumps([{
            'Config': 'c.json', 'RepoTags': ['a/b:c'],
            'Layers': ['l0.tar.gz', 'l1.tar']}]).encode())
    return path


def _range_corrupter(image):
    """Damages a blob where the image's own range says it lies."""
    def corrupt(digest: str) -> None:
        found = image.blob_range(digest)
        _flip(found.path, found.offset, found.size)
    return corrupt


@pytest.mark.parametrize('keep_tars', [False, True])
def test_from_tarball(tmp_path, keep_tars):
    image = docker_image.FromTarball(
        _docker_save(str(tmp_path / 'save.tar'), _tars(10)),
        keep_tars=keep_tars)
    conformance.check_image(image, corrupt=_range_corrupter(image))


@pytest.mark.parametrize('fmt', ['oci', 'docker'])
def test_from_oci_layout(tmp_path, fmt):
    layout = str(tmp_path / 'layout')
    built = images.build_image(_tars(12), fmt)
    ol.write_layout(layout, [('v1', built)])
    image = oci_layout_image.FromOCILayout(layout)

    def corrupt(digest: str) -> None:
        path = ol.blob_path(layout, digest)
        _flip(path, 0, os.path.getsize(path))
    conformance.check_image(image, corrupt=corrupt)


def _disk(tmp_path, seed: int, name: str = 'disk') -> ph.DiskImage:
    return ph.write_disk_image(str(tmp_path / name), _tars(seed))


def _from_disk(disk: ph.DiskImage, tars=None) -> docker_image.DockerImage:
    uncompressed = None
    if tars is not None:
        uncompressed = []
        for i, tar in enumerate(tars):
            path = os.path.join(disk.directory, '%03d.tar' % i)
            with open(path, 'wb') as f:
                f.write(tar)
            id_path = path + '.id'
            with open(id_path, 'w') as f:
                f.write(sha256(tar))
            uncompressed.append((id_path, path))
    return docker_image.FromDisk(disk.config.decode(),
                                 list(zip(disk.digest_paths, disk.layer_paths)),
                                 uncompressed_layers=uncompressed)


def _disk_corrupter(disk: ph.DiskImage):
    def corrupt(digest: str) -> None:
        path = disk.layer_paths[[l.digest for l in disk.layers].index(digest)]
        _flip(path, 0, os.path.getsize(path))
    return corrupt


@pytest.mark.parametrize('with_tars', [False, True])
def test_from_disk(tmp_path, with_tars):
    disk = _disk(tmp_path, 20)
    image = _from_disk(disk, _tars(20) if with_tars else None)
    conformance.check_image(image, corrupt=_disk_corrupter(disk))


class _Forwarding(docker_image.Delegate):
    """Delegate as a view that changes nothing (it leaves entering to
    subclasses, as upstream's does)."""

    def __enter__(self):
        self._image.__enter__()
        return self

    def __exit__(self, *args):
        self._image.__exit__(*args)


def _views():
    return {
        'oci': oci_compat.OCIFromV22,
        'v22_from_oci': lambda image: oci_compat.V22FromOCI(
            oci_compat.OCIFromV22(image)),
        'delegate': _Forwarding,
        'append': lambda image: append.Layer(
            image, images.gzip_bytes(images.make_layer(39, 700))),
    }


@pytest.mark.parametrize('view', sorted(_views()))
def test_views(tmp_path, view):
    disk = _disk(tmp_path, 30)
    conformance.check_image(_views()[view](_from_disk(disk)),
                            corrupt=_disk_corrupter(disk))


def test_capabilities_are_declared_and_passed_on(tmp_path):
    path = _docker_save(str(tmp_path / 'save.tar'), _tars(35))
    with docker_image.FromTarball(path) as image:
        view = oci_compat.OCIFromV22(image)
        assert [view.capability(kind) for kind in capabilities.ALL] == [
            image] * len(capabilities.ALL)
        # A view that does not say which hold passes none on.
        assert [_Forwarding(image).capability(kind)
                for kind in capabilities.ALL] == [None] * len(capabilities.ALL)
        # Fetching replaces placeholders, so it does not pass them on.
        fetching = foreign_layers.Fetching(image, pooled_http.Http())
        assert fetching.capability(capabilities.StandIns) is None
        assert fetching.capability(capabilities.BlobFiles) is image
        assert fetching.capability(
            capabilities.UncompressedLayers) is fetching
    disk = _from_disk(_disk(tmp_path, 36))
    assert disk.capability(capabilities.BlobFiles) is disk
    assert disk.capability(capabilities.TarFiles) is None
    # Its layer files are the user's: sent to registries, never placed.
    assert not disk.blob_range(disk.fs_layers()[0]).checked
    assert [_core_only(bounded=False).capability(kind)
            for kind in capabilities.ALL] == [None] * len(capabilities.ALL)


def _storage_corrupter(registry):
    """Damages a blob where the registry stores it."""
    def corrupt(digest: str) -> None:
        hexd = digest.split(':', 1)[1]
        path = os.path.join(registry.storage, 'docker', 'registry', 'v2',
                            'blobs', 'sha256', hexd[:2], hexd, 'data')
        _flip(path, 0, os.path.getsize(path))
    return corrupt


def test_from_registry(registry, repo_name):
    pushed = images.push_image(registry, repo_name + ':t', _tars(40))
    image = docker_image.FromRegistry(docker_name.Tag(pushed.name), ANON,
                                      pooled_http.Http())
    conformance.check_image(image, corrupt=_storage_corrupter(registry))


@pytest.fixture(scope='module')
def s1_registry():
    r = schema1.start_registry()
    yield r
    r.stop()


def test_v22_from_schema1(s1_registry, repo_name):
    img = schema1.build(_tars(50), throwaway=[1])
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    with v2_image.FromRegistry(docker_name.Tag(pushed.by_tag), ANON,
                               pooled_http.Http()) as v2:
        # Spooled copies are the view's own; unspooled, every read reaches
        # the registry, where the damage is.
        conformance.check_image(v2_compat.V22FromV2(v2, spool=False),
                                corrupt=_storage_corrupter(s1_registry))


# A source that implements only the core.

_LIMIT = 2 << 20  # no single read may ask for more


class _Bounded(io.RawIOBase):
    """Serves DATA, refusing reads of the whole (or of more than _LIMIT)."""

    def __init__(self, data: bytes):
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size is not None and 0 <= size <= _LIMIT, size
        return self._data.read(size)

    def readinto(self, buffer) -> int:
        assert len(buffer) <= _LIMIT, len(buffer)
        return self._data.readinto(buffer)

    def readall(self) -> bytes:
        raise AssertionError('a blob was read whole')


class CoreOnly(docker_image.StreamingImage):
    """Manifest, config and checked blob streams: nothing more."""

    def __init__(self, config: bytes, blobs: Dict[str, bytes],
                 manifest: bytes, bounded: bool):
        self._config = config.decode()
        self.blobs = blobs
        self._manifest = manifest.decode()
        self._bounded = bounded

    def manifest(self) -> str:
        return self._manifest

    def config_file(self) -> str:
        return self._config

    def blob_stream(self, digest: str):
        data = self.blobs[digest]
        reader = _Bounded(data) if self._bounded else io.BytesIO(data)
        return docker_digest.VerifyingReader(reader, digest)

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


def _core_only(bounded: bool) -> CoreOnly:
    # Random data: the gzip blobs are larger than any read allowed.
    built = images.build_image([images.make_layer(60, 5 << 20),
                                images.make_layer(61, 3 << 20)])
    return CoreOnly(built.config, built.blobs(), built.manifest, bounded)


def test_core_only_source_conforms():
    # The conformance check reads bytes too: its reads are not bounded.
    image = _core_only(bounded=False)

    def corrupt(digest: str) -> None:
        data = bytearray(image.blobs[digest])
        data[len(data) // 2] ^= 0xff
        image.blobs[digest] = bytes(data)
    assert not isinstance(image, capabilities.ALL)
    conformance.check_image(image, corrupt=corrupt)


def test_core_only_source_streams_through_every_sink(tmp_path, registry,
                                                     repo_name):
    image = _core_only(bounded=True)
    layers = json.loads(image.manifest())['layers']
    assert min(l['size'] for l in layers) > _LIMIT
    with image:
        assert [image.blob_size(l['digest']) for l in layers] == [
            l['size'] for l in layers]
        save.fast(image, str(tmp_path / 'fast'))
        save.uncompressed(image, str(tmp_path / 'tars'))
        with tarfile.open(str(tmp_path / 'saved.tar'), 'w') as tar:
            tarball_writer.multi_image_tarball(
                {docker_name.Tag('a/b:c', strict=False): image}, tar)
        with tarfile.open(str(tmp_path / 'flat.tar'), 'w') as tar:
            flatten.extract(image, tar)
        name = docker_name.Tag('%s/%s:t' % (registry.host, repo_name))
        with docker_session.Push(name, ANON, pooled_http.Http()) as session:
            session.upload(image)
    for i, layer in enumerate(layers):
        with open(str(tmp_path / 'fast' / ('%03d.tar.gz' % i)), 'rb') as f:
            assert sha256(f.read()) == layer['digest']
    _, _, blobs = ph.pull_image(registry, repo_name, 't')
    assert set(blobs) == {l['digest'] for l in layers}
    with docker_image.FromTarball(str(tmp_path / 'saved.tar')) as again:
        assert again.diff_ids() == image.diff_ids()
    assert docker_http.MANIFEST_SCHEMA2_MIME == image.media_type()
