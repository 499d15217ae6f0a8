"""Writes images to disk: the puller's fast layout and its uncompressed form.

Layout (read by rules_docker): `config.json`, `manifest.json`, `digest`
(no newline), and per layer, base layer first, `NNN.tar.gz` (or `NNN.tar`)
with `NNN.sha256` holding the bare hex of its digest (or diff_id).

Every blob streams to a temporary file while its sha256 is checked, and is
renamed into place only when it matched (a blob the image has already
checked in a local file, `capabilities.BlobFiles`, is copied by the kernel
instead).
`digest` is removed first and written last, so a directory holding it is
complete; a failed save removes what it wrote.

A foreign layer the image holds only a placeholder for (a tarball built on
a Windows base) is written as that placeholder, unchecked, as upstream
wrote it (`capabilities.StandIns`); `manifest.json` keeps its descriptor.
"""
import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import threading
from typing import Callable, Dict, List, Optional, Tuple

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import file_lock
from containerregistry.client.v2_2 import image_checks
from containerregistry.client.v2_2 import leftovers
from containerregistry.client.v2_2 import parallel
from containerregistry.client.v2_2 import progress

_CHUNK = 1 << 20
# `.NAME.PID@HOST.THREAD.tmp`: a file being written (see `leftovers`).
_TEMP_NAME = leftovers.pattern(r'\..+\.', r'\.\d+\.tmp')

LayerPaths = List[Tuple[str, str]]


def tarball(name, image: docker_image.DockerImage, tar) -> None:
    """Writes IMAGE as a docker-save tarball into the open tarfile TAR."""
    from containerregistry.client.v2_2 import tarball_writer
    tarball_writer.tarball(name, image, tar)


def multi_image_tarball(tag_to_image, tar, tag_to_v1_image=None) -> None:
    """Writes several images as one docker-save tarball into TAR."""
    from containerregistry.client.v2_2 import tarball_writer
    tarball_writer.multi_image_tarball(tag_to_image, tar, tag_to_v1_image)


class _Abandoned(Exception):
    """The save was taken back (interrupted) while a thread still wrote."""


def _temp_name(final: str) -> str:
    """A new temporary name beside FINAL (same filesystem, hidden)."""
    head, tail = os.path.split(final)
    return os.path.join(head, '.%s.%s.%d.tmp' % (tail, leftovers.tag(),
                                                 threading.get_ident()))


