"""`FromTarball`: a docker-save tarball read as a v2.2 image.

The work is split by job, each in a module of its own:
`tarball_index` indexes the tar (inflating a compressed outer tar once);
`tarball_manifest` picks the image of manifest.json and synthesizes its
v2.2 manifest; `tarball_layers` makes each layer's blob, several at a time
(a plain member is gzipped with upstream's fixed settings, so digests
match upstream's; a gzipped member passes through, inflated only to hash
its tar); `tarball_diff_ids` checks each tar against the config's diff_id.
This module serves reads: the core (manifest, config, checked blob
streams) and the capabilities it declares (`capabilities`): blobs and
tars in local files (`blob_range`, `uncompressed_range`; with
`keep_tars`, a gzipped member's tar is written out while it is hashed),
layer tars by diff_id, and foreign-layer placeholders (`stand_in`).
Temporary files go when the image is exited; the image stays usable
afterwards and recreates them when needed.

Foreign layers (a Windows base, as rules_docker's join_layers writes it)
keep their `LayerSources` descriptor in the manifest, and the member is
only a placeholder (empty, or the layer's tar as `docker save` writes it),
so its bytes are not the blob. Reading such a blob raises
`ForeignLayerUnavailableError`; its tar is the placeholder's, as upstream
read it (flatten checks it against the diff_id). `stand_in` gives the
placeholder, which the fast layout writes as upstream did.
"""
import io
import json
import threading
from typing import Any, Dict, Optional, Tuple, Union

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import tarball_diff_ids
from containerregistry.client.v2_2 import tarball_index
from containerregistry.client.v2_2 import tarball_layers
from containerregistry.client.v2_2 import tarball_manifest

# The pieces' names callers know from this module.
TarballError = tarball_index.TarballError
OutputError = tarball_index.OutputError
Archive = tarball_index.Archive
Workdir = tarball_index.Workdir
remove_stale_temp_dirs = tarball_index.remove_stale_temp_dirs
DiffIdMismatchError = tarball_diff_ids.DiffIdMismatchError


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
        # _lock guards fields and is held briefly; _populate_lock serializes
        # the manifest synthesis, which waits on compressing threads.
        self._lock = threading.RLock()
        self._populate_lock = threading.Lock()
        self._workdir = Workdir(temp_dir)
        self._archive_index: Optional[Archive] = None
        self._entry: Optional[Dict[str, Any]] = None
        self._config: Optional[str] = None
        self._synthesized: Optional[tarball_manifest.Synthesized] = None
        self._populate_error: Optional[BaseException] = None
        self._layers = tarball_layers.LayerCompressor(
            tarball, self._archive, self._workdir, compresslevel, threads,
            keep_tars)

    def _archive(self) -> Archive:
        with self._lock:
            if self._archive_index is None:
                self._archive_index = Archive(self._tarball, self._workdir)
            return self._archive_index

    def _load(self) -> Dict[str, Any]:
        """The chosen entry of manifest.json."""
        with self._lock:
            if self._entry is None:
                self._entry = tarball_manifest.choose_entry(
                    self._archive(), self._tarball, self._name)
            return self._entry

    def _populate(self) -> tarball_manifest.Synthesized:
        with self._populate_lock:
            if self._synthesized is not None:
                return self._synthesized
            # A failure is final: do not redo the work on the next call.
            if self._populate_error is not None:
                raise self._populate_error
            try:
                self._synthesized = tarball_manifest.synthesize(
                    self._tarball, self._load(), self.config_file(),
                    self._layers)
                return self._synthesized
            except Exception as e:
                self._populate_error = e
                raise

    def _member_for(self, digest: str) -> str:
        member = self._populate().blob_names.get(digest)
        if member is None:
            raise TarballError('%s: the image has no blob %s'
                               % (self._tarball, digest))
        return member

    # The core.

    def manifest(self) -> str:
        return json.dumps(self._populate().manifest, sort_keys=True)

    def media_type(self) -> str:
        return media_types.MANIFEST_SCHEMA2_MIME

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
        return self._populate().sizes[digest]

    # Foreign layers.

    def _foreign(self) -> Dict[str, Tuple[str, Dict[str, Any]]]:
        return self._populate().foreign

    def _foreign_missing(self, digest: str
                         ) -> docker_image.ForeignLayerUnavailableError:
        _, descriptor = self._foreign()[digest]
        return docker_image.ForeignLayerUnavailableError(
            digest, descriptor.get('urls') or [],
            '%s (it holds a placeholder, %s)' % (
                self._tarball, self._member_for(digest)))

    def _holds_foreign_blob(self, digest: str) -> bool:
        """Whether the member of foreign layer DIGEST is that very blob."""
        member = self._member_for(digest)
        if self._archive().lookup(member).size == 0:
            return False
        return self._layers.compress(member).digest == digest

    def stand_in(self, digest: str, compressed: bool):
        """The placeholder of foreign layer DIGEST: gzipped, or its tar.

        An empty placeholder is given as it is (gzipped with the fixed
        settings when COMPRESSED); a tar `docker save` wrote must hash to
        the layer's diff_id, as any other layer's. None when the member is
        the very blob (or DIGEST no foreign layer).
        """
        foreign = self._foreign()
        if digest not in foreign or self._holds_foreign_blob(digest):
            return None
        diff_id, _ = foreign[digest]
        member = self._member_for(digest)
        if self._archive().lookup(member).size == 0:
            if compressed:
                blob = self._layers.compress(member)
                assert blob.path is not None  # an empty member is no gzip
                return open(blob.path, 'rb')  # pylint: disable=consider-using-with
            return io.BytesIO(b'')
        if not compressed:
            return docker_digest.VerifyingReader(
                self._member_stream(member), diff_id,
                'the tar of foreign layer %s' % digest)
        blob = self._layers.compress(member)
        tarball_diff_ids.check_placeholder(self._tarball, member, digest,
                                           blob.diff_id, diff_id)
        if blob.path is not None:
            return open(blob.path, 'rb')  # pylint: disable=consider-using-with
        archive = self._archive()
        return archive.open(archive.lookup(member))

    def blob_stream(self, digest: str):
        if digest == self.config_blob():
            return io.BytesIO(self.config_file().encode('utf8'))
        if digest in self._foreign() and not self._holds_foreign_blob(digest):
            raise self._foreign_missing(digest)
        blob = self._layers.compress(self._member_for(digest))
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
        blob = self._layers.known(self._member_for(digest))
        if blob is None or blob.source is None or blob.digest != digest:
            return None
        if blob.path is not None:
            path, offset, private = blob.path, 0, True
        else:
            archive = self._archive()
            path = archive.path
            offset = archive.lookup(self._member_for(digest)).offset
            private = archive.temporary
        if tarball_layers.identity(path) != blob.source:
            return None
        return docker_image.FileRange(path, offset, blob.size, blob.diff_id,
                                      private)

    def uncompressed_range(self, digest: str) -> Optional[docker_image.FileRange]:
        """The layer's tar in a local file, once hashed to the range's diff_id.

        A plain member is its own tar; a gzipped one has a tar only with
        `keep_tars`. None once the file has changed since it was hashed.
        """
        if digest == self.config_blob() or digest in self._foreign():
            return None
        blob = self._layers.known(self._member_for(digest))
        if blob is None or blob.tar is None or blob.tar_source is None:
            return None
        if tarball_layers.identity(blob.tar.path) != blob.tar_source:
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

    # Layer tars.

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
