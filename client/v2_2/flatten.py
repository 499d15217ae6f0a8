"""`extract`: an image's merged filesystem as one tar (what flatten.par writes).

Layers are applied base first the way `umoci unpack` applies them, which
is what a container runtime sees:

- `.wh.NAME` deletes NAME and everything below it, and `.wh..wh..opq`
  deletes everything below its directory, but only what lower layers put
  there: entries of the same layer stay, whatever their order.
- An entry replaces what was at its path unless both are directories, in
  which case the directory's metadata is replaced and its contents kept.
- Parent directories are resolved through symlinks (confined to the root,
  like securejoin), so `lib/x` under a `lib -> usr/lib` symlink lands in
  `usr/lib/x`; missing parents are created.
- A hardlink shares its target's inode: it keeps the content and metadata
  its target had when it was linked, even if the target is later deleted or
  replaced. In the output, one path carries the inode (the path it was
  created at if that survives, else the first in path order) and the
  others are hardlinks to it, written right after it.
- A hardlink to a missing path or a directory, and an entry below a
  non-directory, make the image unusable (umoci and Docker refuse them);
  they raise FlattenError.

Upstream walked layers top first and ignored opaque whiteouts, resurrecting
deleted files, and wrote hardlinks to paths it had dropped.

Memory stays flat whatever the layer sizes: a first pass reads only tar
headers to build the merged tree; a second pass streams each layer that
still contributes file contents and copies those contents through. The
first pass reads several layers at once (one per CPU; inflating releases
the GIL) and applies their headers in layer order. The second copies
contents from where the first pass found them, checking each file's
header block there, with the layer inflated on a thread of its own. The
first pass also hashes each layer's tar: one that is not what its diff_id
in the config says is an error (a damaged plain layer has no CRC to catch
it). Output
names are normalized (`usr/bin/x`, no `./` prefix, like `docker export`);
directories, symlinks, devices, fifos and empty files come first in path
order, then files with contents layer by layer (base first).
"""
import collections
import functools
import hashlib
import io
import json
import logging
import os
import queue
import tarfile
import threading
import zlib
from typing import (Dict, Iterator, List, Optional, Protocol, Set, Tuple,
                    cast)

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import parallel

_WHITEOUT = '.wh.'
_OPAQUE = '.wh..wh..opq'
# Symlinks followed while resolving one path before giving up (as Linux).
_MAX_LINKS = 255
_BUFSIZE = 1 << 16
# The copy pass reads and writes in pieces of this size, at most _AHEAD
# pieces ahead of the writing.
_PIECE = 1 << 20
_AHEAD = 4
# Implicitly created parent directories (umoci: MkdirAll 0777, umask 022).
_IMPLICIT_DIR_MODE = 0o755
# Pax records recomputed from the output header (or meaningless there).
_DERIVED_PAX = frozenset(['path', 'linkpath', 'size', 'hdrcharset'])
_NODATA_TYPES = (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE,
                 tarfile.BLKTYPE, tarfile.FIFOTYPE)


class FlattenError(ValueError):
    """The layers cannot be merged into one filesystem."""


class _TarState(Protocol):
    """TarFile attributes its type stubs leave out: the headers it keeps,
    and the buffer size its copies of member contents use."""
    members: List[tarfile.TarInfo]
    copybufsize: Optional[int]


class _Inode:
    """A filesystem object; hardlinked paths share one."""
    __slots__ = ('info', 'children', 'source', 'origin', 'at')

    def __init__(self, info: tarfile.TarInfo,
                 source: Optional[Tuple[int, int]] = None, origin: str = '',
                 at: Optional[Tuple[int, Optional[int]]] = None):
        self.info = info
        # name -> _Inode for directories, None otherwise.
        self.children: Optional[Dict[str, '_Inode']] = (
            {} if info.type == tarfile.DIRTYPE else None)
        # (layer index, member ordinal) holding a regular file's contents.
        self.source = source
        # The path the object was created at (hardlinks add more).
        self.origin = origin
        # Where a regular file's contents start in its layer's tar, and the
        # size its own header block gives (None when a pax record holds
        # it); None for sparse files, whose stored data tarfile expands.
        self.at = at

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def is_symlink(self) -> bool:
        return self.info.type == tarfile.SYMTYPE