class _Output:
    """Files of one save: written under temporary names, then renamed.

    Remembers what it put in place so that a failed save can take it back;
    once it has, nothing more is put in place (threads still running after
    an interrupt cannot add files).
    """

    def __init__(self, directory: str):
        self.directory = directory
        self._lock = threading.Lock()
        self._placed: List[str] = []
        self._temps: List[str] = []
        self._discarded = False

    def remove_leftovers(self, subdirectory: str = '') -> None:
        """Removes temporary files that killed saves left in SUBDIRECTORY."""
        where = os.path.join(self.directory, subdirectory)
        for name in leftovers.remove_abandoned(where, _TEMP_NAME):
            logging.info('Removed %s, left by a save that was killed',
                         os.path.join(where, name))

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def temp(self, final: str) -> str:
        """A new temporary name beside FINAL (same filesystem, hidden)."""
        name = _temp_name(final)
        with self._lock:
            if self._discarded:
                raise _Abandoned()
            self._temps.append(name)
        return name

    def place(self, temp: str, final: str) -> None:
        with self._lock:
            if self._discarded:
                _remove(temp)
                raise _Abandoned()
            os.replace(temp, final)
            if os.path.lexists(temp):
                # Both names were links to one file (a cache inside the
                # output): rename does nothing then.
                _remove(temp)
            self._temps.remove(temp)
            self._placed.append(final)

    def write(self, name: str, data: bytes) -> str:
        final = self.path(name)
        temp = self.temp(final)
        with _create(temp) as f:
            f.write(data)
        self.place(temp, final)
        return final

    def discard(self, keep: Callable[[str], bool] = lambda path: False
                ) -> None:
        """Removes temporary files and what this save placed, except the
        placed files KEEP(path) is true for. Once only: a file removed may
        be another save's by the time of a second call."""
        with self._lock:
            self._discarded = True
            names = self._temps + [p for p in self._placed if not keep(p)]
            self._temps, self._placed = [], []
        for name in names:
            _remove(name)

    def placed(self) -> List[str]:
        with self._lock:
            return list(self._placed)

    def remove_stale(self, earlier: List[str]) -> None:
        """Removes the files of EARLIER (an earlier save's layer files)
        that this save has not put in place again."""
        with self._lock:
            placed = set(self._placed)
        for path in earlier:
            if path not in placed:
                _remove(path)

    def earlier_layer_files(self) -> List[str]:
        """The layer files an earlier save into the directory wrote.

        Read from the `manifest.json` (and `config.json`) it left: layer I
        is `NNN.sha256` and, as that file's digest says, `NNN.tar.gz` (the
        blob's) or `NNN.tar` (the diff_id's). Other files, whatever their
        names, are not a save's.
        """
        try:
            with open(self.path('manifest.json'), 'rb') as f:
                layers = json.load(f)['layers']
            digests = [layer['digest'].split(':', 1)[-1] for layer in layers]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []
        try:
            with open(self.path('config.json'), 'rb') as f:
                diff_ids = [str(d).split(':', 1)[-1] for d in
                            json.load(f)['rootfs']['diff_ids']]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            diff_ids = []
        found = []
        for index, digest in enumerate(digests):
            name = '%03d' % index
            try:
                with open(self.path(name + '.sha256'), 'rb') as f:
                    recorded = f.read().decode('ascii', 'replace')
            except OSError:
                continue
            suffixes = ['.sha256']
            if recorded == digest:
                suffixes.append('.tar.gz')
            if index < len(diff_ids) and recorded == diff_ids[index]:
                suffixes.append('.tar')
            if len(suffixes) > 1:
                found += [self.path(name + suffix) for suffix in suffixes]
        return found


def _create(path: str):
    """Opens a new file for writing, with the umask's permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    return os.fdopen(fd, 'wb')


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def copy_verified(reader, dest: str, digest: str, size: Optional[int],
                   what: str,
                   transfer: Optional[progress.Transfer] = None) -> None:
    """Streams READER into DEST, checking DIGEST (and SIZE) on the way,
    counting each chunk in TRANSFER.

    READER stays open: closing it is the caller's.
    """
    transfer = transfer or progress.uncounted()
    if not isinstance(reader, docker_digest.VerifyingReader):
        reader = docker_digest.VerifyingReader(reader, digest, what)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    written = 0
    with _create(dest) as out:
        while True:
            n = reader.readinto(buf)
            if not n:
                break
            if parallel.cancelled():
                raise parallel.Cancelled()
            written += n
            transfer.add(n)
            if size is not None and written > size:
                raise docker_digest.DigestMismatchedError(
                    'size mismatch for %s: more than the %d bytes the '
                    'manifest gives' % (what, size))
            out.write(view[:n])
    if size is not None and written != size:
        raise docker_digest.DigestMismatchedError(
            'size mismatch for %s: expected %d bytes, got %d'
            % (what, size, written))


# A hard link cannot be made here (other filesystem, not supported, ...).
_NO_LINK = frozenset([errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES,
                      errno.ENOTSUP])

# copy_file_range cannot do these here (old kernel, other filesystem, ...).
_NO_KERNEL_COPY = frozenset([errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                             errno.EOPNOTSUPP, errno.EPERM])


def _copy_range(source: docker_image.FileRange, dest: str, what: str) -> None:
    """Copies SOURCE into the new file DEST inside the kernel when it can."""
    with open(source.path, 'rb') as src, _create(dest) as out:
        left, offset = source.size, source.offset
        kernel = hasattr(os, 'copy_file_range')
        while left:
            n = 0
            if kernel:
                try:
                    n = os.copy_file_range(src.fileno(), out.fileno(),
                                           min(left, 1 << 30), offset)
                except OSError as e:
                    if e.errno not in _NO_KERNEL_COPY:
                        raise
                    kernel = False
            if not kernel:
                src.seek(offset)
                out.seek(source.size - left)
                n = out.write(src.read(min(left, _CHUNK)))
            if not n:
                raise docker_digest.DigestMismatchedError(
                    'size mismatch for %s: %s ends %d bytes early'
                    % (what, source.path, left))
            left -= n
            offset += n


def _place_range(source: docker_image.FileRange, dest: str, what: str) -> None:
    """Puts SOURCE at the new name DEST: a hard link when it is a whole
    private file (the image's own) on the same filesystem, else a copy."""
    if source.private and source.offset == 0:
        try:
            if os.path.getsize(source.path) == source.size:
                os.link(source.path, dest)
                return
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise
    _copy_range(source, dest, what)


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, 'rb') as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return 'sha256:' + h.hexdigest()


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        shutil.copyfile(source, dest)


