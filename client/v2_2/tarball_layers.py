"""Layer compression and its scheduling, for `FromTarball`.

Every layer member is read once, several at a time on a thread pool (zlib
and hashlib release the GIL, so this uses every core): a layer stored
uncompressed (or zstd-compressed) is gzipped, streaming, into a temporary
file with upstream's fixed gzip settings (see `compression.gzip_stream`),
so digests match upstream's; a gzipped member passes through unchanged,
and is inflated only to check it. Either way the tar inside is hashed (its
diff_id). With `keep_tars`, a gzipped member's tar is also written out in
that pass, for sinks that write tars to link or copy rather than inflate
the layer again.
"""
import dataclasses
import functools
import gzip
import hashlib
import os
import threading
import time
import zlib
from typing import Callable, Dict, List, Optional

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import parallel
from containerregistry.client.v2_2 import tarball_index

# Sampling that orders layers by their cost to gzip (LayerCompressor._cost).
_PROBE = 64 << 10
_PROBES = 3
_PROBE_MIN = 4 * _PROBES * _PROBE
_DEFLATE_COST = 5e-8  # s/byte: level 9 at 20 MB/s
_INFLATE_COST = 3e-9  # s/byte


class _Cancelled(parallel.Cancelled):
    """Another layer failed, so this one stopped early."""