def _header(template: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """A fresh header for NAME with TEMPLATE's type and metadata."""
    info = tarfile.TarInfo(name)
    kind = template.type
    if template.isreg():
        kind = tarfile.REGTYPE  # also sparse and contiguous files
    info.type = kind
    info.mode = template.mode & 0o7777
    info.uid, info.gid = template.uid, template.gid
    info.uname, info.gname = template.uname, template.gname
    info.mtime = template.mtime
    info.linkname = template.linkname if kind == tarfile.SYMTYPE else ''
    info.devmajor, info.devminor = template.devmajor, template.devminor
    info.size = template.size if kind == tarfile.REGTYPE else 0
    info.pax_headers = {
        key: value for key, value in template.pax_headers.items()
        if key not in _DERIVED_PAX and not key.startswith('GNU.sparse.')}
    return info


def _implicit_dir(mtime: float) -> _Inode:
    info = tarfile.TarInfo('')
    info.type = tarfile.DIRTYPE
    info.mode = _IMPLICIT_DIR_MODE
    info.mtime = mtime
    return _Inode(info)


def _clean(name: str) -> List[str]:
    """NAME's components, relative to the root, `..` stopping at the root."""
    parts: List[str] = []
    for part in name.split('/'):
        if part in ('', '.'):
            continue
        if part == '..':
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def _show(parts: List[str]) -> str:
    return '/'.join(parts) or '.'


class _Tree:
    """The merged filesystem as layers are applied to it."""

    def __init__(self) -> None:
        self.root = _implicit_dir(0)
        self.root_explicit = False
        # Paths (and their ancestors) written by the current layer.
        self._upper: Set[Tuple[str, ...]] = set()

    def start_layer(self) -> None:
        self._upper = set()

    def _resolve(self, parts: List[str]) -> List[Tuple[str, Optional[_Inode]]]:
        """PARTS with symlinks expanded inside the root (securejoin).

        Returns the resolved components with the object each names, None
        from the first component that does not exist.
        """
        stack: List[Tuple[str, Optional[_Inode]]] = []
        pending = list(parts)
        links = 0
        while pending:
            part = pending.pop(0)
            if part in ('', '.'):
                continue
            if part == '..':
                if stack:
                    stack.pop()
                continue
            parent = stack[-1][1] if stack else self.root
            child = None
            if parent is not None and parent.children is not None:
                child = parent.children.get(part)
            if child is not None and child.is_symlink:
                links += 1
                if links > _MAX_LINKS:
                    raise FlattenError('too many levels of symbolic links '
                                       'resolving %s' % _show(parts))
                target = child.info.linkname
                if target.startswith('/'):
                    stack = []
                pending[0:0] = target.split('/')
                continue
            stack.append((part, child))
        return stack

    def _make_parents(self, stack: List[Tuple[str, Optional[_Inode]]],
                      name: str, mtime: float) -> Dict[str, _Inode]:
        """The contents of the directory STACK names, creating missing
        directories (MkdirAll)."""
        children = self.root.children
        assert children is not None  # the root is a directory
        for depth, (part, child) in enumerate(stack):
            if child is None:
                child = children.get(part)
                if child is None:
                    child = _implicit_dir(mtime)
                    children[part] = child
            if child.children is None:
                raise FlattenError('cannot create %s: %s is not a directory' % (
                    name, _show([p for p, _ in stack[:depth + 1]])))
            children = child.children
        return children

    def _mark_upper(self, parts: List[str]) -> None:
        for i in range(1, len(parts) + 1):
            self._upper.add(tuple(parts[:i]))

    def _whiteout(self, parts: List[str], file: str) -> None:
        opaque = file == _OPAQUE
        stack = self._resolve(parts)
        parent = stack[-1][1] if stack else self.root
        if parent is None or parent.children is None:
            return
        children = parent.children
        names = [p for p, _ in stack]
        target = file[len(_WHITEOUT):]
        if opaque or not target:
            self._purge(children, names)
            return
        if target not in children:
            return
        path = tuple(names + [target])
        if path not in self._upper:
            del children[target]
            return
        child = children[target]
        if child.children is not None:
            self._purge(child.children, list(path))

    def _purge(self, contents: Dict[str, _Inode], names: List[str]) -> None:
        """Removes CONTENTS (of the directory NAMES) and what is below them,
        sparing this layer's paths."""
        todo = [(contents, tuple(names))]
        while todo:
            children, path = todo.pop()
            for name in list(children):
                child_path = path + (name,)
                child = children[name]
                if child_path not in self._upper:
                    del children[name]
                elif child.children is not None:
                    todo.append((child.children, child_path))

    def apply(self, info: tarfile.TarInfo, source: Tuple[int, int]) -> None:
        """Applies one layer member."""
        parts = _clean(info.name)
        if not parts:
            if not info.isdir():
                raise FlattenError('an entry of type %r replaces the root '
                                   'directory' % info.type.decode())
            self.root.info = _header(info, '')
            self.root_explicit = True
            return
        dir_parts, file = parts[:-1], parts[-1]
        if file.startswith(_WHITEOUT):
            self._whiteout(dir_parts, file)
            return
        stack = self._resolve(dir_parts)
        children = self._make_parents(stack, info.name, info.mtime)
        path = [p for p, _ in stack] + [file]
        existing = children.get(file)
        if not (info.isdir() and existing is not None and existing.is_dir):
            children.pop(file, None)

        if info.isdir():
            if existing is not None and existing.is_dir:
                existing.info = _header(info, '')
            else:
                children[file] = _Inode(_header(info, ''))
        elif info.islnk():
            children[file] = self._link_target(info)
        elif info.isreg():
            at = None
            if not info.issparse():
                at = (info.offset_data,
                      None if 'size' in info.pax_headers else info.size)
            children[file] = _Inode(_header(info, ''), source,
                                    '/'.join(path), at)
        elif info.type in _NODATA_TYPES:
            children[file] = _Inode(_header(info, ''), origin='/'.join(path))
        else:
            raise FlattenError('%s: unsupported tar entry type %r'
                               % (info.name, info.type.decode(errors='replace')))
        self._mark_upper(path)

    def _link_target(self, info: tarfile.TarInfo) -> _Inode:
        parts = _clean(info.linkname)
        if not parts:
            raise FlattenError('hardlink %s points to the root directory'
                               % info.name)
        stack = self._resolve(parts[:-1])
        parent = stack[-1][1] if stack else self.root
        target = None
        if parent is not None and parent.children is not None:
            target = parent.children.get(parts[-1])
        if target is None:
            raise FlattenError('hardlink %s points to %s, which does not '
                               'exist' % (info.name, info.linkname))
        if target.is_dir:
            raise FlattenError('hardlink %s points to %s, a directory'
                               % (info.name, info.linkname))
        return target


def _iter_tree(tree: _Tree) -> Iterator[Tuple[str, _Inode]]:
    """(path, object) for every path, a directory before what it holds."""
    todo: List[Tuple[str, _Inode]] = [('', tree.root)]
    while todo:
        path, node = todo.pop()
        if path:
            yield path, node
        children = node.children
        if children is not None:
            for name in sorted(children, reverse=True):
                todo.append((path + '/' + name if path else name,
                             children[name]))


# What reading a damaged or missing layer raises (CompressionError is a
# ValueError).
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error)