class _Cache:
    """A content-addressed blob cache shared by concurrent savers.

    Entries are named by the blob's hex digest and published by atomic
    rename only after their digest was checked, so an entry that exists is
    complete; a hit is still re-hashed before use, to catch damage at rest.
    """

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self._directory = directory
        for name in leftovers.remove_abandoned(directory, _TEMP_NAME):
            logging.info('Removed %s from the cache, left by a save that '
                         'was killed', name)

    def path(self, digest: str) -> str:
        docker_digest.check_form(digest, 'a cached blob')
        return os.path.join(self._directory, digest.split(':', 1)[1])

    def lookup(self, digest: str) -> Optional[str]:
        """The entry's path if it exists and is intact, else None.

        A damaged entry is left for `fill` to replace by rename: removing
        it could remove a good copy another saver has just published.
        """
        path = self.path(digest)
        try:
            found = _file_digest(path)
        except FileNotFoundError:
            return None
        if found != digest:
            logging.warning('Cache entry %s is damaged; fetching it again',
                            path)
            return None
        logging.info('Cache hit for %s', digest)
        return path

    def fill(self, digest: str, download: Callable[[str], None]) -> str:
        path = self.path(digest)
        temp = _temp_name(path)
        try:
            download(temp)
            os.replace(temp, path)
        finally:
            _remove(temp)
        return path


def _checked_range(image: docker_image.DockerImage,
                   digest: str) -> Optional[docker_image.FileRange]:
    """Where IMAGE holds blob DIGEST in a local file it checked, if it does."""
    files = image.capability(capabilities.BlobFiles)
    found = files.blob_range(digest) if files else None
    return found if found is not None and found.checked else None


def _write_stand_in(out: _Output, image: docker_image.DockerImage,
                    digest: str, final: str, compressed: bool) -> bool:
    """Writes the placeholder IMAGE holds for DIGEST at FINAL, if it has one."""
    stand_ins = image.capability(capabilities.StandIns)
    reader = stand_ins.stand_in(digest, compressed) if stand_ins else None
    if reader is None:
        return False
    temp = out.temp(final)
    with contextlib.closing(reader), _create(temp) as f:
        shutil.copyfileobj(reader, f, _CHUNK)
    out.place(temp, final)
    return True


def _checked_config(image: docker_image.DockerImage, layers: int) -> str:
    """IMAGE's config, once it is known to fit the manifest's LAYERS."""
    config = image.config_file()
    image_checks.check_config(config, layers, 'the config')
    return config


def _save(image: docker_image.DockerImage, directory: str, threads: int,
          write_layer: Callable[[_Output, int, str], Tuple[str, str]],
          reporter: Optional[progress.Reporter] = None
          ) -> Tuple[str, LayerPaths]:
    os.makedirs(directory, exist_ok=True)
    out = _Output(directory)
    out.remove_leftovers()
    earlier = out.earlier_layer_files()
    _remove(out.path('digest'))
    try:
        layers = list(reversed(image.fs_layers()))
        results: Dict[int, Tuple[str, str]] = {}

        def task(index: int, digest: str) -> Callable[[], None]:
            def run() -> None:
                results[index] = write_layer(out, index, digest)
            return run

        # First, so that no layer is fetched for an image refused.
        config = _checked_config(image, len(layers))
        if reporter:
            sizes = image.descriptor_sizes()
            reporter.expect(sizes.get(d) for d in layers)
        parallel.run_all([task(i, d) for i, d in enumerate(layers)], threads,
                         name='save')

        config_path = out.write('config.json', config.encode('utf8'))
        out.write('manifest.json', image.manifest().encode('utf8'))
        out.remove_stale(earlier)
        out.write('digest', image.digest().encode('utf8'))
        return config_path, [results[i] for i in range(len(layers))]
    except BaseException:
        out.discard()
        raise


