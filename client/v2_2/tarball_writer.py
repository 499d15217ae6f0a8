"""Writes v2.2 images as a `docker save` tarball (`docker load` reads it).

Member order, as upstream writes it:
1. every image's config as `<config sha256 hex>.json`;
2. per image, its v1 layers top first, each once, throwaway ones skipped:
   `<id>/VERSION` (`1.0`), `<id>/layer.tar` (uncompressed), `<id>/json`;
3. `repositories`: `{repository: {tag: top v1 id}}`;
4. `manifest.json`: `[{Config, Layers (base first), RepoTags,
   LayerSources (only with foreign layers)}]`.
Members are bare `TarInfo`s (mode 0644, mtime 0, owner 0). v1 ids and JSON
come from `v2_compat.v1_layers`, so the bytes equal upstream's.

Layers stream into the tar. A tar header needs the size first: when the
source cannot tell the uncompressed size, the layer is inflated once into
an anonymous temporary file, which is then copied in.
"""
import hashlib
import io
import json
import tarfile
import tempfile
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Tuple

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import v2_compat

_CHUNK = 1 << 20


class TarballWriteError(ValueError):
    """An image could not be written as a docker-save tarball."""


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class _Hashing:
    """A reader that hashes what passes through it."""

    def __init__(self, reader):
        self._reader = reader
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, amt: int = -1) -> bytes:
        """Up to AMT bytes; fewer only at end of data (tarfile needs that)."""
        data = self._reader.read(amt)
        if amt is not None and amt > 0:
            parts = [data]
            got = len(data)
            while data and got < amt:
                data = self._reader.read(amt - got)
                parts.append(data)
                got += len(data)
            data = b''.join(parts)
        self.hash.update(data)
        self.count += len(data)
        return data


def add_stream(tar: tarfile.TarFile, name: str, reader,
               size: Optional[int]) -> str:
    """Copies READER into the tar as NAME; returns its sha256 digest."""
    if size is None:
        with tempfile.TemporaryFile(prefix='cr-layer-') as spool:
            hashing = _Hashing(reader)
            while True:
                chunk = hashing.read(_CHUNK)
                if not chunk:
                    break
                spool.write(chunk)
            spool.seek(0)
            info = tarfile.TarInfo(name)
            info.size = hashing.count
            tar.addfile(info, spool)
            return 'sha256:' + hashing.hash.hexdigest()
    hashing = _Hashing(reader)
    info = tarfile.TarInfo(name)
    info.size = size
    try:
        tar.addfile(info, hashing)
    except OSError as e:
        if hashing.count < size and str(e) == 'unexpected end of data':
            raise TarballWriteError(
                '%s: the layer is shorter than the %d bytes its source gave '
                'as its size' % (name, size)) from e
        raise
    if hashing.read(1):
        raise TarballWriteError('%s: the layer is longer than the %d bytes '
                                'its source gave as its size' % (name, size))
    return 'sha256:' + hashing.hash.hexdigest()


def _open_uncompressed(image: docker_image.DockerImage, digest: str
                       ) -> Tuple[BinaryIO, Optional[int]]:
    """A reader over the layer tar of DIGEST, and its size if known.

    The image serves the tar (`uncompressed_blob_stream`): a source that
    holds it plain gives it directly, any other inflates the blob as it
    streams, and one written to upstream's contract (bytes) gives what its
    `uncompressed_blob` returns.
    """
    if digest == v2_compat.EMPTY_TAR_DIGEST:
        return (io.BytesIO(bytes(v2_compat.EMPTY_TAR_SIZE)),
                v2_compat.EMPTY_TAR_SIZE)
    return (image.uncompressed_blob_stream(digest),
            image.uncompressed_blob_size(digest))


class _V1View:
    """What the writer needs of an image's v1 form."""

    top: str
    ancestry: List[str]  # top first

    def json(self, layer_id: str) -> str:
        raise NotImplementedError

    def throwaway(self, layer_id: str) -> bool:
        return bool(json.loads(self.json(layer_id)).get('throwaway'))

    def diff_id(self, layer_id: str) -> Optional[str]:
        """The layer's diff_id if known without reading it."""
        raise NotImplementedError

    def open_layer(self, layer_id: str) -> Tuple[BinaryIO, Optional[int]]:
        raise NotImplementedError


class _FromV22(_V1View):
    """The v1 chain upstream's V2FromV22 + V1FromV2 derive from an image."""

    def __init__(self, image: docker_image.DockerImage, manifest: Dict[str, Any],
                 raw_config: str):
        self._image = image
        layers = v2_compat.v1_layers(manifest, raw_config)
        self._by_id: Dict[str, Any] = {}
        self.ancestry = []
        for layer in reversed(layers):
            if layer.id not in self._by_id:
                self._by_id[layer.id] = layer
                self.ancestry.append(layer.id)
        self.top = self.ancestry[0]

    def json(self, layer_id: str) -> str:
        return self._by_id[layer_id].v1_compatibility

    def throwaway(self, layer_id: str) -> bool:
        return self._by_id[layer_id].throwaway

    def diff_id(self, layer_id: str) -> Optional[str]:
        try:
            return self._image.digest_to_diff_id(self._by_id[layer_id].digest)
        except ValueError:
            return None

    def open_layer(self, layer_id: str) -> Tuple[BinaryIO, Optional[int]]:
        layer = self._by_id[layer_id]
        return _open_uncompressed(self._image, layer.digest)


