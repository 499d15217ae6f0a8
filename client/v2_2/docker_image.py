"""The one interface every v2.2 image is read through, whatever its source.

Sources: `FromRegistry` (a registry), `FromTarball` (a docker-save tarball),
`FromDisk` (the puller's fast layout). They implement a small core,
`StreamingImage`: manifest, config, and each blob as a stream that checks
its digest; this module derives the rest (bytes, sizes, tars, diff_ids)
under upstream's names. What a source can do beyond the core it declares
(`capabilities`), and sinks (`save`, `docker_session`, `tarball_writer`,
`flatten`) ask for it by interface. Classes written to upstream's contract
(`DockerImage`, bytes from `blob()`) are read through the same names.
"""
import abc
import contextlib
import io
import json
from typing import Any, Dict, List, Optional, Set, Tuple

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import media_types

# The sources are loaded on first use (see __getattr__), so they are named
# here for `from ... import *`.
__all__ = [  # noqa: F822 (FromDisk, FromRegistry, FromTarball, extract: __getattr__)
           'DigestMismatchedError', 'DockerImage', 'Delegate', 'FileRange',
           'FromDisk', 'FromRegistry', 'FromTarball', 'StreamingImage',
           'extract', 'is_compressed']

DigestMismatchedError = docker_digest.DigestMismatchedError

_CHUNK = 1 << 20


class ForeignLayerUnavailableError(ValueError):
    """A foreign layer whose bytes this image does not hold.

    Such layers (Windows base layers) are served from the URLs of their
    descriptor, not by registries; a tarball built on such a base holds
    only a placeholder. DIGEST and URLS say where the bytes can be had.
    """

    def __init__(self, digest: str, urls: List[str], where: str):
        self.digest = digest
        self.urls = list(urls)
        super().__init__('foreign layer %s is not in %s; %s' % (
            digest, where, 'its URLs: ' + ', '.join(self.urls)
            if self.urls else 'its descriptor lists no URLs'))


def fetchable_urls(urls: Any) -> List[str]:
    """The http(s) URLs among URLS (a foreign layer descriptor's `urls`), in
    order: the only ones sources and fetchers try."""
    if not isinstance(urls, list):
        return []
    return [url for url in urls if isinstance(url, str)
            and url.split(':', 1)[0] in ('https', 'http')]


FileRange = capabilities.FileRange


def is_compressed(name: bytes) -> bool:
    """True iff NAME, a blob or its first bytes, starts with gzip's magic
    number (the parameter keeps upstream's name: callers pass it by keyword)."""
    return name[0:2] == b'\x1f\x8b'

# The sources live in modules of their own; import them only when asked for,
# so that a tool loads just the source it uses.
_SOURCES = {
    'FromRegistry': 'registry_image',
    'FromTarball': 'tarball_image',
    'FromDisk': 'disk_image',
    'extract': 'flatten',
}


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib  # pylint: disable=import-outside-toplevel
    return getattr(
        importlib.import_module('containerregistry.client.v2_2.' + module),
        name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_SOURCES))


