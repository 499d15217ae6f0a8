"""`FromTarball`: a docker-save tarball read as a v2.2 image.

The tar is indexed once (where each member's data starts, and its size);
a compressed outer tar is first inflated, once, into a temporary file.
Readers open their own handle on the plain tar, so threads never share a
file position.

When the manifest is first needed, every layer is read once, several layers
at a time on a thread pool (zlib and hashlib release the GIL, so this uses
every core): a layer stored uncompressed (or zstd-compressed) is gzipped,
streaming, into a temporary file with upstream's fixed gzip settings (see
`compression.gzip_stream`), so digests match upstream's; a gzipped member
passes through unchanged, and is inflated only to check it. Either way the
tar inside is hashed and must equal the config's diff_id for that layer.
With `keep_tars`, a gzipped member's tar is also written out in that pass,
for sinks that write tars (`save.uncompressed`) to link or copy rather than
inflate the layer again.
Temporary files go when the image is exited; the image stays usable
afterwards and recreates them when needed.

Foreign layers (a Windows base, as rules_docker's join_layers writes it)
are listed in the entry's `LayerSources`, keyed by diff_id: the manifest
keeps that descriptor, and the member is only a placeholder (empty, or
the layer's tar as `docker save` writes it), so its bytes are not the
blob. Reading such a blob raises `ForeignLayerUnavailableError`; its tar
is the placeholder's, as upstream read it (flatten checks it against the
diff_id). `stand_in` gives the placeholder, which the fast layout writes
as upstream did.
"""
import bz2
import concurrent.futures
import dataclasses
import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import tarfile
import tempfile
import threading
import time
import zlib
from typing import Any, Dict, List, Optional, Tuple, Union

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import leftovers

_CHUNK = 1 << 20
_MAX_LINKS = 32
# Sampling that orders layers by their cost to gzip (FromTarball._cost).
_PROBE = 64 << 10
_PROBES = 3
_PROBE_MIN = 4 * _PROBES * _PROBE
_DEFLATE_COST = 5e-8  # s/byte: level 9 at 20 MB/s
_INFLATE_COST = 3e-9  # s/byte
# Metadata members (manifest.json, config, repositories) are read whole.
_MAX_METADATA = 64 << 20


class TarballError(ValueError):
    """A tarball that cannot be read as a docker-save image."""


class DiffIdMismatchError(TarballError, docker_digest.DigestMismatchedError):
    """A layer whose tar does not hash to the config's diff_id for it."""


class _Cancelled(Exception):
    """Another layer failed, so this one stopped early."""


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    kind: str  # 'file', 'symlink', 'hardlink' or 'other'
    offset: int = 0
    size: int = 0
    target: str = ''


def _normalize(name: str) -> Optional[str]:
    """NAME relative to the archive root, or None if it escapes it."""
    if not name or name.startswith('/'):
        return None
    norm = posixpath.normpath(name)
    if norm == '..' or norm.startswith('../'):
        return None
    return norm


def _inflated(path: str, mode: str):
    """PATH through `compression.decompress_stream`: gzip by the fast inflater, zstd."""
    return compression.decompress_stream(open(path, mode))[0]


# A compressed docker-save tarball is inflated into a temporary plain tar.
_OUTER_CODECS = (
    (compression.GZIP_MAGIC, _inflated, 'gzip'),
    (compression.ZSTD_MAGIC, _inflated, 'zstd'),
    (b'BZh', bz2.open, 'bzip2'),
    (b'\xfd7zXZ\x00', lzma.open, 'xz'),
)


class OutputError(OSError):
    """Writing a temporary file failed (a full disk): the output's fault,
    not the tarball's."""


def _copy_out(src, dst, path: str) -> None:
    """Copies SRC into DST (the file PATH); a failed write is OutputError."""
    while True:
        chunk = src.read(_CHUNK)
        try:
            if not chunk:
                dst.flush()
                return
            dst.write(chunk)
        except OSError as e:
            raise OutputError(e.errno, e.strerror, path) from e


