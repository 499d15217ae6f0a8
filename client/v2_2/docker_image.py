"""The one interface every v2.2 image is read through, whatever its source.

Sources: `FromRegistry` (a registry), `FromTarball` (a docker-save tarball),
`FromDisk` (the puller's fast layout). Sinks (`save`, `docker_session`) take
any `DockerImage`. Besides upstream's whole-blob accessors, `blob_stream()`
lets sinks copy a blob without holding it; sources that can stream override
it, the rest fall back to `blob()`.
"""
import abc
import io
import json
from typing import Any, Dict, List, NamedTuple, Optional, Set

from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import media_types

# The sources are loaded on first use (see __getattr__), so they are named
# here for `from ... import *`.
__all__ = [  # noqa: F822 (FromDisk, FromRegistry, FromTarball, extract: __getattr__)
           'DigestMismatchedError', 'DockerImage', 'Delegate', 'FileRange',
           'FromDisk', 'FromRegistry', 'FromTarball', 'extract',
           'is_compressed']

DigestMismatchedError = docker_digest.DigestMismatchedError


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


class FileRange(NamedTuple):
    """SIZE bytes at OFFSET of the local file PATH.

    DIFF_ID, when the image knows it, is the sha256 of the tar those bytes
    inflate to, as the image measured it while hashing them. PRIVATE means
    PATH is the image's own temporary file, which sinks may hard-link
    rather than copy (a user's file is never linked into an output).
    """
    path: str
    offset: int
    size: int
    diff_id: Optional[str] = None
    private: bool = False

    def open(self) -> io.BufferedReader:
        """A reader over just these bytes (EOFError if the file is shorter).

        Its buffer is small: large reads go straight into the caller's buffer.
        """
        return io.BufferedReader(_RangeReader(self))


class _RangeReader(io.RawIOBase):
    """Reads a FileRange through a handle of its own."""

    def __init__(self, where: FileRange):
        super().__init__()
        self._where = where
        self._file = open(where.path, 'rb')  # pylint: disable=consider-using-with
        self._file.seek(where.offset)
        self._left = where.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[:min(len(buffer), self._left)]
        n = self._file.readinto(view)
        if not n:
            raise EOFError('%s ends %d bytes before the %d bytes at %d'
                           % (self._where.path, self._left, self._where.size,
                              self._where.offset))
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


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
    """Interface for implementations that interact with Docker images."""

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
        """A reader over the raw blob; close it when done.

        Sources that can stream override this; readers from sources that
        fetch over the network raise DigestMismatchedError at end of data
        when the bytes do not hash to DIGEST.
        """
        return io.BytesIO(self.blob(digest))

    def blob_range(self, digest: str) -> Optional[FileRange]:
        """Where blob DIGEST lies in a local file, already checked against it.

        Sinks copy such a range inside the kernel rather than read and hash
        it once more. None (the default) means: read blob_stream().
        """
        del digest
        return None

    def uncompressed_range(self, digest: str) -> Optional[FileRange]:
        """Where the tar of blob DIGEST lies in a local file, already hashed.

        The range's diff_id is what those bytes hashed to; sinks that write
        tars compare it with the config's and then copy (or link) the range
        instead of inflating the blob. None (the default) means: inflate
        blob_stream().
        """
        del digest
        return None

    def stand_in(self, digest: str, compressed: bool):
        """What the image holds in place of foreign layer DIGEST, if it lacks it.

        A reader (to close) over the placeholder, as a gzip blob when
        COMPRESSED, else as a tar: what the fast layout writes for such a
        layer, as upstream wrote it. None (the default) for every blob the
        image holds.
        """
        del digest, compressed
        return None

    def uncompressed_blob(self, digest: str) -> bytes:
        """Same as blob() but uncompressed (gzip or zstd)."""
        with self.uncompressed_blob_stream(digest) as reader:
            return reader.read()

    def uncompressed_blob_stream(self, digest: str):
        """A reader over the blob, inflated on the fly (gzip or zstd)."""
        # Imported here: pulls do not inflate, and this costs start-up time.
        from containerregistry.client.v2_2 import compression
        return compression.gunzip_if_compressed(self.blob_stream(digest))[0]

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


class Delegate(DockerImage):
    """Forwards calls to the underlying image."""

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

    def blob(self, digest: str) -> bytes:
        return self._image.blob(digest)

    def blob_stream(self, digest: str):
        # A subclass that rewrites blob() must be read through it.
        if type(self).blob is not Delegate.blob:
            return io.BytesIO(self.blob(digest))
        return self._image.blob_stream(digest)

    def blob_range(self, digest: str) -> Optional[FileRange]:
        if (type(self).blob is not Delegate.blob
                or type(self).blob_stream is not Delegate.blob_stream):
            return None
        return self._image.blob_range(digest)

    def uncompressed_range(self, digest: str) -> Optional[FileRange]:
        if (type(self).blob is not Delegate.blob
                or type(self).uncompressed_blob is not Delegate.uncompressed_blob
                or type(self).uncompressed_blob_stream
                is not Delegate.uncompressed_blob_stream):
            return None
        return self._image.uncompressed_range(digest)

    def uncompressed_blob(self, digest: str) -> bytes:
        return self._image.uncompressed_blob(digest)

    def uncompressed_blob_stream(self, digest: str):
        if (type(self).blob is not Delegate.blob
                or type(self).uncompressed_blob is not Delegate.uncompressed_blob):
            return io.BytesIO(self.uncompressed_blob(digest))
        return self._image.uncompressed_blob_stream(digest)

    def layer(self, diff_id: str) -> bytes:
        return self._image.layer(diff_id)

    def uncompressed_layer(self, diff_id: str) -> bytes:
        return self._image.uncompressed_layer(diff_id)

    def __str__(self) -> str:
        return str(self._image)