_Fetch = Callable[[_Output, str, str, str], None]


def _blob_fetcher(image: docker_image.DockerImage,
                  cache_directory: Optional[str],
                  reporter: progress.Reporter) -> _Fetch:
    """A function that puts blob DIGEST of IMAGE at a final path, verified,
    and tells REPORTER when it is done.

    With a cache, the blob comes from (or goes through) the cache and is
    hardlinked (or copied) into place.
    """
    cache = _Cache(cache_directory) if cache_directory else None
    sizes = image.descriptor_sizes()

    def download(digest: str, what: str, transfer: progress.Transfer
                 ) -> Callable[[str], None]:
        def run(dest: str) -> None:
            checked = _checked_range(image, digest)
            if checked is not None and sizes.get(digest, checked.size) == checked.size:
                _place_range(checked, dest, what)
                transfer.add(checked.size)
                return

            def stream() -> None:
                _remove(dest)
                transfer.restart()
                with contextlib.closing(image.blob_stream(digest)) as blob:
                    copy_verified(blob, dest, digest, sizes.get(digest), what,
                                  transfer)
            docker_digest.fetched_once_more(stream, what)
        return run

    def fetch(out: _Output, digest: str, final: str, what: str) -> None:
        temp = out.temp(final)
        transfer = reporter.transfer(digest, sizes.get(digest))
        note = ''
        if cache:
            cached = cache.lookup(digest)
            if cached:
                note = ' from the cache'
            else:
                cached = cache.fill(digest, download(digest, what, transfer))
            _link_or_copy(cached, temp)
        else:
            download(digest, what, transfer)(temp)
        out.place(temp, final)
        transfer.done('Pulled', note)

    return fetch


def _stand_in_done(image: docker_image.DockerImage, digest: str,
                   reporter: progress.Reporter) -> None:
    """Counts the foreign layer DIGEST, written as its placeholder."""
    reporter.transfer(digest, image.descriptor_sizes().get(digest)).done(
        'Wrote', ' as its placeholder (a foreign layer)')


def fast(image: docker_image.DockerImage, directory: str, threads: int = 1,
         cache_directory: Optional[str] = None,
         reporter: Optional[progress.Reporter] = None
         ) -> Tuple[str, LayerPaths]:
    """Writes IMAGE to DIRECTORY in the fast layout, layers compressed.

    Returns (config path, [(NNN.sha256 path, NNN.tar.gz path), ...]), base
    layer first. With CACHE_DIRECTORY, layers come from and go to a
    content-addressed cache; hits are hardlinked (or copied) into place.
    REPORTER hears of the layers' progress.
    """
    reporter = reporter or progress.Reporter()
    fetch = _blob_fetcher(image, cache_directory, reporter)

    def write_layer(out: _Output, index: int, digest: str) -> Tuple[str, str]:
        name = '%03d' % index
        final = out.path(name + '.tar.gz')
        if _write_stand_in(out, image, digest, final, compressed=True):
            _stand_in_done(image, digest, reporter)
        else:
            fetch(out, digest, final, 'layer %s (%s)' % (name, digest))
        digest_path = out.write(name + '.sha256',
                                digest.split(':', 1)[1].encode('ascii'))
        return digest_path, final

    return _save(image, directory, threads, write_layer, reporter)


OCI_REF_NAME = 'org.opencontainers.image.ref.name'