class _Hashing(io.RawIOBase):
    """A reader that hashes what passes through it (sha256)."""

    def __init__(self, raw):
        super().__init__()
        self._raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.hash.update(data)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Layers:
    """Opens the layers of an image as tar streams, base first."""

    def __init__(self, image: docker_image.DockerImage):
        self._image = image
        try:
            self.diff_ids = list(reversed(image.diff_ids()))
        except ValueError as e:
            raise FlattenError('the image config cannot be read: %s'
                               % _reason(e)) from e
        self._digests: Optional[List[str]] = None

    def _digest(self, index: int) -> str:
        if self._digests is None:
            self._digests = list(reversed(self._image.fs_layers()))
        if len(self._digests) != len(self.diff_ids):
            return self._image._diff_id_to_digest(  # pylint: disable=protected-access
                self.diff_ids[index])
        return self._digests[index]

    def describe(self, index: int) -> str:
        return 'layer %d (%s)' % (index, self.diff_ids[index])

    def _raise_empty(self, index: int) -> None:
        """Layer INDEX is empty though its diff_id names content.

        A foreign layer's placeholder (a Windows base layer, whose bytes
        are served from its URLs) is named as such.
        """
        where = self.describe(index)
        foreign = self._foreign_descriptor(index)
        if foreign is None:
            raise FlattenError('%s is empty, but its diff_id names content'
                               % where)
        urls = foreign.get('urls')
        missing = docker_image.ForeignLayerUnavailableError(
            str(foreign.get('digest')),
            [u for u in urls if isinstance(u, str)]
            if isinstance(urls, list) else [],
            'the input, which holds an empty placeholder for it')
        raise FlattenError('%s cannot be read: %s' % (where, missing)) \
            from missing

    def _foreign_descriptor(self, index: int) -> Optional[dict]:
        """Layer INDEX's descriptor if the manifest says it is foreign."""
        try:
            layers = json.loads(self._image.manifest())['layers']
            # Base layers come first in both, whatever is given on top.
            layer = layers[index] if index < len(layers) else None
        except (ValueError, KeyError, TypeError, OSError):
            return None
        if (isinstance(layer, dict) and layer.get('mediaType')
                in media_types.NON_DISTRIBUTABLE_LAYER_MIMES):
            return layer
        return None

    def open(self, index: int, hashing: bool = False):
        """A reader over layer INDEX's tar; close it when done.

        With HASHING, its `raw.hash` is the sha256 of what was read.
        """
        diff_id = self.diff_ids[index]
        layers = self._image.capability(capabilities.UncompressedLayers)
        if layers is not None:
            stream = layers.uncompressed_layer_stream(diff_id)
        else:
            stream = self._image.uncompressed_blob_stream(self._digest(index))
        if hashing:
            return io.BufferedReader(_Hashing(stream), _BUFSIZE)
        # Both readers are already inflated: another gunzip wrapper would
        # only add a copy of every byte.
        if not hasattr(stream, 'peek'):
            stream = io.BufferedReader(stream, _BUFSIZE)
        return stream

    def members(self, index: int) -> Iterator[Tuple[tarfile.TarFile,
                                                    tarfile.TarInfo]]:
        """(tar, member) for each member of layer INDEX, in order.

        A member's contents can be read from the tar until the next member
        is asked for. Read errors name the layer.
        """
        where = self.describe(index)
        try:
            stream = self.open(index, hashing=True)
        except _READ_ERRORS as e:
            raise FlattenError('%s cannot be read: %s'
                               % (where, _reason(e))) from e
        with stream:
            try:
                if not stream.peek(1):
                    # No tar at all: only an empty layer may say so.
                    found = 'sha256:' + stream.raw.hash.hexdigest()
                    if found != self.diff_ids[index]:
                        self._raise_empty(index)
                    return
                tar = tarfile.open(fileobj=stream, mode='r|', bufsize=_BUFSIZE,
                                   encoding='utf-8', errors='surrogateescape')
                state = cast(_TarState, tar)
                while True:
                    info = tar.next()
                    if info is None:
                        break
                    # Stream mode keeps every header; we keep what we need.
                    state.members = []
                    yield tar, info
                # Reading to the end checks the gzip trailer, and lets
                # the hash cover the whole tar.
                while stream.read(_BUFSIZE):
                    pass
                found = 'sha256:' + stream.raw.hash.hexdigest()
                if found != self.diff_ids[index]:
                    raise FlattenError(
                        '%s does not match its diff_id: its tar hashes to %s'
                        % (where, found))
            except FlattenError:
                raise
            except tarfile.TarError as e:
                raise FlattenError('%s is not a valid tar: %s'
                                   % (where, _reason(e))) from e
            except _READ_ERRORS as e:
                raise FlattenError('%s cannot be read: %s'
                                   % (where, _reason(e))) from e

    def headers(self, index: int, stop: threading.Event
                ) -> List[tarfile.TarInfo]:
        """The member headers of layer INDEX, in order (first pass).

        Gives up early, with what it has, once STOP is set.
        """
        found: List[tarfile.TarInfo] = []
        for _, info in self.members(index):
            if stop.is_set():
                break
            found.append(info)
        return found


