"""`FromOCILayout`: an image in an OCI image layout directory.

Reads what `puller.par --format oci`, `skopeo copy ... oci:DIR:TAG` and
umoci write. The manifest is served as the layout stores it, so `digest()`
is the digest `index.json` names, and a push publishes exactly those bytes.
The image is picked by its `org.opencontainers.image.ref.name` annotation
(needed only when the index holds more than one entry); an entry that is
itself an index (skopeo's `copy --all`) resolves to its linux/amd64 image,
as lists do elsewhere in the project. `open_layout` instead gives such an
entry whole, as a `FromOCILayoutIndex` of every image it names, which the
pusher publishes byte for byte (the same index digest).

The source implements only the core (manifest, media type, config, a blob
stream that checks its digest as it is read, sizes from the descriptors);
everything else comes from `DockerImage`.
"""
import io
import json
import os
import threading
from typing import Any, Dict, Optional, Tuple, Union

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import docker_image_list
from containerregistry.client.v2_2 import json_docs
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import platform

REF_NAME = 'org.opencontainers.image.ref.name'
# Indexes within indexes followed before giving up (skopeo writes one level).
_MAX_NESTING = 4


class OCILayoutError(ValueError):
    """The layout is missing, malformed, or lacks what was asked for."""


def _check_descriptor(desc: Any, what: str) -> Dict[str, Any]:
    """DESC, if it is a descriptor with a sha256 digest and a byte size."""
    if not isinstance(desc, dict):
        raise OCILayoutError('%s is not a descriptor (a JSON object)' % what)
    try:
        docker_digest.check_form(desc.get('digest'), what)
    except docker_digest.BadDigestError as e:
        raise OCILayoutError(str(e)) from e
    size = desc.get('size')
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise OCILayoutError('%s (%s) has an invalid size %s'
                             % (what, desc['digest'], json.dumps(size)[:40]))
    return desc


def _parse(data: bytes, what: str) -> Dict[str, Any]:
    try:
        parsed = json.loads(data.decode('utf8'))
    except (UnicodeDecodeError, ValueError) as e:
        raise OCILayoutError('%s is not valid JSON: %s' % (what, e)) from e
    if not isinstance(parsed, dict):
        raise OCILayoutError('%s is not a JSON object' % what)
    return parsed


def _own_media_type(manifest: Dict[str, Any]) -> str:
    """What a manifest that its descriptor does not type says it is."""
    if manifest.get('mediaType'):
        return manifest['mediaType']
    if 'manifests' in manifest:
        return media_types.OCI_IMAGE_INDEX_MIME
    return media_types.OCI_MANIFEST_MIME


def _identity(stat: os.stat_result) -> Tuple[int, int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class _Reader(docker_digest.VerifyingReader):
    """A verifying reader that reports a blob found intact: its end of
    data is reached only once the digest and size have matched."""

    def __init__(self, file, digest: str, what: str, size: int, verified):
        super().__init__(file, digest, what, size)
        self._verified = verified

    def read(self, amt: Optional[int] = None) -> bytes:
        data = super().read(amt)
        if not data or amt is None or amt < 0:
            self._verified()
        return data

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer)
        if not n:
            self._verified()
        return n


