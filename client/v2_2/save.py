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
import concurrent.futures
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
                   what: str) -> None:
    """Streams READER into DEST, checking DIGEST (and SIZE) on the way.

    READER stays open: closing it is the caller's.
    """
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
            written += n
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


def _run_parallel(threads: int, tasks: List[Callable[[], None]]) -> None:
    """Runs TASKS on THREADS threads; the first failure stops the rest.

    On Ctrl-C or SIGTERM the tasks still running are not waited for (one
    may be stuck on the network): the caller's cleanup goes first.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max(1, threads))
    try:
        futures = [pool.submit(task) for task in tasks]
        for future in concurrent.futures.as_completed(futures):
            future.result()
    except Exception:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


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
          write_layer: Callable[[_Output, int, str], Tuple[str, str]]
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
        _run_parallel(threads, [task(i, d) for i, d in enumerate(layers)])

        config_path = out.write('config.json', config.encode('utf8'))
        out.write('manifest.json', image.manifest().encode('utf8'))
        out.remove_stale(earlier)
        out.write('digest', image.digest().encode('utf8'))
        return config_path, [results[i] for i in range(len(layers))]
    except BaseException:
        out.discard()
        raise


def _blob_fetcher(image: docker_image.DockerImage,
                  cache_directory: Optional[str]
                  ) -> Callable[[_Output, str, str, str], None]:
    """A function that puts blob DIGEST of IMAGE at a final path, verified.

    With a cache, the blob comes from (or goes through) the cache and is
    hardlinked (or copied) into place.
    """
    cache = _Cache(cache_directory) if cache_directory else None
    sizes = image.descriptor_sizes()

    def download(digest: str, what: str) -> Callable[[str], None]:
        def run(dest: str) -> None:
            checked = _checked_range(image, digest)
            if checked is not None and sizes.get(digest, checked.size) == checked.size:
                _place_range(checked, dest, what)
                return

            def stream() -> None:
                _remove(dest)
                with contextlib.closing(image.blob_stream(digest)) as blob:
                    copy_verified(blob, dest, digest, sizes.get(digest), what)
            docker_digest.fetched_once_more(stream, what)
        return run

    def fetch(out: _Output, digest: str, final: str, what: str) -> None:
        temp = out.temp(final)
        if cache:
            cached = cache.lookup(digest) or cache.fill(
                digest, download(digest, what))
            _link_or_copy(cached, temp)
        else:
            download(digest, what)(temp)
        out.place(temp, final)

    return fetch


def fast(image: docker_image.DockerImage, directory: str, threads: int = 1,
         cache_directory: Optional[str] = None) -> Tuple[str, LayerPaths]:
    """Writes IMAGE to DIRECTORY in the fast layout, layers compressed.

    Returns (config path, [(NNN.sha256 path, NNN.tar.gz path), ...]), base
    layer first. With CACHE_DIRECTORY, layers come from and go to a
    content-addressed cache; hits are hardlinked (or copied) into place.
    """
    fetch = _blob_fetcher(image, cache_directory)

    def write_layer(out: _Output, index: int, digest: str) -> Tuple[str, str]:
        name = '%03d' % index
        final = out.path(name + '.tar.gz')
        if not _write_stand_in(out, image, digest, final, compressed=True):
            fetch(out, digest, final, 'layer %s (%s)' % (name, digest))
        digest_path = out.write(name + '.sha256',
                                digest.split(':', 1)[1].encode('ascii'))
        return digest_path, final

    return _save(image, directory, threads, write_layer)


OCI_REF_NAME = 'org.opencontainers.image.ref.name'


def oci_layout(image: docker_image.DockerImage, directory: str,
               threads: int = 1, cache_directory: Optional[str] = None,
               ref_name: Optional[str] = None) -> str:
    """Writes IMAGE into an OCI image layout at DIRECTORY.

    A Docker schema 2 image is relabelled with OCI media types (blobs are
    unchanged), since OCI tools read only those. The layout may already hold
    other images: `index.json` gains (or replaces) the entry named REF_NAME,
    and is written last, holding the lock `index.json.lock` so that
    concurrent pulls into one layout keep each other's entries. A failed
    pull removes the blobs it placed, except those the index names (a
    concurrent pull may share them). Returns the digest of the manifest
    written.
    """
    from containerregistry.client.v2_2 import docker_http
    from containerregistry.client.v2_2 import oci_compat
    if image.media_type() == docker_http.MANIFEST_SCHEMA2_MIME:
        image = oci_compat.OCIFromV22(image)
    blobs = os.path.join(directory, 'blobs', 'sha256')
    made = [path for path in (os.path.dirname(blobs), blobs)
            if not os.path.isdir(path)]
    os.makedirs(blobs, exist_ok=True)
    out = _Output(directory)
    out.remove_leftovers()
    out.remove_leftovers(os.path.join('blobs', 'sha256'))
    fetch = _blob_fetcher(image, cache_directory)

    def blob_path(digest: str) -> str:
        docker_digest.check_form(digest, 'a blob of the layout')
        return os.path.join(blobs, digest.split(':', 1)[1])

    def intact(digest: str) -> bool:
        """Whether the layout already holds DIGEST, undamaged."""
        try:
            return _file_digest(blob_path(digest)) == digest
        except OSError:
            return False

    def put(digest: str, data: Optional[bytes] = None) -> None:
        """Writes blob DIGEST: DATA, or the image's blob, fetched."""
        if data is None:
            fetch(out, digest, blob_path(digest), 'layer %s' % digest)
        else:
            out.write(os.path.relpath(blob_path(digest), directory), data)

    def put_unless_intact(digest: str, data: Optional[bytes] = None) -> None:
        if not intact(digest):
            put(digest, data)

    try:
        layers = sorted(set(image.fs_layers()))
        config_bytes = _checked_config(
            image, len(image.fs_layers())).encode('utf8')
        _run_parallel(threads, [functools.partial(put_unless_intact, d)
                                for d in layers])
        docker_digest.check(image.config_blob(),
                            docker_digest.SHA256(config_bytes), 'config')
        manifest = image.manifest().encode('utf8')
        digest = docker_digest.SHA256(manifest)
        small = {docker_digest.SHA256(config_bytes): config_bytes,
                 digest: manifest}
        for blob_digest, data in small.items():
            put_unless_intact(blob_digest, data)
        entry = {'mediaType': image.media_type(), 'digest': digest,
                 'size': len(manifest)}
        if ref_name:
            entry['annotations'] = {OCI_REF_NAME: ref_name}
        with file_lock.exclusive(out.path(INDEX_LOCK)):
            try:
                # A concurrent pull that failed may have taken back a blob
                # this one found in place and skipped.
                for blob_digest in layers + list(small):
                    if not os.path.isfile(blob_path(blob_digest)):
                        put(blob_digest, small.get(blob_digest))
                _add_to_index(out, entry, ref_name)
            except BaseException:
                _discard_unreferenced(out, blobs)
                raise
        return digest
    except BaseException:
        if out.placed():
            try:
                with file_lock.exclusive(out.path(INDEX_LOCK),
                                         _CLEANUP_LOCK_WAIT):
                    _discard_unreferenced(out, blobs)
            except file_lock.LockTimeout:
                # Blobs are complete and checked: keeping them is harmless.
                out.discard(keep=lambda path: path.startswith(blobs))
        else:
            out.discard()
        for path in reversed(made):
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise


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