def _index(layers: _Layers) -> '_Tree':
    """The merged tree of the layers' headers (the first pass).

    Layers are read several at once, at most one per CPU ahead of the one
    being applied (so few layers' headers are held outside the tree), and
    applied base first; the first failure, in layer order, is raised, and
    the other readers stop.
    """
    tree = _Tree()
    count = len(layers.diff_ids)
    workers = max(1, min(count, os.cpu_count() or 1))
    stop = threading.Event()
    tasks = [functools.partial(layers.headers, index, stop)
             for index in range(count)]
    with parallel.in_order(tasks, workers, workers, stop,
                           'flatten-index') as results:
        for index, infos in enumerate(results):
            tree.start_layer()
            for ordinal, info in enumerate(infos):
                try:
                    tree.apply(info, (index, ordinal))
                except FlattenError as e:
                    raise FlattenError('%s: %s' % (layers.describe(index),
                                                   e)) from e
            logging.debug('Indexed %s: %d entries', layers.describe(index),
                          len(infos))
    return tree


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror + (': %s' % err.filename if err.filename else '')
    else:
        text = str(err) or type(err).__name__
    return ' '.join(text.split())


def extract(image: docker_image.DockerImage, tar: tarfile.TarFile) -> None:
    """Writes IMAGE's merged filesystem into the open tarfile TAR.

    TAR should be in PAX format (Python's default) so that long names,
    extended attributes and fine timestamps survive. Raises FlattenError
    when the layers cannot be read or merged.
    """
    layers = _Layers(image)
    tree = _index(layers)
    entries = list(_iter_tree(tree))
    groups = _link_groups(entries)
    # Files whose contents are still to be copied, by where the contents
    # are, with their paths.
    pending: Dict[Tuple[int, int], Tuple[_Inode, List[str]]] = {}
    if tree.root_explicit:
        tar.addfile(_header(tree.root.info, '.'))
    for path, node in entries:
        if node.is_dir:
            tar.addfile(_header(node.info, path))
            continue
        group = groups[id(node)]
        if path != group[0]:
            continue  # written right after the path that carries it
        if node.info.isreg() and node.info.size > 0:
            assert node.source is not None  # set for every regular file
            pending[node.source] = (node, group)
            continue
        tar.addfile(_header(node.info, path))
        for other in group[1:]:
            tar.addfile(_hardlink(node.info, other, path))

    by_layer: Dict[int, List[Tuple[int, _Inode, List[str]]]] = (
        collections.defaultdict(list))
    for (index, ordinal), (node, paths) in sorted(pending.items()):
        by_layer[index].append((ordinal, node, paths))
    for index in sorted(by_layer):
        files = by_layer[index]
        placed = [(node.at, node, paths) for _, node, paths in files
                  if node.at is not None]
        if len(placed) == len(files):
            _copy_at_offsets(layers, index, placed, tar)
        else:
            _copy_by_members(layers, index, files, tar)
        logging.debug('Copied files of %s', layers.describe(index))