class FromOCILayout(docker_image.StreamingImage, capabilities.BlobFiles):
    """The image REF names in the OCI image layout at DIRECTORY.

    With DESCRIPTOR, the image it names in the layout's blobs instead
    (a child of an index; `index.json` is not read).
    """

    def __init__(self, directory: str, ref: Optional[str] = None,
                 descriptor: Optional[Dict[str, Any]] = None):
        self._start(directory)
        if descriptor is None:
            data, entry = self._resolve(self._entry(ref))
        else:
            data, entry = self._typed(descriptor)
            if entry['mediaType'] not in media_types.SUPPORTED_MANIFEST_MIMES:
                raise self._unsupported(entry)
        self._media_type: str = entry['mediaType']
        self._manifest = data.decode('utf8')
        manifest = _parse(data, self._what())
        self._config_descriptor = _check_descriptor(
            manifest.get('config'), 'the config of %s' % self._what())
        self._descriptors = self._check_manifest(manifest)
        self._config = self._read_blob(self._config_descriptor,
                                       'config').decode('utf8')

    def _start(self, directory: str) -> None:
        self._directory = directory
        self._root = os.path.realpath(directory)
        self._lock = threading.Lock()
        self._intact: Dict[str, Tuple[int, int, int, int]] = {}

    @classmethod
    def _reader(cls, directory: str) -> 'FromOCILayout':
        """An instance that only reads the layout's files and blobs (for
        `open_layout`); it is no image until a manifest is loaded."""
        reader = cls.__new__(cls)
        reader._start(directory)
        return reader

    def _what(self) -> str:
        return 'the manifest in %s' % self._directory

    def _entry(self, ref: Optional[str]) -> Dict[str, Any]:
        """The `index.json` entry named REF, once the layout is found to
        be one."""
        directory = self._directory
        if not os.path.isdir(directory):
            raise OCILayoutError(
                'OCI layout %s %s' % (directory, 'is not a directory'
                                      if os.path.exists(directory)
                                      else 'does not exist'))
        layout = _parse(self._read_file('oci-layout'),
                        'oci-layout of %s' % directory)
        if not isinstance(layout.get('imageLayoutVersion'), str):
            raise OCILayoutError('oci-layout of %s has no imageLayoutVersion'
                                 % directory)
        index = _parse(self._read_file('index.json'),
                       'index.json of %s' % directory)
        return self._pick(index, ref)

    def _unsupported(self, entry: Dict[str, Any]) -> OCILayoutError:
        return OCILayoutError(
            'the manifest %s in %s has media type %s; supported: %s'
            % (entry['digest'], self._directory, entry['mediaType'],
               ', '.join(media_types.SUPPORTED_MANIFEST_MIMES
                         + media_types.MANIFEST_LIST_MIMES)))

    def _typed(self, entry: Dict[str, Any]) -> Tuple[bytes, Dict[str, Any]]:
        """The manifest ENTRY names, and ENTRY with its media type."""
        data = self._read_blob(entry, 'manifest')
        media_type = entry.get('mediaType') or _own_media_type(
            _parse(data, 'manifest %s' % entry['digest']))
        return data, dict(entry, mediaType=media_type)

    def _read_file(self, name: str) -> bytes:
        path = os.path.join(self._directory, name)
        try:
            with open(path, 'rb') as f:
                return json_docs.read_capped(f, path, OCILayoutError)
        except FileNotFoundError:
            raise OCILayoutError('%s is not an OCI image layout: it has no %s'
                                 % (self._directory, name)) from None
        except OSError as e:
            raise OCILayoutError('cannot read %s: %s'
                                 % (path, e.strerror or e)) from e

    def _pick(self, index: Dict[str, Any], ref: Optional[str]
              ) -> Dict[str, Any]:
        """The index.json entry named REF (the only entry if REF is None)."""
        entries = index.get('manifests')
        if not isinstance(entries, list):
            raise OCILayoutError('index.json of %s has no manifests list'
                                 % self._directory)
        names = [(e.get('annotations') or {}).get(REF_NAME)
                 if isinstance(e, dict) else None for e in entries]
        listed = ', '.join(sorted(set(n for n in names if n))) or 'none'
        if ref is None:
            if len(entries) != 1:
                raise OCILayoutError(
                    'OCI layout %s holds %d images; name one by ref (its '
                    'refs: %s)' % (self._directory, len(entries), listed))
            return _check_descriptor(entries[0], 'the entry of index.json')
        found = [e for e, n in zip(entries, names) if n == ref]
        if len(found) != 1:
            raise OCILayoutError(
                '%s image named %r in OCI layout %s (its refs: %s)'
                % ('no' if not found else 'more than one', ref,
                   self._directory, listed))
        return _check_descriptor(found[0], 'the entry named %r' % ref)

    def _resolve(self, entry: Dict[str, Any]
                 ) -> Tuple[bytes, Dict[str, Any]]:
        """The manifest ENTRY leads to and its descriptor.

        An index entry goes on to its first image for linux/amd64.
        """
        target = platform.Platform()
        for _ in range(_MAX_NESTING):
            data, entry = self._typed(entry)
            media_type = entry['mediaType']
            if media_type in media_types.SUPPORTED_MANIFEST_MIMES:
                return data, entry
            if media_type not in media_types.MANIFEST_LIST_MIMES:
                raise self._unsupported(entry)
            children = _parse(data, 'index %s' % entry['digest']).get(
                'manifests')
            matching = [c for c in children or [] if isinstance(c, dict)
                        and target.can_run(platform.Platform(
                            c.get('platform') or {}))]
            if not matching:
                raise OCILayoutError('index %s in %s has no image for '
                                     'linux/amd64' % (entry['digest'],
                                                      self._directory))
            entry = _check_descriptor(matching[0], 'an entry of index %s'
                                      % entry['digest'])
        raise OCILayoutError('indexes in %s nest more than %d deep'
                             % (self._directory, _MAX_NESTING))

    def _check_manifest(self, manifest: Dict[str, Any]
                        ) -> Dict[str, Dict[str, Any]]:
        """Digest -> descriptor of the config and layers; checks them all.

        Layer files must be there, with the size their descriptor gives
        (foreign layers may be absent), so a push fails before it starts.
        """
        declared = manifest.get('mediaType')
        if declared is not None and declared != self._media_type:
            raise OCILayoutError('%s says its media type is %s, index.json '
                                 'says %s' % (self._what(), declared,
                                              self._media_type))
        layers = manifest.get('layers')
        if not isinstance(layers, list):
            raise OCILayoutError('%s has no layers list' % self._what())
        descriptors = {}
        for i, layer in enumerate(layers):
            layer = _check_descriptor(layer, 'layer %d of %s'
                                      % (i, self._what()))
            descriptors[layer['digest']] = layer
            try:
                size = os.stat(self._blob_path(layer['digest'])).st_size
            except FileNotFoundError:
                if layer.get('mediaType') in (
                        media_types.NON_DISTRIBUTABLE_LAYER_MIMES):
                    continue
                raise self._missing(layer['digest'], 'layer') from None
            if size != layer['size']:
                raise OCILayoutError(
                    'layer %s in %s is %d bytes; its descriptor says %d'
                    % (layer['digest'], self._directory, size, layer['size']))
        descriptors[self._config_descriptor['digest']] = (
            self._config_descriptor)
        return descriptors

    def _missing(self, digest: str, what: str) -> OCILayoutError:
        return OCILayoutError('the %s blob %s is missing from OCI layout %s'
                              % (what, digest, self._directory))

    def _blob_path(self, digest: str) -> str:
        """blobs/sha256/<hex> of the layout; never a file outside it."""
        path = os.path.join(self._directory, 'blobs', 'sha256',
                            digest.split(':', 1)[1])
        if not os.path.realpath(path).startswith(self._root + os.sep):
            raise OCILayoutError('blob %s of %s leads outside the layout'
                                 % (digest, self._directory))
        return path

    def _open(self, desc: Dict[str, Any], what: str):
        digest = desc['digest']
        try:
            file = open(self._blob_path(digest), 'rb')  # pylint: disable=consider-using-with
        except FileNotFoundError:
            raise self._missing(digest, what) from None
        except OSError as e:
            raise OCILayoutError('cannot read the %s blob %s in %s: %s' % (
                what, digest, self._directory, e.strerror or e)) from e
        seen = _identity(os.fstat(file.fileno()))

        def verified() -> None:
            with self._lock:
                self._intact[digest] = seen
        return _Reader(file, digest, '%s %s in %s' % (what, digest,
                                                      self._directory),
                       desc['size'], verified)

    def _read_blob(self, desc: Dict[str, Any], what: str) -> bytes:
        """A manifest or config blob, capped in size and checked."""
        try:
            with self._open(desc, what) as reader:
                data = json_docs.read_capped(reader, '%s %s' % (
                    what, desc['digest']), OCILayoutError)
                reader.read()
        except docker_digest.DigestMismatchedError as e:
            raise OCILayoutError(str(e)) from e
        try:
            data.decode('utf8')
        except UnicodeDecodeError as e:
            raise OCILayoutError('%s %s in %s is not UTF-8 text' % (
                what, desc['digest'], self._directory)) from e
        return data

    def manifest(self) -> str:
        return self._manifest

    def media_type(self) -> str:
        return self._media_type

    def config_file(self) -> str:
        return self._config

    def blob_size(self, digest: str) -> int:
        return self._descriptor(digest)['size']

    def _descriptor(self, digest: str) -> Dict[str, Any]:
        desc = self._descriptors.get(digest)
        if desc is None:
            raise OCILayoutError('the image in %s has no blob %s'
                                 % (self._directory, digest))
        return desc

    def blob_stream(self, digest: str):
        """A reader that raises DigestMismatchedError at the end of data
        unless the blob is DIGEST, of its descriptor's size."""
        desc = self._descriptor(digest)
        if digest == self._config_descriptor['digest']:
            return io.BytesIO(self._config.encode('utf8'))
        if desc.get('mediaType') in media_types.NON_DISTRIBUTABLE_LAYER_MIMES:
            if not os.path.exists(self._blob_path(digest)):
                raise docker_image.ForeignLayerUnavailableError(
                    digest, desc.get('urls') or [],
                    'OCI layout %s' % self._directory)
        return self._open(desc, 'layer')

    def blob_range(self, digest: str) -> Optional[capabilities.FileRange]:
        """The blob's file once a read has found it intact and unchanged."""
        with self._lock:
            seen = self._intact.get(digest)
        if seen is None or digest == self._config_descriptor['digest']:
            return None
        path = self._blob_path(digest)
        try:
            if _identity(os.stat(path)) != seen:
                return None
        except OSError:
            return None
        return capabilities.FileRange(path, 0, seen[2])

    def __enter__(self) -> 'FromOCILayout':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass

    def __str__(self) -> str:
        return '<FromOCILayout %s %s>' % (self._directory, self.digest())


