"""Appending one layer (and config changes) to an existing image.

`Layer(base, tar_gz)` is the base image plus a gzipped tarball on top, with
a config derived through `metadata.Override` exactly as upstream derived it.
The layer may be given as bytes (upstream's interface) or as the path of a
file, which is then streamed and never held in memory. Base blobs are read
only if a caller asks for them: a push that mounts or skips them never
touches the base.

Fixes over upstream: the config descriptor's `size` follows the new config
(upstream kept the base's), and an image without a layer (`tar_gz=None`,
a history-only entry) serves its blobs instead of crashing. A tarball that
is not gzipped (plain, or zstd-compressed) is gzipped first (upstream's
deterministic settings); upstream gzipped a zstd stream as if it were a tar.
Whenever the tar is read anyway (to compute the diff_id, or to gzip it), it
goes through `tarfile` in the same pass and must be a complete archive:
upstream published any bytes as a layer.
"""
import hashlib
import io
import json
import os
import tarfile
import tempfile
import weakref
import zlib
from typing import BinaryIO, Callable, Optional, Union, cast

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.transform.v2_2 import metadata

_EMPTY_LAYER_HEX = hashlib.sha256(b'').hexdigest()

TarGz = Union[bytes, bytearray, memoryview, str, 'os.PathLike[str]', None]


class LayerError(ValueError):
    """The layer to append cannot be read as a (gzipped) tarball."""


# tarfile's read size in stream mode (its default is 10 KiB).
_TAR_BUFFER = 1 << 20


class _Watched:
    """READER's reads, also handed to SINK, keeping what READER raised.

    tarfile turns some errors of the stream under it (zlib's) into its
    own; knowing the original keeps a damaged gzip from reading as a bad
    tar.
    """

    def __init__(self, reader, sink: Optional[Callable[[bytes], None]]):
        self._reader = reader
        self._sink = sink
        self.error: Optional[BaseException] = None

    def read(self, amt: int = -1) -> bytes:
        try:
            data = self._reader.read(amt)
        except Exception as e:
            self.error = e
            raise
        if data and self._sink is not None:
            self._sink(data)
        return data


def _header_class():
    """A TarInfo class that keeps the block at which the headers stopped.

    tarfile ends iteration quietly at a zero block, at the end of the data
    and at a damaged header alike; only the first is a complete archive.
    """

    class _Header(tarfile.TarInfo):
        stop: Optional[bytes] = None

        @classmethod
        def frombuf(cls, buf, encoding, errors):
            try:
                return super().frombuf(buf, encoding, errors)
            except tarfile.HeaderError:
                _Header.stop = bytes(buf)
                raise

    return _Header


def _read_tar(reader, what: str,
              sink: Optional[Callable[[bytes], None]] = None) -> None:
    """Reads READER to its end, through tarfile up to the end of the archive.

    Raises LayerError unless READER holds a complete tar archive; errors
    READER raises propagate as they are. Stream mode reads every member's
    data rather than seeking, so hashing readers under READER, and SINK,
    see every byte once, in order.
    """
    watched = _Watched(reader, sink)
    header = _header_class()
    opened = False
    try:
        # Stream mode only ever calls read().
        with tarfile.open(fileobj=cast(BinaryIO, watched), mode='r|', tarinfo=header,
                          bufsize=_TAR_BUFFER) as tar:
            opened = True
            while tar.next() is not None:
                # Stream mode never looks back: keep no member list.
                del tar.members[:]  # type: ignore[attr-defined]
            end = tar.offset
    except tarfile.TarError as e:
        if watched.error is not None:
            raise watched.error from None
        raise LayerError('%s is not a %star archive: %s' % (
            what, 'complete ' if opened else '', e)) from e
    if header.stop != bytes(tarfile.BLOCKSIZE):
        if header.stop and len(header.stop) == tarfile.BLOCKSIZE:
            reason = 'a damaged header at byte %d' % end
        else:
            reason = 'its data ends at byte %d, before the end-of-archive ' \
                     'block' % end
        raise LayerError('%s is not a complete tar archive: %s'
                         % (what, reason))
    while watched.read(_TAR_BUFFER):
        pass