class _LayoutWrite:
    """One pull into an OCI layout: blobs first, then one `index.json`
    entry, written holding the lock `index.json.lock` so that concurrent
    pulls into one layout keep each other's entries. `abandon` takes back
    the blobs placed, except those the index names (a concurrent pull may
    share them)."""

    def __init__(self, directory: str, cache_directory: Optional[str],
                 reporter: progress.Reporter):
        self.blobs = os.path.join(directory, 'blobs', 'sha256')
        self._made = [path for path in (os.path.dirname(self.blobs),
                                        self.blobs)
                      if not os.path.isdir(path)]
        os.makedirs(self.blobs, exist_ok=True)
        self.out = _Output(directory)
        self.out.remove_leftovers()
        self.out.remove_leftovers(os.path.join('blobs', 'sha256'))
        self._cache_directory = cache_directory
        self._reporter = reporter
        # Digest -> the bytes (manifests, configs), or None (fetched).
        self._written: Dict[str, Optional[bytes]] = {}
        self._fetchers: Dict[str, Callable[[], None]] = {}

    def _path(self, digest: str) -> str:
        docker_digest.check_form(digest, 'a blob of the layout')
        return os.path.join(self.blobs, digest.split(':', 1)[1])

    def _intact(self, digest: str) -> bool:
        """Whether the layout already holds DIGEST, undamaged."""
        try:
            return _file_digest(self._path(digest)) == digest
        except OSError:
            return False

    def _put(self, digest: str) -> None:
        data = self._written[digest]
        if data is None:
            self._fetchers[digest]()
        else:
            self.out.write(os.path.relpath(self._path(digest),
                                           self.out.directory), data)

    def _put_unless_intact(self, digest: str) -> None:
        if not self._intact(digest):
            self._put(digest)

    def fetch_layers(self, images: List[docker_image.DockerImage],
                     threads: int) -> None:
        """Puts the layers of IMAGES in place (in parallel), each verified."""
        tasks = []
        sizes: Dict[str, Optional[int]] = {}
        for image in images:
            fetch = _blob_fetcher(image, self._cache_directory, self._reporter)
            image_sizes = image.descriptor_sizes()
            for digest in sorted(set(image.fs_layers()) - set(self._written)):
                self._written[digest] = None
                sizes[digest] = image_sizes.get(digest)
                self._fetchers[digest] = functools.partial(
                    fetch, self.out, digest, self._path(digest),
                    'layer %s' % digest)
                tasks.append(functools.partial(self._layer_unless_intact,
                                               digest, sizes[digest]))
        self._reporter.expect(sizes.values())
        parallel.run_all(tasks, threads, name='save')

    def _layer_unless_intact(self, digest: str, size: Optional[int]) -> None:
        if self._intact(digest):
            self._reporter.transfer(digest, size).done(
                'Found', ' already in the layout')
        else:
            self._put(digest)

    def put_document(self, data: bytes) -> str:
        """Puts DATA (a manifest or config) in place; returns its digest."""
        digest = docker_digest.SHA256(data)
        if digest not in self._written:
            self._written[digest] = data
            self._put_unless_intact(digest)
        return digest

    def commit(self, entry: Dict, ref_name: Optional[str]) -> None:
        """Adds ENTRY to the index, once every blob is in place."""
        with file_lock.exclusive(self.out.path(INDEX_LOCK)):
            try:
                # A concurrent pull that failed may have taken back a blob
                # this one found in place and skipped.
                for digest in self._written:
                    if not os.path.isfile(self._path(digest)):
                        self._put(digest)
                _add_to_index(self.out, entry, ref_name)
            except BaseException:
                _discard_unreferenced(self.out, self.blobs)
                raise

    def abandon(self) -> None:
        if self.out.placed():
            try:
                with file_lock.exclusive(self.out.path(INDEX_LOCK),
                                         _CLEANUP_LOCK_WAIT):
                    _discard_unreferenced(self.out, self.blobs)
            except file_lock.LockTimeout:
                # Blobs are complete and checked: keeping them is harmless.
                self.out.discard(keep=lambda path: path.startswith(self.blobs))
        else:
            self.out.discard()
        for path in reversed(self._made):
            try:
                os.rmdir(path)
            except OSError:
                pass


def _index_entry(media_type: str, manifest: bytes,
                 ref_name: Optional[str]) -> Dict:
    entry = {'mediaType': media_type,
             'digest': docker_digest.SHA256(manifest),
             'size': len(manifest)}
    if ref_name:
        entry['annotations'] = {OCI_REF_NAME: ref_name}
    return entry