class _FromV1(_V1View):
    """A caller-supplied v1 image (`top`, `ancestry`, `json`, ...)."""

    def __init__(self, image: Any):
        self._image = image
        self.top = image.top()
        self.ancestry = list(image.ancestry(self.top))

    def json(self, layer_id: str) -> str:
        return self._image.json(layer_id)

    def diff_id(self, layer_id: str) -> Optional[str]:
        method = getattr(self._image, 'diff_id', None)
        if not callable(method):
            return None
        try:
            return method(layer_id)
        except ValueError:
            return None

    def open_layer(self, layer_id: str) -> Tuple[BinaryIO, Optional[int]]:
        return open_v1_layer(self._image, layer_id)


def open_v1_layer(image: Any, layer_id: str) -> Tuple[BinaryIO, Optional[int]]:
    """A reader over the tar of LAYER_ID of v1 IMAGE, and its size if known.

    IMAGE may be any object with upstream's v1 methods: one without
    `uncompressed_layer_stream` (client.v1's images have it) is read whole.
    """
    stream = getattr(image, 'uncompressed_layer_stream', None)
    if callable(stream):
        sizer = getattr(image, 'uncompressed_layer_size', None)
        return stream(layer_id), sizer(layer_id) if callable(sizer) else None
    data = image.uncompressed_layer(layer_id)
    return io.BytesIO(data), len(data)


def _layer_sources(image: docker_image.DockerImage,
                   manifest: Dict[str, Any]) -> Dict[str, Any]:
    sources = {}
    for layer in manifest.get('layers') or []:
        if layer.get('mediaType') == media_types.FOREIGN_LAYER_MIME:
            sources[image.digest_to_diff_id(layer['digest'])] = layer
    return sources


def multi_image_tarball(tag_to_image: Mapping[Any, docker_image.DockerImage],
                        tar: tarfile.TarFile,
                        tag_to_v1_image: Optional[Mapping[Any, Any]] = None
                        ) -> None:
    """Writes a `docker save` tarball of the images into the open TAR.

    TAG_TO_IMAGE maps `docker_name.Tag`s (non-strict, registry-less tags
    are fine) to v2.2 images. TAG_TO_V1_IMAGE optionally gives the v1 form
    of some of them (v1 `DockerImage`s); the rest are converted.
    """
    tag_to_v1_image = tag_to_v1_image or {}
    plans: List[Tuple[Any, docker_image.DockerImage, str, Dict[str, Any],
                      _V1View]] = []
    for key, image in tag_to_image.items():
        tag = docker_name.Tag(key, strict=False) if isinstance(key, str) else key
        raw_config = image.config_file()
        manifest = json.loads(image.manifest())
        v1_image = tag_to_v1_image.get(key)
        view: _V1View = (_FromV1(v1_image) if v1_image
                         else _FromV22(image, manifest, raw_config))
        plans.append((tag, image, raw_config, manifest, view))

    config_names = []
    for _, _, raw_config, _, _ in plans:
        data = raw_config.encode('utf8')
        name = hashlib.sha256(data).hexdigest() + '.json'
        config_names.append(name)
        add_bytes(tar, name, data)

    diff_ids: Dict[str, str] = {}
    repositories: Dict[str, Dict[str, str]] = {}
    for tag, _, _, _, view in plans:
        repositories.setdefault(str(tag.as_repository()), {})[tag.tag] = (
            view.top)
        for layer_id in view.ancestry:
            if layer_id in diff_ids or view.throwaway(layer_id):
                continue
            add_bytes(tar, layer_id + '/VERSION', b'1.0')
            reader, size = view.open_layer(layer_id)
            with reader:
                hashed = add_stream(tar, layer_id + '/layer.tar', reader,
                                    size)
            diff_ids[layer_id] = view.diff_id(layer_id) or hashed
            add_bytes(tar, layer_id + '/json',
                      view.json(layer_id).encode('utf8'))
    add_bytes(tar, 'repositories',
              json.dumps(repositories, sort_keys=True).encode('utf8'))

    entries = []
    for (tag, image, raw_config, manifest, view), config_name in zip(
            plans, config_names):
        diffs = set(json.loads(raw_config).get('rootfs', {})
                    .get('diff_ids', []))
        entry: Dict[str, Any] = {
            'Config': config_name,
            'Layers': [
                layer_id + '/layer.tar'
                for layer_id in reversed(view.ancestry)
                if not view.throwaway(layer_id)
                and (view.diff_id(layer_id) or diff_ids[layer_id]) in diffs
            ],
            'RepoTags': [str(tag)],
        }
        sources = _layer_sources(image, manifest)
        if sources:
            entry['LayerSources'] = sources
        entries.append(entry)
    add_bytes(tar, 'manifest.json',
              json.dumps(entries, sort_keys=True).encode('utf8'))


def tarball(name: Any, image: docker_image.DockerImage,
            tar: tarfile.TarFile) -> None:
    """Writes IMAGE, tagged NAME, as a `docker save` tarball into TAR."""
    multi_image_tarball({name: image}, tar, {})