def _describe(reader: BinaryIO, with_diff_id: bool, what: str):
    """(blob digest, blob size, diff_id or None) of gzipped READER.

    Computing the diff_id inflates the layer, so the tar is checked too.
    """
    if not with_diff_id:
        hashing = compression.HashingReader(reader)
        hashing.drain()
        return hashing.digest, hashing.size, None
    raw = compression.HashingReader(reader)
    try:
        inner, unused_codec = compression.decompress_stream(raw)
        with inner:
            tar = compression.HashingReader(inner)
            _read_tar(tar, what)
            raw.drain()
    except (OSError, EOFError, zlib.error) as e:
        raise LayerError('%s is not a valid gzip file: %s' % (what, e)) from e
    return raw.digest, raw.size, tar.digest


def _head(reader: BinaryIO) -> bytes:
    head = b''
    while len(head) < len(compression.ZSTD_MAGIC):
        more = reader.read(len(compression.ZSTD_MAGIC) - len(head))
        if not more:
            break
        head += more
    return head


def _zstd_error(what: str, err: compression.CompressionError) -> LayerError:
    if isinstance(err, compression.ZstdUnavailableError):
        return LayerError('cannot read %s: %s' % (what, err))
    return LayerError('%s is not a valid zstd file: %s' % (what, err))


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Layer(docker_image.StreamingImage):
    """BASE with one more layer on top (or only a new history entry).

    Args:
      base: the DockerImage to extend (entered by the caller).
      tar_gz: the layer: gzipped tarball bytes, the path of a tarball file
        (gzipped or not), or None/empty for a history-only entry.
      diff_id: 'sha256:<hex>' of the uncompressed tarball, if known;
        otherwise it is computed (a single streaming pass).
      overrides: metadata.Overrides for the new config. As upstream,
        `created_by` is always this client's user agent and `layers` is the
        new layer.
    """

    def __init__(self, base: docker_image.DockerImage, tar_gz: TarGz,
                 diff_id: Optional[str] = None,
                 overrides: Optional[metadata.Overrides] = None):
        self._base = base
        self._blob_bytes: Optional[bytes] = None
        self._blob_path: Optional[str] = None
        self._blob_sum: Optional[str] = None
        self._blob_size = 0
        self._cleanup: Optional[weakref.finalize] = None

        manifest = json.loads(self._base.manifest())
        config = json.loads(self._base.config_file())

        overrides = overrides or metadata.Overrides()
        overrides = overrides.Override(created_by=docker_name.USER_AGENT)

        if tar_gz:
            diff_id = self._load(tar_gz, diff_id)
            if manifest.get('mediaType') == media_types.OCI_MANIFEST_MIME:
                media_type = media_types.OCI_GZIP_LAYER_MIME
            else:
                media_type = media_types.LAYER_MIME
            manifest['layers'].append({
                'digest': self._blob_sum,
                'mediaType': media_type,
                'size': self._blob_size,
            })
            overrides = overrides.Override(
                layers=[diff_id[len('sha256:'):]])
        else:
            # No filesystem change: a history entry marked empty_layer.
            overrides = overrides.Override(layers=[_EMPTY_LAYER_HEX])

        self._config_file = json.dumps(metadata.Override(config, overrides),
                                       sort_keys=True)
        config_bytes = self._config_file.encode('utf8')
        self._config_digest = docker_digest.SHA256(config_bytes)
        manifest['config']['digest'] = self._config_digest
        manifest['config']['size'] = len(config_bytes)
        self._manifest = json.dumps(manifest, sort_keys=True)

    def _load(self, tar_gz: TarGz, diff_id: Optional[str]) -> str:
        """Describes the layer (gzipping it if needed); returns its diff_id."""
        if diff_id and not diff_id.startswith('sha256:'):
            diff_id = 'sha256:' + diff_id
        if isinstance(tar_gz, (bytes, bytearray, memoryview)):
            data = bytes(tar_gz)
            if compression.codec_of(data) == compression.ZSTD:
                try:
                    with compression.decompress_stream(io.BytesIO(data))[0] as tar:
                        data = tar.read()
                except compression.CompressionError as e:
                    raise _zstd_error('the layer', e) from e
            if not compression.is_compressed(data):
                if not diff_id:
                    _read_tar(io.BytesIO(data), 'the layer')
                    diff_id = docker_digest.SHA256(data)
                out = io.BytesIO()
                compression.gzip_stream(io.BytesIO(data), out)
                data = out.getvalue()
            self._blob_bytes = data
            self._blob_sum, self._blob_size, computed = _describe(
                io.BytesIO(data), not diff_id, 'the layer')
            return diff_id or computed

        assert tar_gz is not None  # _load is called only with a layer
        path = os.fspath(tar_gz)
        try:
            with open(path, 'rb') as f:
                codec = compression.codec_of(_head(f))
                f.seek(0)
                if codec == compression.GZIP:
                    self._blob_path = path
                    self._blob_sum, self._blob_size, computed = _describe(
                        f, not diff_id, path)
                    return diff_id or computed
                if codec == compression.ZSTD:
                    with compression.decompress_stream(f)[0] as tar:
                        return self._gzip_to_temp(tar, diff_id, path)
                return self._gzip_to_temp(f, diff_id, path)
        except compression.CompressionError as e:
            raise _zstd_error(path, e) from e
        except OSError as e:
            raise LayerError('cannot read layer %s: %s'
                             % (path, e.strerror or e)) from e

    def _gzip_to_temp(self, reader: BinaryIO, diff_id: Optional[str],
                      what: str) -> str:
        """Gzips the plain tar READER (checked on the way) into a temp file,
        removed on exit."""
        fd, temp = tempfile.mkstemp(prefix='cr-append-', suffix='.tar.gz')
        self._cleanup = weakref.finalize(self, _remove, temp)
        hashing = compression.HashingReader(reader)
        with os.fdopen(fd, 'wb') as out:
            gzipped = compression.GzipWriter(out)
            _read_tar(hashing, what, sink=gzipped.write)
            self._blob_sum, self._blob_size = gzipped.finish()
        self._blob_path = temp
        return diff_id or hashing.digest

    def _own(self, digest: str) -> bool:
        return self._blob_sum is not None and digest == self._blob_sum

    def manifest(self) -> str:
        return self._manifest

    def config_file(self) -> str:
        return self._config_file

    def config_blob(self) -> str:
        return self._config_digest

    def blob_size(self, digest: str) -> int:
        if self._own(digest):
            return self._blob_size
        if digest == self._config_digest:
            return len(self._config_file.encode('utf8'))
        return self._base.blob_size(digest)

    def blob(self, digest: str) -> bytes:
        if self._own(digest) or digest == self._config_digest:
            with self.blob_stream(digest) as f:
                return f.read()
        return self._base.blob(digest)

    def blob_stream(self, digest: str):
        if self._own(digest):
            if self._blob_bytes is not None:
                return io.BytesIO(self._blob_bytes)
            assert self._blob_path is not None  # set with _blob_sum
            return open(self._blob_path, 'rb')  # pylint: disable=consider-using-with
        if digest == self._config_digest:
            return io.BytesIO(self._config_file.encode('utf8'))
        return self._base.blob_stream(digest)

    def uncompressed_blob(self, digest: str) -> bytes:
        if self._own(digest):
            with self.uncompressed_blob_stream(digest) as f:
                return f.read()
        return self._base.uncompressed_blob(digest)

    def uncompressed_blob_stream(self, digest: str):
        if self._own(digest):
            return super().uncompressed_blob_stream(digest)
        return self._base.uncompressed_blob_stream(digest)

    def __enter__(self) -> 'Layer':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        """Removes the gzipped copy of a plain tarball, if one was made."""
        if self._cleanup is not None:
            self._cleanup()

    def __str__(self) -> str:
        return '<append.Layer %s on %s>' % (self._blob_sum or 'empty',
                                           self._base)