def _add_file(tar: tarfile.TarFile, node: _Inode, paths: List[str],
              contents) -> None:
    """NODE's first path with CONTENTS, then its other paths as hardlinks."""
    tar.addfile(_header(node.info, paths[0]), contents)
    for path in paths[1:]:
        tar.addfile(_hardlink(node.info, path, paths[0]))


def _copy_by_members(layers: _Layers, index: int,
                     files: List[Tuple[int, _Inode, List[str]]],
                     tar: tarfile.TarFile) -> None:
    """Copies FILES' contents from layer INDEX, read member by member;
    FILES are (member ordinal, file, paths).

    For layers with sparse files, whose stored data tarfile expands.
    """
    wanted = {ordinal: (node, paths) for ordinal, node, paths in files}
    for ordinal, (layer_tar, info) in enumerate(layers.members(index)):
        found = wanted.pop(ordinal, None)
        if found is None:
            continue
        node, paths = found
        if not info.isreg() or info.size != node.info.size:
            break
        _add_file(tar, node, paths, layer_tar.extractfile(info))
        if not wanted:
            return
    raise FlattenError('%s changed while it was read' % layers.describe(index))


def _copy_at_offsets(layers: _Layers, index: int,
                     files: List[Tuple[Tuple[int, Optional[int]], _Inode,
                                       List[str]]],
                     tar: tarfile.TarFile) -> None:
    """Copies FILES' contents from layer INDEX by where the first pass found
    them (each is (`_Inode.at`, file, paths)), the layer inflated on a thread
    of its own while they are written.

    tarfile's stream reader costs more than inflating; this reads each
    byte once, in large pieces. Each file's own header block is checked
    on the way, so a layer changed since the first pass is an error.
    """
    where = layers.describe(index)
    changed = FlattenError('%s changed while it was read' % where)
    files = sorted(files, key=lambda found: found[0][0])
    try:
        stream = _ReadAhead(layers.open(index))
    except _READ_ERRORS as e:
        raise FlattenError('%s cannot be read: %s' % (where, _reason(e))) from e
    state = cast(_TarState, tar)
    saved = state.copybufsize
    state.copybufsize = _PIECE
    try:
        with stream:
            position = 0
            for (offset, size), node, paths in files:
                header = offset - tarfile.BLOCKSIZE
                if header < position:
                    raise changed
                stream.skip(header - position)
                block = stream.read(tarfile.BLOCKSIZE)
                try:
                    info = tarfile.TarInfo.frombuf(block, 'utf-8',
                                                   'surrogateescape')
                except tarfile.HeaderError:
                    raise changed from None
                if not info.isreg() or (size is not None and info.size != size):
                    raise changed
                _add_file(tar, node, paths, _Exactly(stream, changed))
                position = offset + node.info.size
    except FlattenError:
        raise
    except _READ_ERRORS as e:
        raise FlattenError('%s cannot be read: %s' % (where, _reason(e))) from e
    finally:
        state.copybufsize = saved