class Archive:
    """The index of a plain tar file: normalized member name -> entry."""

    def __init__(self, tarball: str, workdir: 'Workdir'):
        self.tarball = tarball
        self.path = tarball
        self.temporary = False
        try:
            with open(tarball, 'rb') as f:
                magic = f.read(6)
        except OSError as e:
            raise TarballError('cannot read tarball %s: %s'
                               % (tarball, e.strerror or e)) from e
        for prefix, opener, label in _OUTER_CODECS:
            if magic.startswith(prefix):
                self.path = workdir.new_file('outer.tar')
                self.temporary = True
                try:
                    with opener(tarball, 'rb') as src, \
                            open(self.path, 'wb') as dst:
                        _copy_out(src, dst, self.path)
                except compression.ZstdUnavailableError as e:
                    raise TarballError('%s is zstd-compressed; reading it needs %s'
                                       % (tarball, compression.ZSTD_NEEDS)) from e
                except OutputError:
                    raise
                except (OSError, EOFError, lzma.LZMAError, zlib.error,
                        compression.CompressionError) as e:
                    raise TarballError('%s is not a tar archive (bad %s '
                                       'data: %s)' % (tarball, label, e)) from e
                break
        self.entries: Dict[str, _Entry] = {}
        self._exact: Dict[str, bool] = {}
        try:
            with tarfile.open(self.path, 'r:') as tar:
                for info in tar:
                    self._add(info)
        except tarfile.ReadError as e:
            if self.entries or str(e) == 'unexpected end of data':
                raise TarballError('%s is truncated (%s)' % (tarball, e)) from e
            raise TarballError('%s is not a tar archive (%s)'
                               % (tarball, e)) from e

    def _add(self, info: tarfile.TarInfo) -> None:
        norm = _normalize(info.name)
        if norm is None:
            raise TarballError('%s: member %r escapes the archive'
                               % (self.tarball, info.name))
        if info.isreg() and not info.issparse():
            entry = _Entry(norm, 'file', info.offset_data, info.size)
        elif info.issym():
            entry = _Entry(norm, 'symlink', target=info.linkname)
        elif info.islnk():
            entry = _Entry(norm, 'hardlink', target=info.linkname)
        else:
            entry = _Entry(norm, 'other')
        # Like upstream, a name as written wins over its './' spelling;
        # among equal spellings the last member wins, as in tarfile.
        exact = info.name == norm
        if norm in self.entries and self._exact[norm] and not exact:
            return
        self.entries[norm] = entry
        self._exact[norm] = exact

    def lookup(self, name: str) -> _Entry:
        """The regular-file entry NAME refers to, following links."""
        norm = _normalize(name)
        if norm is None:
            raise TarballError('%s: %r points outside the archive'
                               % (self.tarball, name))
        for _ in range(_MAX_LINKS):
            entry = self.entries.get(norm)
            if entry is None:
                raise TarballError('%s has no member %r'
                                   % (self.tarball, name))
            if entry.kind == 'file':
                return entry
            if entry.kind == 'symlink':
                target = posixpath.join(posixpath.dirname(norm), entry.target)
            elif entry.kind == 'hardlink':
                target = entry.target
            else:
                raise TarballError('%s: member %r is not a regular file'
                                   % (self.tarball, name))
            norm = _normalize(target)
            if norm is None or entry.target.startswith('/'):
                raise TarballError('%s: link %r points outside the archive'
                                   % (self.tarball, name))
        raise TarballError('%s: too many links resolving %r'
                           % (self.tarball, name))

    def open(self, entry: _Entry) -> io.BufferedReader:
        return docker_image.FileRange(self.path, entry.offset, entry.size).open()

    def read_small(self, name: str) -> bytes:
        entry = self.lookup(name)
        if entry.size > _MAX_METADATA:
            raise TarballError('%s: member %r is too large (%d bytes)'
                               % (self.tarball, name, entry.size))
        with self.open(entry) as f:
            return f.read()


_TEMP_PREFIX = '.cr-tarball-'
_TEMP_NAME = leftovers.pattern(re.escape(_TEMP_PREFIX), '-[^-]+')


def remove_stale_temp_dirs(directory: str) -> List[str]:
    """Removes what FromTarball(temp_dir=DIRECTORY) left there when killed.

    Only directories made on this host by processes no longer running are
    removed (see `leftovers`); returns their names.
    """
    return leftovers.remove_abandoned(directory, _TEMP_NAME)