class DockerImage(metaclass=abc.ABCMeta):
    """Interface for implementations that interact with Docker images.

    This is upstream's contract: a subclass implements `manifest()`,
    `config_file()` and `blob()`, and may give `uncompressed_blob()` too;
    bytes are its primitive, and the streams are served from them. The
    project's sources derive from `StreamingImage` instead, whose primitive
    is the stream. Either way sinks read through the same names.
    """

    def fs_layers(self) -> List[str]:
        """The ordered collection of filesystem layers, top (newest) first."""
        manifest = json.loads(self.manifest())
        return [x['digest'] for x in reversed(manifest['layers'])]

    def diff_ids(self) -> List[str]:
        """The uncompressed layer digests, top (newest) first."""
        cfg = json.loads(self.config_file())
        return list(reversed(cfg.get('rootfs', {}).get('diff_ids', [])))

    def config_blob(self) -> str:
        manifest = json.loads(self.manifest())
        return manifest['config']['digest']

    def descriptor_sizes(self) -> Dict[str, int]:
        """Digest -> size, as the manifest's config and layer descriptors
        give them (what a blob read or skipped must measure)."""
        try:
            manifest = json.loads(self.manifest())
        except ValueError:
            return {}
        if not isinstance(manifest, dict):
            return {}
        sizes: Dict[str, int] = {}
        for desc in [manifest.get('config')] + list(manifest.get('layers') or []):
            if not isinstance(desc, dict):
                continue
            digest, size = desc.get('digest'), desc.get('size')
            if (isinstance(digest, str) and isinstance(size, int)
                    and not isinstance(size, bool)):
                sizes[digest] = size
        return sizes

    def blob_set(self) -> Set[str]:
        """The unique set of blobs that compose this image."""
        return set(self.fs_layers() + [self.config_blob()])

    def distributable_blob_set(self) -> Set[str]:
        """The blobs a registry stores: all but foreign layers."""
        manifest = json.loads(self.manifest())
        skip = set(
            layer['digest'] for layer in manifest['layers']
            if layer.get('mediaType') in media_types.NON_DISTRIBUTABLE_LAYER_MIMES)
        return self.blob_set() - skip

    def digest(self) -> str:
        """The digest of the manifest."""
        return docker_digest.SHA256(self.manifest().encode('utf8'))

    def media_type(self) -> str:
        """The media type of the manifest."""
        manifest = json.loads(self.manifest())
        return manifest.get('mediaType', media_types.OCI_MANIFEST_MIME)

    @abc.abstractmethod
    def manifest(self) -> str:
        """The JSON manifest referenced by the tag/digest, as text."""

    @abc.abstractmethod
    def config_file(self) -> str:
        """The raw blob string of the config file."""

    def blob_size(self, digest: str) -> int:
        """The byte size of the raw blob."""
        return len(self.blob(digest))

    @abc.abstractmethod
    def blob(self, digest: str) -> bytes:
        """The raw blob of the layer."""

    def blob_stream(self, digest: str):
        """A reader over the raw blob; close it when done."""
        return io.BytesIO(self.blob(digest))

    def uncompressed_blob(self, digest: str) -> bytes:
        """Same as blob() but uncompressed (gzip or zstd)."""
        with _inflated(self.blob_stream(digest)) as reader:
            return reader.read()

    def uncompressed_blob_stream(self, digest: str):
        """A reader over the blob's tar; close it when done."""
        return io.BytesIO(self.uncompressed_blob(digest))

    def uncompressed_blob_size(self, digest: str) -> Optional[int]:
        """The size of the blob's tar if known without inflating, else None."""
        del digest
        return None

    def capability(self, kind: type) -> Any:
        """What serves capability KIND (see `capabilities`) for this image,
        or None: the image itself when it declares KIND."""
        return self if isinstance(self, kind) else None

    def _diff_id_to_digest(self, diff_id: str) -> str:
        for this_digest, this_diff_id in zip(self.fs_layers(),
                                             self.diff_ids()):
            if this_diff_id == diff_id:
                return this_digest
        raise ValueError('Unmatched "diff_id": "%s"' % diff_id)

    def digest_to_diff_id(self, digest: str) -> str:
        for this_digest, this_diff_id in zip(self.fs_layers(),
                                             self.diff_ids()):
            if this_digest == digest:
                return this_diff_id
        raise ValueError('Unmatched "digest": "%s"' % digest)

    def layer(self, diff_id: str) -> bytes:
        """Like `blob()`, but accepts the `diff_id` instead."""
        return self.blob(self._diff_id_to_digest(diff_id))

    def uncompressed_layer(self, diff_id: str) -> bytes:
        """Same as layer() but uncompressed."""
        return self.uncompressed_blob(self._diff_id_to_digest(diff_id))

    @abc.abstractmethod
    def __enter__(self) -> 'DockerImage':
        """Open the image for reading."""

    @abc.abstractmethod
    def __exit__(self, unused_type, unused_value, unused_traceback):
        """Close the image."""

    def __str__(self) -> str:
        """A human-readable representation of the image."""
        return str(type(self))


