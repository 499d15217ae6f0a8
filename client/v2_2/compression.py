"""Compression of layers: detection, streaming inflate, upstream's gzip.

Layer digests depend on compressed bytes, so the gzip written here is
byte-for-byte what upstream wrote (see `gzip_stream`): stock zlib at level
9. Faster deflate implementations (zlib-ng, ISA-L) emit other bytes, hence
other digests, so they are not used for writing; gzip is read with zlib-ng
where it can be loaded (see `inflater`), three times faster than zlib.

Layers are read as gzip or zstd (`application/vnd.oci.image.layer.v1.tar+zstd`),
told apart by their magic bytes. zstd is inflated by the first of: the
standard library's `compression.zstd` (Python 3.14+), the `backports.zstd`
package (the same API for older Pythons), or the `zstd` command on PATH.
The last is what a .par uses before 3.14: it bundles pure-Python packages
only, and no maintained pure-Python zstd decoder exists.
"""
import dataclasses
import gzip
import hashlib
import importlib
import io
import shutil
import struct
import subprocess
import tempfile
import threading
import zlib
from typing import Any, BinaryIO, Callable, Iterator, Optional, Tuple, cast

from containerregistry.client.v2_2 import inflater

# Upstream froze gzip's clock at this instant; its layer digests depend on it.
GZIP_MTIME = 1225856967
_CHUNK = 1 << 20
# Pieces of gzip input and output in `_gunzip`: small enough that several
# layers inflating at once stay well inside the tools' memory bound.
_PIECE = 256 << 10

GZIP_MAGIC = b'\x1f\x8b'
ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'
GZIP = 'gzip'
ZSTD = 'zstd'


def is_compressed(data: bytes) -> bool:
    """True iff DATA starts with the gzip magic number."""
    return data[0:2] == b'\x1f\x8b'


def gzip_header(compresslevel: int = 9) -> bytes:
    """The 10-byte gzip header upstream's layers carry.

    No file name, mtime `GZIP_MTIME`, OS byte 255, and the XFL byte Python's
    gzip writes for the level (2 for 9, 4 for 1, else 0).
    """
    xfl = 2 if compresslevel == 9 else 4 if compresslevel == 1 else 0
    return (b'\x1f\x8b\x08\x00' + struct.pack('<I', GZIP_MTIME)
            + bytes([xfl, 255]))


def codec_of(head: bytes) -> Optional[str]:
    """`GZIP` or `ZSTD` if HEAD starts with that format's magic, else None."""
    if head[:2] == GZIP_MAGIC:
        return GZIP
    if head[:4] == ZSTD_MAGIC:
        return ZSTD
    return None