class Workdir:
    """A temporary directory, created on first use and removable at will.

    It is made inside PARENT when given (hidden there, named for the process
    that made it: see `leftovers`), else in the system's temporary
    directory.
    """

    def __init__(self, parent: Optional[str] = None):
        self._parent = parent
        self._lock = threading.Lock()
        self._dir: Optional[tempfile.TemporaryDirectory] = None
        self._count = 0

    def new_file(self, label: str) -> str:
        with self._lock:
            if self._dir is None:
                prefix = 'cr-tarball-'
                if self._parent:
                    prefix = '%s%s-' % (_TEMP_PREFIX, leftovers.tag())
                self._dir = tempfile.TemporaryDirectory(prefix=prefix,
                                                        dir=self._parent)
            self._count += 1
            return os.path.join(self._dir.name, '%d-%s' % (self._count, label))

    def cleanup(self) -> None:
        with self._lock:
            if self._dir is not None:
                self._dir.cleanup()
                self._dir = None


@dataclasses.dataclass
class _Blob:
    digest: str
    size: int
    path: Optional[str]  # the gzip we wrote; None when the member is gzip
    diff_id: str  # sha256 of the tar inside
    source: Optional[tuple]  # _identity() of the hashed file, taken before the hash ended
    tar: Optional[docker_image.FileRange] = None  # the tar in a local file
    tar_source: Optional[tuple] = None  # _identity() of tar.path, as for source


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _identity(path: str) -> Optional[tuple]:
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