class _Exactly:
    """Reads from STREAM as much as asked for, or raises ERROR.

    tarfile asks for exactly a member's size, so less means the layer
    ended early.
    """

    def __init__(self, stream: '_ReadAhead', error: Exception):
        self._stream = stream
        self._error = error

    def read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) < size:
            raise self._error
        return data


class _ReadAhead:
    """Reads the reader RAW on a thread of its own, up to _AHEAD pieces
    ahead of the consumer (inflating releases the GIL, so it overlaps with
    writing). Errors of RAW's are raised to the consumer where they fall.
    Closing it stops the thread and closes RAW; leaving it on Ctrl-C or
    SIGTERM does not wait for a read stuck on the network.
    """

    def __init__(self, raw):
        self._raw = raw
        self._queue: 'queue.Queue' = queue.Queue(_AHEAD)
        self._stop = threading.Event()
        self._piece = memoryview(b'')
        self._failure: Optional[BaseException] = None
        self._ended = False
        self._thread = threading.Thread(target=self._fill,
                                        name='flatten-read-ahead', daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._raw.read(_PIECE)
                self._put(data)
                if not data:
                    return
        except BaseException as e:  # pylint: disable=broad-except
            self._put(e)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next_piece(self) -> bool:
        """Makes the next piece current; False at the end of the data."""
        if self._failure is not None:
            raise self._failure
        if self._ended:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._failure = item
            raise item
        if not item:
            self._ended = True
            return False
        self._piece = memoryview(item)
        return True

    def read(self, size: int) -> bytes:
        """SIZE bytes, fewer only at the end of the data."""
        parts = []
        while size > 0:
            if not self._piece and not self._next_piece():
                break
            part = self._piece[:size]
            self._piece = self._piece[len(part):]
            parts.append(part)
            size -= len(part)
        return b''.join(parts)

    def skip(self, size: int) -> None:
        """Drops SIZE bytes (fewer at the end of the data)."""
        while size > 0:
            if not self._piece and not self._next_piece():
                return
            n = min(size, len(self._piece))
            self._piece = self._piece[n:]
            size -= n

    def close(self, grace: float = parallel.GRACE_SECONDS) -> None:
        """Stops the thread, waiting GRACE seconds at most, and closes RAW
        unless the thread is still stuck reading it (then both are left to
        the process's end: the thread is a daemon)."""
        self._stop.set()
        self._thread.join(grace)
        if not self._thread.is_alive():
            self._raw.close()

    def __enter__(self) -> '_ReadAhead':
        return self

    def __exit__(self, unused_type, error, unused_traceback) -> None:
        self.close(parallel.grace_for(error))


def _link_groups(entries: List[Tuple[str, _Inode]]) -> Dict[int, List[str]]:
    """The paths of each non-directory object, the one that carries it first.

    That is the path it was created at if it is still there, else its
    first path in output order; the others become hardlinks to it.
    """
    groups: Dict[int, List[str]] = {}
    origins: Dict[int, str] = {}
    for path, node in entries:
        if not node.is_dir:
            groups.setdefault(id(node), []).append(path)
            origins[id(node)] = node.origin
    for key, group in groups.items():
        origin = origins[key]
        if len(group) > 1 and origin in group and group[0] != origin:
            group.remove(origin)
            group.insert(0, origin)
    return groups


def _hardlink(template: tarfile.TarInfo, path: str,
              target: str) -> tarfile.TarInfo:
    """A hardlink PATH -> TARGET with TEMPLATE's metadata."""
    info = _header(template, path)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    info.size = 0
    return info