class GzipWriter:
    """Gzips what is written to it into OUT exactly as upstream did.

    Raw deflate at COMPRESSLEVEL (wbits -15, memLevel 8, default strategy)
    after `gzip_header`, then CRC32 and ISIZE. The output does not depend
    on how the input is split into writes.
    """

    def __init__(self, out: BinaryIO, compresslevel: int = 9):
        self._out = out
        self._digest = hashlib.sha256()
        self._size = 0
        self._crc = 0
        self._length = 0
        self._deflate = zlib.compressobj(compresslevel, zlib.DEFLATED,
                                         -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
        self._emit(gzip_header(compresslevel))

    def _emit(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self._digest.update(data)
            self._size += len(data)

    def write(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._length += len(data)
        self._emit(self._deflate.compress(data))

    def finish(self) -> Tuple[str, int]:
        """Ends the gzip stream; returns its (digest, size)."""
        self._emit(self._deflate.flush())
        self._emit(struct.pack('<II', self._crc & 0xffffffff,
                               self._length & 0xffffffff))
        return 'sha256:' + self._digest.hexdigest(), self._size


def gzip_stream(reader: BinaryIO, out: BinaryIO, compresslevel: int = 9,
                input_hash: Optional[Any] = None) -> Tuple[str, int]:
    """Gzips READER into OUT as `GzipWriter` does; returns (digest, size).

    INPUT_HASH (a hashlib object), if given, is updated with the
    uncompressed bytes, which yields a layer's diff_id in the same pass.
    """
    writer = GzipWriter(out, compresslevel)
    while True:
        chunk = reader.read(_CHUNK)
        if not chunk:
            return writer.finish()
        if input_hash is not None:
            input_hash.update(chunk)
        writer.write(chunk)


class Prefixed(io.RawIOBase):
    """Yields PREFIX, then the rest of READER (to peek at magic bytes)."""

    def __init__(self, prefix: bytes, reader):
        super().__init__()
        self._prefix = prefix
        self._reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        readinto = getattr(self._reader, 'readinto', None)
        if readinto is not None:
            return readinto(buffer)
        data = self._reader.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._reader.close()
        super().close()


class CompressionError(ValueError):
    """Compressed layer data that cannot be inflated."""


class ZstdUnavailableError(CompressionError):
    """A zstd layer, and nothing here that can inflate zstd."""


def _zstd_needs() -> str:
    """What reading zstd takes, for error messages.

    A .par (loaded by zipimport) sees the standard library and its own
    files only, so an installed backports.zstd would not help it.
    """
    import zipimport  # pylint: disable=import-outside-toplevel
    if isinstance(globals().get('__loader__'), zipimport.zipimporter):
        return 'Python 3.14 or later, or the zstd command on PATH'
    return ('Python 3.14 or later, the backports.zstd package, or the zstd '
            'command on PATH')


ZSTD_NEEDS = _zstd_needs()


def _read_head(reader, n: int) -> bytes:
    head = b''
    while len(head) < n:
        more = reader.read(n - len(head))
        if not more:
            break
        head += more
    return head


def decompress_stream(reader) -> Tuple[Any, Optional[str]]:
    """READER, inflated on the fly if it is gzip or zstd.

    Returns (reader, codec): codec is `GZIP`, `ZSTD` or None (READER's
    bytes as they are). Closing the result closes READER. A zstd stream
    with no way to inflate it raises ZstdUnavailableError here; bad zstd
    data raises CompressionError when read (bad gzip data raises what
    `gzip.GzipFile` would: see `_gunzip`).
    """
    head = _read_head(reader, len(ZSTD_MAGIC))
    codec = codec_of(head)
    if codec == GZIP:
        return (io.BufferedReader(_GunzipReader(Prefixed(head, reader)), _PIECE),
                codec)
    stream = io.BufferedReader(Prefixed(head, reader), _CHUNK)
    if codec == ZSTD:
        try:
            return _open_zstd(stream), codec
        except BaseException:
            stream.close()
            raise
    return stream, None


def gunzip_if_compressed(reader) -> Tuple[Any, bool]:
    """READER, inflated on the fly if it starts with the gzip or zstd magic.

    Returns (reader, was_compressed); closing the result closes READER.
    See `decompress_stream`, which also names the codec.
    """
    stream, codec = decompress_stream(reader)
    return stream, codec is not None


@dataclasses.dataclass(frozen=True)
class LayerDigests:
    """What one pass over a layer blob tells."""
    digest: str  # sha256 of the blob as stored
    size: int  # bytes of the blob as stored
    diff_id: str  # sha256 of the tar inside
    codec: Optional[str]  # GZIP, ZSTD or None (the blob is the tar)


class HashingReader:
    """Passes reads through, hashing (sha256) and counting them."""

    def __init__(self, reader):
        self._reader = reader
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, amt: int = -1) -> bytes:
        data = self._reader.read(amt)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Reads (and hashes) the rest."""
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return 'sha256:' + self.hash.hexdigest()

    def close(self) -> None:
        self._reader.close()


def digest_layer(reader, tar_out: Optional[BinaryIO] = None) -> LayerDigests:
    """Reads a layer blob to its end, hashing it and the tar it holds.

    Inflating checks the compressed data (gzip CRC and length, zstd frame
    checks); bad data raises as `decompress_stream` says. TAR_OUT, if
    given, receives the tar as it is hashed, so a caller that wants the tar
    too inflates once. Closes READER.
    """
    head = _read_head(reader, len(ZSTD_MAGIC))
    if codec_of(head) == GZIP:
        return _digest_gzip(head, reader, tar_out)
    raw = HashingReader(Prefixed(head, reader))
    inner, codec = decompress_stream(raw)
    tar_hash = hashlib.sha256()
    with inner:
        while True:
            chunk = inner.read(_CHUNK)
            if not chunk:
                break
            tar_hash.update(chunk)
            if tar_out is not None:
                tar_out.write(chunk)
        raw.drain()
    digest = raw.digest
    diff_id = 'sha256:' + tar_hash.hexdigest() if codec else digest
    return LayerDigests(digest, raw.size, diff_id, codec)


# zlib's words for what gzip.GzipFile reports (and callers match on).
_GZIP_ERRORS = (('incorrect data check', 'CRC check failed'),
                ('incorrect length check', 'Incorrect length of data produced'),
                ('incorrect header check', 'Not a gzipped file'))


def _gunzip(read: Callable[[], Any]) -> Iterator[bytes]:
    """The data of the gzip stream READ() returns piece by piece (empty at its end).

    Yields pieces of at most _PIECE bytes. zlib checks each member's CRC and
    length itself; members follow each other, with zero padding between
    them skipped; errors are gzip.GzipFile's (BadGzipFile, EOFError on a
    cut stream, zlib.error for broken deflate data) whichever inflater
    runs. One loop over zlib keeps threads that inflate several layers at
    once outside the GIL, where GzipFile (Python code per chunk, a CRC pass
    of its own) kept them waiting on each other.
    """
    backend = inflater.module()
    decompressor = backend.decompressobj(31)
    started = False  # the current member has begun
    try:
        data = read()
        while data:
            while data:
                if not started:
                    data = bytes(data).lstrip(b'\0')
                    if not data:
                        break
                    started = True
                out = decompressor.decompress(data, _PIECE)
                if out:
                    yield out
                data = decompressor.unconsumed_tail
                if decompressor.eof:
                    data, started = decompressor.unused_data, False
                    decompressor = backend.decompressobj(31)
            data = read()
    except (zlib.error, backend.error) as e:
        for needle, message in _GZIP_ERRORS:
            if needle in str(e):
                raise gzip.BadGzipFile(message) from e
        if isinstance(e, zlib.error):
            raise
        raise zlib.error(str(e)) from e  # zlib-ng's error, as zlib's
    if started:
        raise EOFError('Compressed file ended before the end-of-stream marker '
                       'was reached')


def _pieces(reader) -> Callable[[], Any]:
    """A function returning READER's next piece (empty at its end).

    Pieces are read into one reused buffer when READER can: a fresh 1 MiB
    bytes object per read costs page faults (importer: +1.4 s of system
    time with 1 MiB pieces). A piece is valid until the next call.
    """
    readinto = getattr(reader, 'readinto', None)
    if readinto is None:
        return lambda: reader.read(_PIECE)
    view = memoryview(bytearray(_PIECE))
    return lambda: view[:readinto(view)]


class _GunzipReader(io.RawIOBase):
    """The inflated data of the gzip reader RAW (see `_gunzip`); closes RAW."""

    def __init__(self, raw):
        super().__init__()
        self._raw = raw
        self._pieces = _gunzip(_pieces(raw))
        self._piece = memoryview(b'')

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._piece:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._piece = memoryview(piece)
        n = min(len(buffer), len(self._piece))
        buffer[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._pieces.close()
            self._raw.close()
        super().close()


def _digest_gzip(head: bytes, reader,
                 tar_out: Optional[BinaryIO] = None) -> LayerDigests:
    """digest_layer of a gzip blob whose first bytes, HEAD, were read already.

    The blob is hashed piece by piece as it is read, its data as zlib yields
    them: nothing is copied.
    """
    blob_hash = hashlib.sha256()
    tar_hash = hashlib.sha256()
    size = 0
    next_piece = _pieces(reader)
    pending: Any = head

    def read() -> Any:
        nonlocal pending, size
        data, pending = (pending, None) if pending is not None else (next_piece(), None)
        blob_hash.update(data)
        size += len(data)
        return data

    try:
        for piece in _gunzip(read):
            tar_hash.update(piece)
            if tar_out is not None:
                tar_out.write(piece)
    finally:
        reader.close()
    return LayerDigests('sha256:' + blob_hash.hexdigest(), size,
                        'sha256:' + tar_hash.hexdigest(), GZIP)


# zstd.

ZSTD_COMMAND = 'zstd'
_ZSTD_MODULES = ('compression.zstd', 'backports.zstd')


def _zstd_module() -> Optional[Any]:
    """The first zstd module of `_ZSTD_MODULES` that imports, if any."""
    for name in _ZSTD_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, 'ZstdFile'):
            return module
    return None


def zstd_support() -> Optional[str]:
    """What would inflate zstd here: a module name, a command path or None."""
    module = _zstd_module()
    if module is not None:
        return module.__name__
    return shutil.which(ZSTD_COMMAND)


def _open_zstd(stream):
    module = _zstd_module()
    if module is not None:
        return io.BufferedReader(_ModuleZstd(stream, module), _CHUNK)
    command = shutil.which(ZSTD_COMMAND)
    if command is not None:
        return io.BufferedReader(_CommandZstd(stream, command), _CHUNK)
    raise ZstdUnavailableError('the layer is zstd-compressed; reading it needs ' + ZSTD_NEEDS)


class _ModuleZstd(io.RawIOBase):
    """Inflates zstd with a `compression.zstd`-like module."""

    def __init__(self, raw, module):
        super().__init__()
        self._raw = raw
        self._errors = (module.ZstdError, EOFError)
        self._file = module.ZstdFile(raw, mode='rb')

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self._file.readinto(buffer)
        except self._errors as e:
            raise CompressionError('bad zstd data: %s' % e) from e

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.close()
        finally:
            self._raw.close()
            super().close()


class _CommandZstd(io.RawIOBase):
    """Inflates zstd through the `zstd` command, streaming both ways.

    A thread feeds the compressed stream to the command's stdin; an error
    raised by that stream (a digest check, say) is raised to the reader at
    the end of the data, ahead of the command's own complaint.
    """

    def __init__(self, raw, command: str):
        super().__init__()
        self._raw = raw
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [command, '-d', '-c', '-q'], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr)
        # Both are pipes (PIPE above); stdout is a buffered reader.
        self._stdin = cast(BinaryIO, self._proc.stdin)
        self._stdout = cast(io.BufferedReader, self._proc.stdout)
        self._error: Optional[BaseException] = None
        self._finished = False
        self._feeder = threading.Thread(target=self._feed, daemon=True,
                                        name='zstd-feed')
        self._feeder.start()

    def _feed(self) -> None:
        try:
            while True:
                chunk = self._raw.read(_CHUNK)
                if not chunk:
                    break
                self._stdin.write(chunk)
        except BrokenPipeError:
            pass  # zstd stopped reading; its exit status says why
        except BaseException as e:  # pylint: disable=broad-except
            self._error = e
        finally:
            try:
                self._stdin.close()
            except OSError:
                pass

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._finished:
            return 0
        n = self._stdout.readinto1(buffer)
        if n:
            return n
        self._finished = True
        self._feeder.join()
        status = self._proc.wait()
        if self._error is not None:
            raise self._error
        if status != 0:
            self._stderr.seek(0)
            message = self._stderr.read().decode('utf-8', 'replace')
            message = ' '.join(message.split()) or 'exit status %d' % status
            raise CompressionError('bad zstd data: %s' % message)
        return 0

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._proc.poll() is None:
                self._proc.kill()
            self._stdout.close()
            self._feeder.join()
            self._proc.wait()
            self._stderr.close()
        finally:
            self._raw.close()
            super().close()