def oci_layout(image: docker_image.DockerImage, directory: str,
               threads: int = 1, cache_directory: Optional[str] = None,
               ref_name: Optional[str] = None,
               reporter: Optional[progress.Reporter] = None) -> str:
    """Writes IMAGE into an OCI image layout at DIRECTORY.

    A Docker schema 2 image is relabelled with OCI media types (blobs are
    unchanged), since OCI tools read only those. The layout may already hold
    other images: `index.json` gains (or replaces) the entry named REF_NAME,
    and is written last (see `_LayoutWrite`). A failed pull removes the
    blobs it placed, except those the index names. REPORTER hears of the
    layers' progress. Returns the digest of the manifest written.
    """
    from containerregistry.client.v2_2 import media_types
    from containerregistry.client.v2_2 import oci_compat
    if image.media_type() == media_types.MANIFEST_SCHEMA2_MIME:
        image = oci_compat.OCIFromV22(image)
    return _into_layout(directory, cache_directory, ref_name,
                        image.media_type(),
                        lambda layout: _write_whole(layout, image, threads),
                        reporter)


def _into_layout(directory: str, cache_directory: Optional[str],
                 ref_name: Optional[str], media_type: str,
                 write: Callable[[_LayoutWrite], bytes],
                 reporter: Optional[progress.Reporter] = None) -> str:
    """Runs WRITE (which puts a manifest and its blobs into the layout at
    DIRECTORY and returns the manifest) and adds its entry to the index;
    a failure takes it all back. Returns the manifest's digest."""
    layout = _LayoutWrite(directory, cache_directory,
                          reporter or progress.Reporter())
    try:
        manifest = write(layout)
        entry = _index_entry(media_type, manifest, ref_name)
        layout.commit(entry, ref_name)
        return entry['digest']
    except BaseException:
        layout.abandon()
        raise


class IncompleteListError(Exception):
    """A list names a manifest that cannot be kept in the layout."""


# Lists within lists followed before giving up.
_MAX_LIST_NESTING = 4


def _plan(whole, include_attestations: bool, opened: contextlib.ExitStack,
          images: List[docker_image.DockerImage], documents: List[bytes],
          depth: int = 0) -> bytes:
    """Opens the images of WHOLE (an image, or a list and the children it
    names) into IMAGES, and gathers their configs and manifests (and the
    lists') into DOCUMENTS, each checked against the digest naming it.
    Returns WHOLE's manifest, as served."""
    from containerregistry.client.v2_2 import docker_image_list
    if not isinstance(whole, docker_image_list.DockerImageList):
        # First, so that no layer is fetched for an image refused.
        config = _checked_config(whole, len(whole.fs_layers())).encode('utf8')
        docker_digest.check(whole.config_blob(), docker_digest.SHA256(config),
                            'config')
        images.append(whole)
        manifest = whole.manifest().encode('utf8')
        documents.extend([config, manifest])
        return manifest
    if depth >= _MAX_LIST_NESTING:
        raise IncompleteListError('lists nest more than %d deep'
                                  % _MAX_LIST_NESTING)
    for descriptor, child in whole.entries():
        if (docker_image_list.is_attestation(descriptor)
                and not include_attestations):
            logging.info('Leaving out attestation %s', descriptor['digest'])
            continue
        if child is None:
            raise IncompleteListError(
                'the list names %s of media type %s, which cannot be copied'
                % (descriptor.get('digest'), descriptor.get('mediaType')))
        written = _plan(opened.enter_context(child), include_attestations,
                        opened, images, documents, depth + 1)
        docker_digest.check(descriptor['digest'],
                            docker_digest.SHA256(written),
                            'manifest %s' % descriptor['digest'])
    manifest = whole.manifest().encode('utf8')
    documents.append(manifest)
    return manifest


