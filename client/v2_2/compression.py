"""Compression of layers: detection, streaming inflate, upstream's gzip.

Layer digests depend on compressed bytes, so the gzip written here is
byte-for-byte what upstream wrote (see `gzip_stream`).
"""
import gzip
import hashlib
import io
import struct
import zlib
from typing import Any, BinaryIO, Tuple

# Upstream froze gzip's clock at this instant; its layer digests depend on it.
GZIP_MTIME = 1225856967
_CHUNK = 1 << 20


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


def gzip_stream(reader: BinaryIO, out: BinaryIO,
                compresslevel: int = 9) -> Tuple[str, int]:
    """Gzips READER into OUT exactly as upstream did; returns (digest, size).

    Raw deflate at COMPRESSLEVEL (wbits -15, memLevel 8, default strategy)
    after `gzip_header`, then CRC32 and ISIZE. The output does not depend
    on how the input is chunked.
    """
    digest = hashlib.sha256()
    size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        if data:
            out.write(data)
            digest.update(data)
            size += len(data)

    deflate = zlib.compressobj(compresslevel, zlib.DEFLATED, -zlib.MAX_WBITS,
                               zlib.DEF_MEM_LEVEL, 0)
    crc = 0
    length = 0
    emit(gzip_header(compresslevel))
    while True:
        chunk = reader.read(_CHUNK)
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        length += len(chunk)
        emit(deflate.compress(chunk))
    emit(deflate.flush())
    emit(struct.pack('<II', crc & 0xffffffff, length & 0xffffffff))
    return 'sha256:' + digest.hexdigest(), size


class _Prefixed(io.RawIOBase):
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
        data = self._reader.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._reader.close()
        super().close()


def gunzip_if_compressed(reader) -> Tuple[Any, bool]:
    """READER, inflated on the fly if it starts with the gzip magic.

    Returns (reader, was_gzipped); closing the result closes READER.
    """
    head = b''
    while len(head) < 2:
        more = reader.read(2 - len(head))
        if not more:
            break
        head += more
    stream = io.BufferedReader(_Prefixed(head, reader), _CHUNK)
    if is_compressed(head):
        return _ClosingGzip(stream), True
    return stream, False


class _ClosingGzip(gzip.GzipFile):
    """A GzipFile that also closes the reader it inflates."""

    def __init__(self, raw):
        super().__init__(fileobj=raw, mode='rb')
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()
