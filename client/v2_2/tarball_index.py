"""The index of a docker-save tarball: where each member's data lies.

A compressed outer tar (gzip, zstd, bzip2, xz) is first inflated, once,
into a temporary plain tar (in a `Workdir`); readers open their own handle
on the plain tar, so threads never share a file position.
"""
import bz2
import dataclasses
import io
import json
import lzma
import os
import posixpath
import re
import tarfile
import tempfile
import threading
import zlib
from typing import Any, Dict, List, Optional

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import leftovers

_CHUNK = 1 << 20
_MAX_LINKS = 32
# Metadata members (manifest.json, config, repositories) are read whole.
_MAX_METADATA = 64 << 20


class TarballError(ValueError):
    """A tarball that cannot be read as a docker-save image."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """A member: where a file's data lies, or what a link points at."""
    name: str
    kind: str  # 'file', 'symlink', 'hardlink' or 'other'
    offset: int = 0
    size: int = 0
    target: str = ''


def normalize(name: str) -> Optional[str]:
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
        self.entries: Dict[str, Entry] = {}
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
        norm = normalize(info.name)
        if norm is None:
            raise TarballError('%s: member %r escapes the archive'
                               % (self.tarball, info.name))
        if info.isreg() and not info.issparse():
            entry = Entry(norm, 'file', info.offset_data, info.size)
        elif info.issym():
            entry = Entry(norm, 'symlink', target=info.linkname)
        elif info.islnk():
            entry = Entry(norm, 'hardlink', target=info.linkname)
        else:
            entry = Entry(norm, 'other')
        # Like upstream, a name as written wins over its './' spelling;
        # among equal spellings the last member wins, as in tarfile.
        exact = info.name == norm
        if norm in self.entries and self._exact[norm] and not exact:
            return
        self.entries[norm] = entry
        self._exact[norm] = exact

    def lookup(self, name: str) -> Entry:
        """The regular-file entry NAME refers to, following links."""
        norm = normalize(name)
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
            norm = normalize(target)
            if norm is None or entry.target.startswith('/'):
                raise TarballError('%s: link %r points outside the archive'
                                   % (self.tarball, name))
        raise TarballError('%s: too many links resolving %r'
                           % (self.tarball, name))

    def open(self, entry: Entry) -> io.BufferedReader:
        return capabilities.FileRange(self.path, entry.offset, entry.size).open()

    def read_json(self, name: str) -> Any:
        """Member NAME, a small JSON document, parsed."""
        data = self.read_small(name)
        try:
            return json.loads(data.decode('utf8'))
        except ValueError as e:
            raise TarballError('%s: %s is not valid JSON (%s)'
                               % (self.tarball, name, e)) from e

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