def _write_whole(layout: _LayoutWrite, whole, threads: int,
                 include_attestations: bool = False) -> bytes:
    """Puts WHOLE (see `_plan`) into LAYOUT, bytes as served: the layers of
    all its images at once, then configs and manifests. Returns WHOLE's
    manifest."""
    with contextlib.ExitStack() as opened:
        images: List[docker_image.DockerImage] = []
        documents: List[bytes] = []
        manifest = _plan(whole, include_attestations, opened, images,
                         documents)
        layout.fetch_layers(images, threads)
        for document in documents:
            layout.put_document(document)
        return manifest


def oci_layout_whole(whole, directory: str, threads: int = 1,
                     cache_directory: Optional[str] = None,
                     ref_name: Optional[str] = None,
                     include_attestations: bool = False,
                     reporter: Optional[progress.Reporter] = None) -> str:
    """Writes WHOLE, a manifest list or index with every image it names
    (or one image), into an OCI image layout at DIRECTORY, byte for byte.

    Nothing is relabelled: the `index.json` entry names the manifest with
    the digest and media type the registry serves (a Docker manifest list
    stays one), and every child manifest keeps its digest. Attestation
    entries stay in the list, but their manifests and blobs are written
    only with INCLUDE_ATTESTATIONS. Returns the digest of WHOLE.
    """
    return _into_layout(directory, cache_directory, ref_name,
                        whole.media_type(),
                        lambda layout: _write_whole(layout, whole, threads,
                                                    include_attestations),
                        reporter)


# Beside `index.json`: pulls into one layout take turns with the index.
INDEX_LOCK = 'index.json.lock'
# A failed pull waits this long to clean up, then keeps its blobs.
_CLEANUP_LOCK_WAIT = 5.0


def _add_to_index(out: _Output, entry: Dict,
                  ref_name: Optional[str]) -> None:
    """Adds ENTRY to the layout's index (the caller holds its lock)."""
    if not os.path.isfile(out.path('oci-layout')):
        out.write('oci-layout', b'{"imageLayoutVersion": "1.0.0"}')
    out.write('index.json', json.dumps(
        _merged_index(out.path('index.json'), entry, ref_name),
        sort_keys=True).encode('utf8'))


def _discard_unreferenced(out: _Output, blobs: str) -> None:
    """Takes back a failed pull, but keeps the blobs in BLOBS (directory)
    that the layout's index names (the caller holds the index's lock)."""
    try:
        referenced = _referenced_blobs(out.path('index.json'), blobs)
    except (OSError, ValueError):
        referenced = None  # unreadable: keep every blob
    out.discard(keep=lambda path: path.startswith(blobs) and (
        referenced is None or os.path.basename(path) in referenced))


def _referenced_blobs(index_path: str, blobs: str) -> set:
    """Hex digests of the blobs the index at INDEX_PATH reaches, through
    its manifests and nested indexes."""
    seen: set = set()
    try:
        with open(index_path, 'rb') as f:
            pending = [json.load(f)]
    except FileNotFoundError:
        return seen
    while pending:
        document = pending.pop()
        if not isinstance(document, dict):
            continue
        descriptors = list(document.get('manifests') or [])
        children = {d.get('digest') for d in descriptors
                    if isinstance(d, dict)}
        descriptors += list(document.get('layers') or [])
        descriptors.append(document.get('config'))
        for descriptor in descriptors:
            if not isinstance(descriptor, dict):
                continue
            hex_digest = str(descriptor.get('digest', '')).split(':')[-1]
            if not hex_digest or hex_digest in seen:
                continue
            seen.add(hex_digest)
            if descriptor.get('digest') in children:
                try:
                    with open(os.path.join(blobs, hex_digest), 'rb') as f:
                        pending.append(json.load(f))
                except (OSError, ValueError):
                    pass
    return seen


def _merged_index(path: str, entry: Dict, ref_name: Optional[str]) -> Dict:
    """The layout's index with ENTRY added, replacing one of the same name."""
    try:
        with open(path, 'rb') as f:
            index = json.load(f)
    except FileNotFoundError:
        index = {}
    except ValueError as e:
        raise ValueError('%s is not valid JSON: %s' % (path, e)) from e
    kept = [m for m in index.get('manifests', [])
            if m.get('digest') != entry['digest']
            and not (ref_name and
                     (m.get('annotations') or {}).get(OCI_REF_NAME) == ref_name)]
    index['schemaVersion'] = 2
    index['manifests'] = kept + [entry]
    return index