class FromTarball(docker_image.StreamingImage, capabilities.BlobFiles,
                  capabilities.TarFiles, capabilities.UncompressedLayers,
                  capabilities.StandIns):
    """A docker-save tarball (outer tar optionally gzip/bzip2/xz).

    THREADS bounds how many layers are compressed (or checked) at once when
    the manifest is first built; None means one per CPU. The work is
    CPU-bound, so more threads than CPUs are not used. Temporary files go
    into a directory made inside TEMP_DIR (default: the system's); on the
    filesystem of a save's output they can be linked into place. KEEP_TARS
    writes each gzipped layer's tar to a temporary file while it is checked
    (see `uncompressed_range`): disk for a second inflate saved.
    """

    def __init__(self, tarball: str,
                 name: Optional[Union[docker_name.Tag, str]] = None,
                 compresslevel: int = 9, threads: Optional[int] = None,
                 temp_dir: Optional[str] = None, keep_tars: bool = False):
        self._tarball = tarball
        self._name = name
        self._compresslevel = compresslevel
        self._threads = threads
        self._keep_tars = keep_tars
        # _lock guards fields and is held briefly; _populate_lock serializes
        # the manifest synthesis, which waits on compressing threads.
        self._lock = threading.RLock()
        self._populate_lock = threading.Lock()
        self._workdir = Workdir(temp_dir)
        self._archive_index: Optional[Archive] = None
        self._entry: Optional[Dict[str, Any]] = None
        self._config: Optional[str] = None
        self._manifest: Optional[Dict[str, Any]] = None
        self._populate_error: Optional[BaseException] = None
        self._blob_names: Dict[str, str] = {}
        self._sizes: Dict[str, int] = {}
        # Foreign layer digest -> (its diff_id, its LayerSources descriptor).
        self._foreign: Dict[str, Tuple[str, Dict[str, Any]]] = {}
        self._compressed: Dict[str, _Blob] = {}
        self._member_locks: Dict[str, threading.Lock] = {}

    # The archive and the chosen manifest.json entry.

    def _archive(self) -> Archive:
        with self._lock:
            if self._archive_index is None:
                self._archive_index = Archive(self._tarball, self._workdir)
            return self._archive_index

    def _json_member(self, name: str) -> Any:
        data = self._archive().read_small(name)
        try:
            return json.loads(data.decode('utf8'))
        except ValueError as e:
            raise TarballError('%s: %s is not valid JSON (%s)'
                               % (self._tarball, name, e)) from e

    def _resolve_tag(self, entries: List[Dict[str, Any]]) -> str:
        """The single repo:tag of the legacy `repositories` file."""
        tags = sorted(t for e in entries for t in (e.get('RepoTags') or []))
        hint = ' (tags: %s)' % ', '.join(tags) if tags else ''
        try:
            repositories = self._json_member('repositories')
        except TarballError as e:
            raise TarballError(
                '%s holds %d images; give a name to choose one%s'
                % (self._tarball, len(entries), hint)) from e
        if not isinstance(repositories, dict) or len(repositories) != 1:
            raise TarballError(
                '%s holds %d images and its repositories file does not name '
                'a single one; give a name to choose one%s'
                % (self._tarball, len(entries), hint))
        (repo, repo_tags), = repositories.items()
        if not isinstance(repo_tags, dict) or len(repo_tags) != 1:
            raise TarballError(
                '%s holds %d images and its repositories file does not name '
                'a single tag; give a name to choose one%s'
                % (self._tarball, len(entries), hint))
        (tag, _), = repo_tags.items()
        return '%s:%s' % (repo, tag)

    def _load(self) -> Dict[str, Any]:
        with self._lock:
            if self._entry is not None:
                return self._entry
            archive = self._archive()
            if 'manifest.json' not in archive.entries:
                raise TarballError('%s has no manifest.json (not a docker-save '
                                   'tarball of a v2.2 image)' % self._tarball)
            entries = self._json_member('manifest.json')
            if not isinstance(entries, list) or not all(
                    isinstance(e, dict) for e in entries):
                raise TarballError('%s: manifest.json is not a list of images'
                                   % self._tarball)
            name = self._name
            if len(entries) != 1 and not name:
                name = self._resolve_tag(entries)
            chosen = None
            for entry in entries:
                if not name or str(name) in (entry.get('RepoTags') or []):
                    chosen = entry
            if chosen is None or not chosen.get('Config'):
                tags = sorted(t for e in entries
                              for t in (e.get('RepoTags') or []))
                raise TarballError('Unable to find %s in provided tarball %s%s'
                                   % (name, self._tarball,
                                      ' (tags: %s)' % ', '.join(tags)
                                      if tags else ''))
            layers = chosen.get('Layers') or []
            sources = chosen.get('LayerSources') or {}
            if (not isinstance(chosen['Config'], str)
                    or not isinstance(layers, list)
                    or not all(isinstance(l, str) for l in layers)
                    or not isinstance(sources, dict)):
                raise TarballError('%s: malformed manifest.json entry'
                                   % self._tarball)
            for ref in [chosen['Config']] + layers:
                if _normalize(ref) is None:
                    raise TarballError('%s: manifest.json refers to %r, '
                                       'outside the archive'
                                       % (self._tarball, ref))
            self._entry = {'Config': chosen['Config'], 'Layers': layers,
                           'LayerSources': sources}
            return self._entry

    # Layer blobs.

    def _member_lock(self, member: str) -> threading.Lock:
        with self._lock:
            return self._member_locks.setdefault(member, threading.Lock())

    def _compress(self, member: str,
                  cancel: Optional[threading.Event] = None) -> _Blob:
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
                raise TarballError('%s: layer %r is not valid %s data (%s)'
                                   % (self._tarball, member, codec, e)) from e
            if known and known.digest != blob.digest:
                raise TarballError('%s: member %r changed while in use'
                                   % (self._tarball, member))
            self._compressed[member] = blob
            return blob

    def _check_gzip_member(self, archive: Archive, open_member) -> _Blob:
        """Hashes a gzipped member and its tar (kept in a file if asked)."""
        source = _identity(archive.path)
        if not self._keep_tars:
            found = compression.digest_layer(open_member())
            return _Blob(found.digest, found.size, None, found.diff_id, source)
        path = self._workdir.new_file('layer.tar')
        try:
            with open(path, 'wb') as tar_out:
                found = compression.digest_layer(open_member(), tar_out)
                size = tar_out.tell()
        except BaseException:
            _unlink(path)
            raise
        tar = docker_image.FileRange(path, 0, size, found.diff_id, True)
        return _Blob(found.digest, found.size, None, found.diff_id, source,
                     tar, _identity(path))

    def _gzip_member(self, archive: Archive, entry: _Entry, open_member,
                     codec: Optional[str]) -> _Blob:
        """Gzips the tar of a member that is plain (or zstd) into a file."""
        path = self._workdir.new_file('layer.tar.gz')
        archive_source = _identity(archive.path)
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
            tar = docker_image.FileRange(archive.path, entry.offset, entry.size,
                                         diff_id)
        return _Blob(digest, size, path, diff_id, _identity(path), tar,
                     archive_source)

    def _populate(self) -> Dict[str, Any]:
        with self._populate_lock:
            if self._manifest is not None:
                return self._manifest
            # A failure is final: do not redo the work on the next call.
            if self._populate_error is not None:
                raise self._populate_error
            try:
                return self._synthesize()
            except Exception as e:
                self._populate_error = e
                raise

    def _synthesize(self) -> Dict[str, Any]:
        """Builds the manifest; every own layer is compressed and checked."""
        entry = self._load()
        config_text = self.config_file()
        config_bytes = config_text.encode('utf8')
        try:
            config = json.loads(config_text)
        except ValueError as e:
            raise TarballError('%s: the config is not valid JSON (%s)'
                               % (self._tarball, e)) from e
        rootfs = config.get('rootfs') if isinstance(config, dict) else None
        diff_ids = rootfs.get('diff_ids') if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list):
            raise TarballError('%s: the config has no rootfs.diff_ids'
                               % self._tarball)
        layers = entry['Layers']
        sources = entry['LayerSources']
        if len(layers) != len(diff_ids):
            raise TarballError(
                '%s: manifest.json lists %d layers but the config has %d '
                'diff_ids' % (self._tarball, len(layers), len(diff_ids)))
        todo = sorted(set(m for m, d in zip(layers, diff_ids)
                          if d not in sources))
        self._compress_all(todo)
        for index, (member, diff_id) in enumerate(zip(layers, diff_ids)):
            if diff_id in sources:
                continue
            found = self._compressed[member].diff_id
            if found != diff_id:
                raise DiffIdMismatchError(
                    '%s: layer %d (%s) does not match the config: its '
                    'tar hashes to %s, the config says %s'
                    % (self._tarball, index, member, found, diff_id))

        descriptors = []
        blob_names: Dict[str, str] = {}
        sizes: Dict[str, int] = {}
        foreign: Dict[str, Tuple[str, Dict[str, Any]]] = {}
        for member, diff_id in zip(layers, diff_ids):
            source = sources.get(diff_id)
            if source is not None:
                descriptor = self._source_descriptor(diff_id, source)
                foreign[descriptor['digest']] = (diff_id, descriptor)
            else:
                blob = self._compressed[member]
                descriptor = {'digest': blob.digest,
                              'mediaType': docker_http.LAYER_MIME,
                              'size': blob.size}
            blob_names[descriptor['digest']] = member
            sizes[descriptor['digest']] = descriptor['size']
            descriptors.append(descriptor)
        manifest = {
            'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
            'schemaVersion': 2,
            'config': {
                'digest': docker_digest.SHA256(config_bytes),
                'mediaType': docker_http.CONFIG_JSON_MIME,
                'size': len(config_bytes),
            },
            'layers': descriptors,
        }
        with self._lock:
            self._blob_names = blob_names
            self._sizes = sizes
            self._foreign = foreign
            self._manifest = manifest
        return manifest

    def _source_descriptor(self, diff_id: str, source: Any) -> Dict[str, Any]:
        """The manifest's descriptor for a LayerSources entry, checked."""
        what = '%s: LayerSources[%s]' % (self._tarball, diff_id)
        if not isinstance(source, dict):
            raise TarballError('%s is not a JSON object' % what)
        docker_digest.check_form(source.get('digest'), what)
        size, media_type = source.get('size'), source.get('mediaType')
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TarballError('%s has an invalid size %s'
                               % (what, json.dumps(size)[:100]))
        if not isinstance(media_type, str) or not media_type:
            raise TarballError('%s has no mediaType' % what)
        urls = source.get('urls')
        if urls is not None and not (isinstance(urls, list) and all(
                isinstance(url, str) for url in urls)):
            raise TarballError('%s: urls is not a list of strings' % what)
        descriptor = {'digest': source['digest'], 'mediaType': media_type,
                      'size': size}
        if urls:
            descriptor['urls'] = urls
        return descriptor

    def _compress_all(self, members: List[str]) -> None:
        """Compresses MEMBERS, several at once (zlib releases the GIL).

        The costliest go first (see `_cost`), so that one slow layer does
        not start last and leave the other threads idle. The first failure
        stops the rest.
        """
        cpus = os.cpu_count() or 1
        workers = min(len(members), self._threads or cpus, cpus)
        if workers <= 1:
            for member in members:
                self._compress(member)
            return
        if len(members) > workers:
            costs = {m: self._cost(m) for m in members}
            members = sorted(members, key=lambda m: (-costs[m], m))
        cancel = threading.Event()
        pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix='compress')
        try:
            futures = [pool.submit(self._compress, m, cancel) for m in members]
            for future in concurrent.futures.as_completed(futures):
                if future.exception() is not None:
                    cancel.set()
            errors = [f.exception() for f in futures if f.exception()]
            real = [e for e in errors if not isinstance(e, _Cancelled)]
            if real or errors:
                raise (real or errors)[0]
        except BaseException:
            # Ctrl-C or SIGTERM too: stop the other layers' work at once.
            cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

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

    def _member_for(self, digest: str) -> str:
        self._populate()
        member = self._blob_names.get(digest)
        if member is None:
            raise TarballError('%s: the image has no blob %s'
                               % (self._tarball, digest))
        return member

    # DockerImage.

    def manifest(self) -> str:
        return json.dumps(self._populate(), sort_keys=True)

    def media_type(self) -> str:
        return docker_http.MANIFEST_SCHEMA2_MIME

    def config_file(self) -> str:
        with self._lock:
            if self._config is None:
                data = self._archive().read_small(self._load()['Config'])
                try:
                    self._config = data.decode('utf8')
                except UnicodeDecodeError as e:
                    raise TarballError('%s: the config is not UTF-8'
                                       % self._tarball) from e
            return self._config

    def config_blob(self) -> str:
        return docker_digest.SHA256(self.config_file().encode('utf8'))

    def blob_size(self, digest: str) -> int:
        if digest == self.config_blob():
            return len(self.config_file().encode('utf8'))
        self._member_for(digest)
        return self._sizes[digest]

    # Foreign layers.

    def _foreign_missing(self, digest: str) -> docker_image.ForeignLayerUnavailableError:
        _, descriptor = self._foreign[digest]
        return docker_image.ForeignLayerUnavailableError(
            digest, descriptor.get('urls') or [],
            '%s (it holds a placeholder, %s)' % (
                self._tarball, self._member_for(digest)))

    def _holds_foreign_blob(self, digest: str) -> bool:
        """Whether the member of foreign layer DIGEST is that very blob."""
        member = self._member_for(digest)
        if self._archive().lookup(member).size == 0:
            return False
        return self._compress(member).digest == digest

    def stand_in(self, digest: str, compressed: bool):
        """The placeholder of foreign layer DIGEST: gzipped, or its tar.

        An empty placeholder is given as it is (gzipped with the fixed
        settings when COMPRESSED); a tar `docker save` wrote must hash to
        the layer's diff_id, as any other layer's. None when the member is
        the very blob (or DIGEST no foreign layer).
        """
        self._populate()
        if digest not in self._foreign or self._holds_foreign_blob(digest):
            return None
        diff_id, _ = self._foreign[digest]
        member = self._member_for(digest)
        if self._archive().lookup(member).size == 0:
            if compressed:
                return open(self._compress(member).path, 'rb')  # pylint: disable=consider-using-with
            return io.BytesIO(b'')
        if not compressed:
            return docker_digest.VerifyingReader(
                self._member_stream(member), diff_id,
                'the tar of foreign layer %s' % digest)
        blob = self._compress(member)
        if blob.diff_id != diff_id:
            raise DiffIdMismatchError(
                '%s: the placeholder %s of foreign layer %s does not match '
                'the config: its tar hashes to %s, the config says %s'
                % (self._tarball, member, digest, blob.diff_id, diff_id))
        if blob.path is not None:
            return open(blob.path, 'rb')  # pylint: disable=consider-using-with
        archive = self._archive()
        return archive.open(archive.lookup(member))

    def blob_stream(self, digest: str):
        if digest == self.config_blob():
            return io.BytesIO(self.config_file().encode('utf8'))
        self._populate()
        if digest in self._foreign and not self._holds_foreign_blob(digest):
            raise self._foreign_missing(digest)
        blob = self._compress(self._member_for(digest))
        if blob.path is not None:
            reader = open(blob.path, 'rb')  # pylint: disable=consider-using-with
        else:
            archive = self._archive()
            reader = archive.open(archive.lookup(self._member_for(digest)))
        return docker_digest.VerifyingReader(
            reader, digest, 'blob %s of %s' % (digest, self._tarball),
            blob.size)

    def blob_range(self, digest: str) -> Optional[docker_image.FileRange]:
        """The layer's bytes in the tar (or in our gzip), once hashed.

        The range carries the diff_id measured in the same pass. None once
        the file has changed since it was hashed (size, mtime, inode): the
        caller then reads and checks it again.
        """
        if digest == self.config_blob():
            return None
        member = self._member_for(digest)
        with self._lock:
            blob = self._compressed.get(member)
        if blob is None or blob.source is None or blob.digest != digest:
            return None
        if blob.path is not None:
            path, offset, private = blob.path, 0, True
        else:
            archive = self._archive()
            path, offset = archive.path, archive.lookup(member).offset
            private = archive.temporary
        if _identity(path) != blob.source:
            return None
        return docker_image.FileRange(path, offset, blob.size, blob.diff_id,
                                      private)

    def uncompressed_range(self, digest: str) -> Optional[docker_image.FileRange]:
        """The layer's tar in a local file, once hashed to the range's diff_id.

        A plain member is its own tar; a gzipped one has a tar only with
        `keep_tars`. None once the file has changed since it was hashed.
        """
        if digest == self.config_blob() or digest in self._foreign:
            return None
        member = self._member_for(digest)
        with self._lock:
            blob = self._compressed.get(member)
        if blob is None or blob.tar is None or blob.tar_source is None:
            return None
        if _identity(blob.tar.path) != blob.tar_source:
            return None
        return blob.tar

    def _member_stream(self, member: str):
        archive = self._archive()
        return compression.gunzip_if_compressed(archive.open(archive.lookup(member)))[0]

    def uncompressed_blob_stream(self, digest: str):
        """A reader over the layer tar of DIGEST; close it when done."""
        return self._member_stream(self._member_for(digest))

    def uncompressed_blob_size(self, digest: str) -> Optional[int]:
        """The layer tar's size if known without inflating, else None."""
        member = self._member_for(digest)
        archive = self._archive()
        entry = archive.lookup(member)
        with archive.open(entry) as f:
            if compression.codec_of(f.read(len(compression.ZSTD_MAGIC))):
                return None
        return entry.size

    def _layer_member(self, diff_id: str) -> str:
        layers = self._load()['Layers']
        for member, this_diff_id in zip(reversed(layers), self.diff_ids()):
            if this_diff_id == diff_id:
                return member
        raise ValueError('Unmatched "diff_id": "%s"' % diff_id)

    def uncompressed_layer_stream(self, diff_id: str):
        """A reader over the layer tar of DIFF_ID; close it when done."""
        return self._member_stream(self._layer_member(diff_id))

    def uncompressed_layer(self, diff_id: str) -> bytes:
        with self.uncompressed_layer_stream(diff_id) as f:
            return f.read()

    def __enter__(self) -> 'FromTarball':
        try:
            self._load()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        """Removes temporary files; later use recreates what it needs."""
        with self._lock:
            if self._archive_index is not None and \
                    self._archive_index.temporary:
                self._archive_index = None
            self._workdir.cleanup()

    def __str__(self) -> str:
        return '<docker_image.FromTarball tarball: %s>' % self._tarball