class FromOCILayoutIndex(docker_image_list.FromList):
    """A manifest list or index in an OCI image layout, with its children.

    `manifest()` is the list as stored, so `digest()` is the digest its
    descriptor names and a push publishes those bytes. Every child is
    opened (and checked, as `FromOCILayout` checks an image) up front, so a
    layout lacking one fails before the first request.
    """

    def __init__(self, directory: str, descriptor: Dict[str, Any],
                 depth: int = 0):
        reader = FromOCILayout._reader(directory)
        data, entry = reader._typed(descriptor)
        self._manifest = data.decode('utf8')
        self._media_type = entry['mediaType']
        children = _parse(data, 'index %s' % entry['digest']).get('manifests')
        if not isinstance(children, list):
            raise OCILayoutError('index %s in %s has no manifests list'
                                 % (entry['digest'], directory))
        images = []
        for child in children:
            child = _check_descriptor(child, 'an entry of index %s'
                                      % entry['digest'])
            try:
                images.append((platform.Platform(child['platform'])
                               if child.get('platform') else None,
                               _open_entry(directory, child, depth + 1)))
            except OCILayoutError as e:
                if docker_image_list.is_attestation(child):
                    raise OCILayoutError(
                        '%s (an attestation: puller.par --all-platforms '
                        'writes those only with --include-attestations)'
                        % e) from e
                raise
        super().__init__(images)

    def manifest(self) -> str:
        return self._manifest

    def media_type(self) -> str:
        return self._media_type


def _open_entry(directory: str, descriptor: Dict[str, Any], depth: int = 0):
    """The image or index DESCRIPTOR names in the layout at DIRECTORY."""
    if depth > _MAX_NESTING:
        raise OCILayoutError('indexes in %s nest more than %d deep'
                             % (directory, _MAX_NESTING))
    media_type = descriptor.get('mediaType')
    if not media_type:
        reader = FromOCILayout._reader(directory)
        media_type = reader._typed(descriptor)[1]['mediaType']
    if media_type in media_types.MANIFEST_LIST_MIMES:
        return FromOCILayoutIndex(directory, descriptor, depth)
    return FromOCILayout(directory, descriptor=descriptor)


def open_layout(directory: str, ref: Optional[str] = None
                ) -> Union[FromOCILayout, FromOCILayoutIndex]:
    """What REF names in the OCI layout at DIRECTORY, whole: an image, or
    an index (or Docker manifest list) with every image it names."""
    return _open_entry(directory,
                       FromOCILayout._reader(directory)._entry(ref))