def _place_checked_tar(image: docker_image.DockerImage, digest: str,
                       diff_id: Optional[str], dest: str, what: str) -> bool:
    """Links or copies the tar of blob DIGEST into DEST, if IMAGE has it.

    Only when IMAGE holds that tar in a local file whose bytes it hashed to
    DIFF_ID (`uncompressed_range`), unchanged after the copy. Otherwise
    (False) DEST is gone and the caller inflates the blob.
    """
    tars = image.capability(capabilities.TarFiles)
    tar = tars.uncompressed_range(digest) if tars else None
    if tar is None or diff_id is None or tar.diff_id != diff_id:
        return False
    try:
        _place_range(tar, dest, what)
        if tars.uncompressed_range(digest) == tar:
            return True
    except (OSError, docker_digest.DigestMismatchedError):
        logging.debug('placing the checked tar of %s failed', digest,
                      exc_info=True)
    _remove(dest)
    return False


def _inflate_checked(image: docker_image.DockerImage, digest: str,
                     diff_id: Optional[str], dest: str) -> bool:
    """Inflates blob DIGEST into the new file DEST without hashing it again.

    Only when IMAGE has hashed these very bytes in a local file and found
    that they inflate to DIFF_ID (`blob_range`), and they are unchanged
    after the copy. Otherwise (False) DEST is gone and the caller reads
    and checks the blob as usual.
    """
    from containerregistry.client.v2_2 import compression
    checked = _checked_range(image, digest)
    if checked is None or diff_id is None or checked.diff_id != diff_id:
        return False
    try:
        reader, _ = compression.gunzip_if_compressed(checked.open())
        with contextlib.closing(reader), _create(dest) as out:
            shutil.copyfileobj(reader, out, _CHUNK)
        if _checked_range(image, digest) == checked:
            return True
    except Exception:  # pylint: disable=broad-except
        # The file changed under us: the checked read says how.
        logging.debug('inflating checked %s failed', digest, exc_info=True)
    _remove(dest)
    return False


def uncompressed(image: docker_image.DockerImage, directory: str,
                 threads: int = 1) -> Tuple[str, LayerPaths]:
    """Writes IMAGE to DIRECTORY with uncompressed `NNN.tar` layers.

    Each `NNN.sha256` then holds the layer's diff_id. Both the blob digest
    and the diff_id are checked as the layer streams through, unless the
    image has checked these very bytes already (see `_place_checked_tar`
    and `_inflate_checked`).
    """
    from containerregistry.client.v2_2 import compression
    diff_ids = list(reversed(image.diff_ids()))
    fs_layers = list(reversed(image.fs_layers()))
    by_digest = dict(zip(fs_layers, diff_ids))

    def write_layer(out: _Output, index: int, digest: str) -> Tuple[str, str]:
        name = '%03d' % index
        final = out.path(name + '.tar')
        diff_id = by_digest.get(digest)
        hex_id = (diff_id or '').split(':', 1)[-1]
        if _write_stand_in(out, image, digest, final, compressed=False):
            return out.write(name + '.sha256', hex_id.encode('ascii')), final
        temp = out.temp(final)
        what = 'layer %s (%s)' % (name, digest)
        if (not _place_checked_tar(image, digest, diff_id, temp, what)
                and not _inflate_checked(image, digest, diff_id, temp)):
            blob = docker_digest.VerifyingReader(image.blob_stream(digest),
                                                 digest, what)
            # Closing the inflater closes BLOB too.
            reader, _ = compression.gunzip_if_compressed(blob)
            with contextlib.closing(reader):
                if diff_id:
                    copy_verified(reader, temp, diff_id, None,
                                   'diff_id of ' + what)
                else:
                    with _create(temp) as f:
                        shutil.copyfileobj(reader, f, _CHUNK)
                # Drain what the inflater left, so the blob digest is checked.
                while blob.read(_CHUNK):
                    pass
        out.place(temp, final)
        digest_path = out.write(name + '.sha256', hex_id.encode('ascii'))
        return digest_path, final

    return _save(image, directory, threads, write_layer)