def _inflated(reader):
    """READER's bytes inflated on the fly (gzip or zstd), else as they are."""
    # Imported here: pulls do not inflate, and this costs start-up time.
    from containerregistry.client.v2_2 import compression  # pylint: disable=import-outside-toplevel
    return compression.gunzip_if_compressed(reader)[0]


def _read_all(reader) -> bytes:
    with contextlib.closing(reader):
        return reader.read()


class StreamingImage(DockerImage):
    """The minimal core of an image source; everything else is derived.

    A source implements `manifest()` (and `media_type()` when the manifest
    does not say it), `config_file()`, `blob_stream()`, `__enter__` and
    `__exit__`. `blob_stream()` must check the blob's digest as it is read
    (raising DigestMismatchedError at end of data), so that no reader of
    any source hands on damaged bytes. Bytes, sizes and tars are derived
    from the stream: nothing here holds a blob whole unless a caller asks
    for bytes. A source may override a derived method where it knows the
    answer more cheaply (a size, a tar it holds), and declares anything
    more it can do by implementing the interfaces in `capabilities`.
    `testing/conformance.py` checks a source against this contract.
    """

    @abc.abstractmethod
    def blob_stream(self, digest: str):
        """A reader over blob DIGEST that checks it; close it when done."""

    def blob(self, digest: str) -> bytes:
        return _read_all(self.blob_stream(digest))

    def blob_size(self, digest: str) -> int:
        """The size the manifest gives, else the blob's bytes counted."""
        size = self.descriptor_sizes().get(digest)
        if size is not None:
            return size
        count = 0
        with contextlib.closing(self.blob_stream(digest)) as reader:
            for chunk in iter(lambda: reader.read(_CHUNK), b''):
                count += len(chunk)
        return count

    def uncompressed_blob_stream(self, digest: str):
        """A reader over the blob, inflated on the fly (gzip or zstd)."""
        return _inflated(self.blob_stream(digest))

    def uncompressed_blob(self, digest: str) -> bytes:
        return _read_all(self.uncompressed_blob_stream(digest))


class Delegate(StreamingImage):
    """Forwards calls to the underlying image.

    A view that changes what some blob holds overrides `blob_stream()`
    (and `uncompressed_blob_stream()`, when it changes tars), the core the
    bytes accessors derive from. `passes_on` lists the capabilities of the
    underlying image that still hold for the view: none unless a subclass
    says so (a view that leaves every blob alone passes on
    `capabilities.ALL`), so no fast path reads around a rewritten blob.
    """

    passes_on: Tuple[type, ...] = ()

    def __init__(self, image: DockerImage):
        self._image = image

    def manifest(self) -> str:
        return self._image.manifest()

    def media_type(self) -> str:
        return self._image.media_type()

    def diff_ids(self) -> List[str]:
        return self._image.diff_ids()

    def fs_layers(self) -> List[str]:
        return self._image.fs_layers()

    def config_blob(self) -> str:
        return self._image.config_blob()

    def blob_set(self) -> Set[str]:
        return self._image.blob_set()

    def config_file(self) -> str:
        return self._image.config_file()

    def blob_size(self, digest: str) -> int:
        return self._image.blob_size(digest)

    def blob_stream(self, digest: str):
        return self._image.blob_stream(digest)

    def blob(self, digest: str) -> bytes:
        return _read_all(self.blob_stream(digest))

    def uncompressed_blob_stream(self, digest: str):
        return self._image.uncompressed_blob_stream(digest)

    def uncompressed_blob_size(self, digest: str) -> Optional[int]:
        return self._image.uncompressed_blob_size(digest)

    def uncompressed_blob(self, digest: str) -> bytes:
        return _read_all(self.uncompressed_blob_stream(digest))

    def layer(self, diff_id: str) -> bytes:
        return self.blob(self._diff_id_to_digest(diff_id))

    def uncompressed_layer(self, diff_id: str) -> bytes:
        return self.uncompressed_blob(self._diff_id_to_digest(diff_id))

    def capability(self, kind: type) -> Any:
        own = super().capability(kind)
        if own is None and kind in self.passes_on:
            return self._image.capability(kind)
        return own

    def __str__(self) -> str:
        return str(self._image)