@dataclasses.dataclass
class LayerBlob:
    """A layer's blob as made from its member, and what was measured."""
    digest: str
    size: int
    path: Optional[str]  # the gzip we wrote; None when the member is gzip
    diff_id: str  # sha256 of the tar inside
    # identity() of the hashed file, taken before the hash ended
    source: Optional[tuple]
    tar: Optional[capabilities.FileRange] = None  # the tar in a local file
    tar_source: Optional[tuple] = None  # identity() of tar.path, as for source


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def identity(path: str) -> Optional[tuple]:
    """What changes when PATH is replaced or written to; None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Checked:
    """A reader that gives up once EVENT is set (another layer failed)."""

    def __init__(self, reader, event: threading.Event):
        self._reader = reader
        self._event = event

    def read(self, amt: int = -1) -> bytes:
        if self._event.is_set():
            raise _Cancelled()
        return self._reader.read(amt)

    def readinto(self, buffer) -> int:
        if self._event.is_set():
            raise _Cancelled()
        return self._reader.readinto(buffer)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> '_Checked':
        return self

    def __exit__(self, *unused) -> None:
        self.close()


class LayerCompressor:
    """The blob of each layer member of a tarball, made and hashed once.

    ARCHIVE gives the tarball's index (it is recreated after the image is
    exited); temporary files go into WORKDIR. THREADS bounds how many
    layers are compressed at once; None means one per CPU.
    """

    def __init__(self, tarball: str,
                 archive: Callable[[], tarball_index.Archive],
                 workdir: tarball_index.Workdir, compresslevel: int,
                 threads: Optional[int], keep_tars: bool):
        self._tarball = tarball
        self._archive = archive
        self._workdir = workdir
        self._compresslevel = compresslevel
        self._threads = threads
        self._keep_tars = keep_tars
        self._lock = threading.Lock()
        self._compressed: Dict[str, LayerBlob] = {}
        self._member_locks: Dict[str, threading.Lock] = {}

    def known(self, member: str) -> Optional[LayerBlob]:
        """MEMBER's blob if it was made already, else None."""
        with self._lock:
            return self._compressed.get(member)

    def _member_lock(self, member: str) -> threading.Lock:
        with self._lock:
            return self._member_locks.setdefault(member, threading.Lock())

    def compress(self, member: str,
                 cancel: Optional[threading.Event] = None) -> LayerBlob:
        """The blob of MEMBER: the member itself if gzipped, else our gzip.

        Either way the tar inside is hashed (its diff_id) in the same pass.
        CANCEL, once set, makes the work stop early with _Cancelled.
        """
        with self._member_lock(member):
            known = self._compressed.get(member)
            if known and (known.path is None or os.path.exists(known.path)):
                return known
            archive = self._archive()
            entry = archive.lookup(member)

            def open_member():
                reader = archive.open(entry)
                return _Checked(reader, cancel) if cancel else reader

            with archive.open(entry) as f:
                codec = compression.codec_of(f.read(len(compression.ZSTD_MAGIC)))
            try:
                if codec == compression.GZIP:
                    blob = self._check_gzip_member(archive, open_member)
                else:
                    blob = self._gzip_member(archive, entry, open_member, codec)
            except (compression.CompressionError, gzip.BadGzipFile, EOFError,
                    zlib.error) as e:
                raise tarball_index.TarballError(
                    '%s: layer %r is not valid %s data (%s)'
                    % (self._tarball, member, codec, e)) from e
            if known and known.digest != blob.digest:
                raise tarball_index.TarballError(
                    '%s: member %r changed while in use'
                    % (self._tarball, member))
            self._compressed[member] = blob
            return blob

    def _check_gzip_member(self, archive: tarball_index.Archive,
                           open_member) -> LayerBlob:
        """Hashes a gzipped member and its tar (kept in a file if asked)."""
        source = identity(archive.path)
        if not self._keep_tars:
            found = compression.digest_layer(open_member())
            return LayerBlob(found.digest, found.size, None, found.diff_id,
                             source)
        path = self._workdir.new_file('layer.tar')
        try:
            with open(path, 'wb') as tar_out:
                found = compression.digest_layer(open_member(), tar_out)
                size = tar_out.tell()
        except BaseException:
            _unlink(path)
            raise
        tar = capabilities.FileRange(path, 0, size, found.diff_id, True)
        return LayerBlob(found.digest, found.size, None, found.diff_id,
                         source, tar, identity(path))

    def _gzip_member(self, archive: tarball_index.Archive,
                     entry: tarball_index.Entry, open_member,
                     codec: Optional[str]) -> LayerBlob:
        """Gzips the tar of a member that is plain (or zstd) into a file."""
        path = self._workdir.new_file('layer.tar.gz')
        archive_source = identity(archive.path)
        tar_hash = hashlib.sha256()
        try:
            with open_member() as raw, open(path, 'wb') as dst:
                if codec is None:
                    digest, size = compression.gzip_stream(
                        raw, dst, self._compresslevel, tar_hash)
                else:
                    with compression.decompress_stream(raw)[0] as src:
                        digest, size = compression.gzip_stream(
                            src, dst, self._compresslevel, tar_hash)
        except BaseException:
            _unlink(path)
            raise
        diff_id = 'sha256:' + tar_hash.hexdigest()
        tar = None
        if codec is None:
            tar = capabilities.FileRange(archive.path, entry.offset,
                                         entry.size, diff_id)
        return LayerBlob(digest, size, path, diff_id, identity(path), tar,
                         archive_source)

    def compress_all(self, members: List[str]) -> None:
        """Compresses MEMBERS, several at once (zlib releases the GIL).

        The costliest go first (see `_cost`), so that one slow layer does
        not start last and leave the other threads idle. The first failure
        stops the rest.
        """
        cpus = os.cpu_count() or 1
        workers = min(len(members), self._threads or cpus, cpus)
        if workers <= 1:
            for member in members:
                self.compress(member)
            return
        if len(members) > workers:
            costs = {m: self._cost(m) for m in members}
            members = sorted(members, key=lambda m: (-costs[m], m))
        cancel = threading.Event()
        parallel.run_all([functools.partial(self.compress, m, cancel)
                          for m in members], workers, cancel, 'compress',
                         local=True)

    def _cost(self, member: str) -> float:
        """Roughly how many CPU seconds gzipping MEMBER will take.

        Level-9 deflate time per byte varies several-fold with the content
        (source text is far slower than binaries), so it is measured on a
        few samples of the member rather than guessed from its size.
        Gzipped members are only inflated, which is cheap.
        """
        archive = self._archive()
        entry = archive.lookup(member)
        with open(archive.path, 'rb') as f:
            f.seek(entry.offset)
            head = f.read(len(compression.ZSTD_MAGIC))
            if compression.codec_of(head) == compression.GZIP:
                return entry.size * _INFLATE_COST
            if entry.size < _PROBE_MIN:
                return entry.size * _DEFLATE_COST
            start = time.thread_time()
            sampled = 0
            for i in range(_PROBES):
                f.seek(entry.offset
                       + i * (entry.size - _PROBE) // (_PROBES - 1))
                sample = f.read(_PROBE)
                sampled += len(sample)
                deflate = zlib.compressobj(self._compresslevel, zlib.DEFLATED,
                                           -zlib.MAX_WBITS)
                deflate.compress(sample)
                deflate.flush()
            return (time.thread_time() - start) / max(1, sampled) * entry.size
