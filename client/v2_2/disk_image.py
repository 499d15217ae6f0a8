"""`FromDisk`: an image in the puller's fast layout (what rules_docker uses).

Layers are `(digest file, .tar.gz)` pairs, base first, optionally on top of
a legacy base tarball (read with `FromTarball`) or of the foreign layers of
a base manifest. The synthesized manifest serializes exactly as upstream's
(`json.dumps(sort_keys=True)`), so digests match for the same inputs.
Blobs stream from their files; nothing reads a whole layer into memory
unless a caller asks for bytes.
"""
import hashlib
import io
import json
import os
import re
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import tarball_image


class DiskImageError(ValueError):
    """The fast layout given to FromDisk is incomplete or malformed."""


class ForeignManifestError(DiskImageError):
    """The base manifest given for its foreign layers is malformed.

    Its own class so that a tool can name the file it read the manifest from.
    """


def layer_count(n: int) -> str:
    """'1 layer', '2 layers': for messages."""
    return '%d layer%s' % (n, '' if n == 1 else 's')


class LayerCountError(DiskImageError):
    """The config's rootfs.diff_ids and the image's layers differ in number.

    Layers pair with diff_ids by position, so such an image cannot be
    pulled or flattened. `listed` is the diff_ids' count, `layers` the
    image's (base layers included).
    """

    def __init__(self, listed: int, layers: int):
        super().__init__('the config lists %s in rootfs.diff_ids, but the '
                         'image has %d' % (layer_count(listed), layers))
        self.listed = listed
        self.layers = layers


_SHA256_HEX = re.compile(r'[0-9a-f]{64}')
# What a registry takes as a blob digest (OCI's registered algorithms).
_DIGEST = re.compile(r'sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}')


def read_digest_file(path: str) -> str:
    """'sha256:' + the hex in PATH (whitespace and a 'sha256:' prefix ok).

    Anything else would only be refused later, by the registry, in terms
    that do not name the file.
    """
    try:
        with open(path, 'r', encoding='utf8') as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise DiskImageError('cannot read digest file %s: %s'
                             % (path, getattr(e, 'strerror', None) or e)) from e
    hexd = text[len('sha256:'):] if text.startswith('sha256:') else text
    if not _SHA256_HEX.fullmatch(hexd):
        raise DiskImageError('digest file %s does not hold a sha256 hex '
                             'digest (64 lowercase hex characters, optionally '
                             'after "sha256:"): %r' % (path, text[:80]))
    return 'sha256:' + hexd


def _check_file_digest(path: str, digest: str) -> None:
    h = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
    except OSError as e:
        raise DiskImageError('cannot read layer %s: %s'
                             % (path, e.strerror or e)) from e
    if 'sha256:' + h.hexdigest() != digest:
        raise DiskImageError('layer %s does not match its digest file: '
                             'expected %s, got sha256:%s'
                             % (path, digest, h.hexdigest()))


def _open(path: str):
    """A reader over PATH, for the caller to close."""
    return open(path, 'rb')  # pylint: disable=consider-using-with


class FromDisk(docker_image.StreamingImage, capabilities.BlobFiles,
               capabilities.UncompressedLayers):
    """An image whose config and layers are files on disk.

    The layer files are the user's: their ranges (`blob_range`) are not
    checked (a registry checks what is pushed from them), and reading a
    blob checks it against its digest file.
    """

    def __init__(self, config_file: str,
                 layers: Sequence[Tuple[str, str]],
                 uncompressed_layers: Optional[Sequence[Tuple[str, str]]] = None,
                 legacy_base: Optional[str] = None,
                 foreign_layers_manifest: Optional[str] = None):
        self._config = config_file
        self._lock = threading.Lock()
        self._manifest: Optional[str] = None
        self._layers: List[str] = []
        self._layer_to_filename: Dict[str, str] = {}
        for name_file, content_file in layers:
            digest = read_digest_file(name_file)
            known = self._layer_to_filename.get(digest)
            if known is not None and known != content_file:
                # Two files claim one digest: only one can be served, so
                # they must really be that blob.
                for path in (known, content_file):
                    _check_file_digest(path, digest)
            self._layers.append(digest)
            self._layer_to_filename[digest] = content_file
        self._uncompressed_layer_to_filename: Dict[str, str] = {}
        self._uncompressed_count = len(uncompressed_layers or [])
        for name_file, content_file in uncompressed_layers or []:
            self._uncompressed_layer_to_filename[read_digest_file(name_file)] = (
                content_file)
        self._foreign_layers = self._parse_foreign(foreign_layers_manifest)
        self._legacy_base: Optional[tarball_image.FromTarball] = None
        if legacy_base:
            if not os.path.isfile(legacy_base):
                raise DiskImageError('legacy base tarball %s does not exist'
                                     % legacy_base)
            self._legacy_base = tarball_image.FromTarball(legacy_base)
            self._legacy_base.__enter__()

    @staticmethod
    def _parse_foreign(text: Optional[str]) -> List[Dict[str, Any]]:
        """The FOREIGN_LAYER_MIME descriptors of a base image's manifest.

        They go into the manifest as they are, so a bad digest or size is
        refused here rather than published.
        """
        if not text:
            return []
        try:
            manifest = json.loads(text)
        except ValueError as e:
            raise ForeignManifestError('the foreign layers manifest is not '
                                       'valid JSON (%s)' % e) from e
        if not isinstance(manifest, dict):
            return []
        foreign = [layer for layer in manifest.get('layers') or []
                   if isinstance(layer, dict)
                   and layer.get('mediaType') == media_types.FOREIGN_LAYER_MIME]
        for index, layer in enumerate(foreign):
            digest, size = layer.get('digest'), layer.get('size')
            if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
                raise ForeignManifestError(
                    'foreign layer %d has an invalid digest %s (want '
                    'sha256:<64 hex> or sha512:<128 hex>, lowercase)'
                    % (index, json.dumps(digest)[:100]))
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ForeignManifestError(
                    'foreign layer %d (%s) has an invalid size %s (want a '
                    'byte count)' % (index, digest, json.dumps(size)[:100]))
        return foreign

    def _foreign(self, digest: str) -> Optional[Dict[str, Any]]:
        for layer in self._foreign_layers:
            if layer.get('digest') == digest:
                return layer
        return None

    def _base(self, digest: str) -> tarball_image.FromTarball:
        if self._legacy_base is None:
            raise DiskImageError('the image has no blob %s (it is not among '
                                 'its layers and there is no legacy base)'
                                 % digest)
        return self._legacy_base

    def _config_bytes(self) -> bytes:
        return self._config.encode('utf8')

    def manifest(self) -> str:
        with self._lock:
            if self._manifest is None:
                if self._legacy_base is not None:
                    base_layers = json.loads(
                        self._legacy_base.manifest())['layers']
                else:
                    base_layers = list(self._foreign_layers)
                config = self._config_bytes()
                manifest = json.dumps({
                    'schemaVersion': 2,
                    'mediaType': media_types.MANIFEST_SCHEMA2_MIME,
                    'config': {
                        'mediaType': media_types.CONFIG_JSON_MIME,
                        'size': len(config),
                        'digest': docker_digest.SHA256(config),
                    },
                    'layers': base_layers + [{
                        'mediaType': media_types.LAYER_MIME,
                        'size': self.blob_size(digest),
                        'digest': digest,
                    } for digest in self._layers],
                }, sort_keys=True)
                self._check_layer_count(len(base_layers))
                self._manifest = manifest
            return self._manifest

    def _check_layer_count(self, base_layers: int) -> None:
        """Raises LayerCountError unless the diff_ids pair up with the layers.

        Only a config that lists diff_ids is checked. Layers given only
        uncompressed (flatten's input) count although the manifest cannot
        list them.
        """
        try:
            rootfs = json.loads(self._config).get('rootfs')
        except (ValueError, AttributeError):
            return
        diff_ids = rootfs.get('diff_ids') if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list):
            return
        layers = base_layers + max(len(self._layers), self._uncompressed_count)
        if len(diff_ids) != layers:
            raise LayerCountError(len(diff_ids), layers)

    def media_type(self) -> str:
        return media_types.MANIFEST_SCHEMA2_MIME

    def config_file(self) -> str:
        return self._config

    def config_blob(self) -> str:
        return docker_digest.SHA256(self._config_bytes())

    def blob_size(self, digest: str) -> int:
        if digest in self._layer_to_filename:
            return os.stat(self._layer_to_filename[digest]).st_size
        if digest == self.config_blob():
            return len(self._config_bytes())
        foreign = self._foreign(digest)
        if foreign is not None and self._legacy_base is None:
            return foreign['size']
        return self._base(digest).blob_size(digest)

    def blob_stream(self, digest: str):
        path = self._layer_to_filename.get(digest)
        if path is not None:
            return docker_digest.VerifyingReader(
                _open(path), digest, 'layer %s (%s)' % (path, digest))
        if digest == self.config_blob():
            return io.BytesIO(self._config_bytes())
        foreign = self._foreign(digest)
        if foreign is not None and self._legacy_base is None:
            raise docker_image.ForeignLayerUnavailableError(
                digest, foreign.get('urls') or [],
                'the image (only the base manifest describes it)')
        return self._base(digest).blob_stream(digest)

    def blob_range(self, digest: str) -> Optional[docker_image.FileRange]:
        """The layer file of own layer DIGEST, unchecked; the base's range
        for a base layer."""
        path = self._layer_to_filename.get(digest)
        if path is not None:
            return docker_image.FileRange(path, 0, os.stat(path).st_size,
                                          checked=False)
        if self._legacy_base is not None and digest != self.config_blob():
            return self._legacy_base.blob_range(digest)
        return None

    def _own_uncompressed(self, digest: str) -> Optional[str]:
        """The .tar file of own layer DIGEST, if one was given."""
        if not self._uncompressed_layer_to_filename:
            return None
        try:
            diff_id = self.digest_to_diff_id(digest)
        except ValueError:
            return None
        return self._uncompressed_layer_to_filename.get(diff_id)

    def uncompressed_blob_stream(self, digest: str):
        """A reader over the layer tar of DIGEST; close it when done."""
        if digest in self._layer_to_filename:
            path = self._own_uncompressed(digest)
            if path is not None:
                return _open(path)
            return compression.gunzip_if_compressed(
                _open(self._layer_to_filename[digest]))[0]
        if self._foreign(digest) is not None:
            return io.BytesIO(b'')
        return self._base(digest).uncompressed_blob_stream(digest)

    def uncompressed_blob_size(self, digest: str) -> Optional[int]:
        """The layer tar's size if known without inflating, else None."""
        if digest in self._layer_to_filename:
            path = self._own_uncompressed(digest)
            return os.stat(path).st_size if path is not None else None
        if self._foreign(digest) is not None:
            return 0
        return self._base(digest).uncompressed_blob_size(digest)

    def uncompressed_layer_stream(self, diff_id: str):
        """A reader over the layer tar of DIFF_ID; close it when done."""
        path = self._uncompressed_layer_to_filename.get(diff_id)
        if path is not None:
            return _open(path)
        if self._legacy_base and diff_id in self._legacy_base.diff_ids():
            return self._legacy_base.uncompressed_layer_stream(diff_id)
        return self.uncompressed_blob_stream(self._diff_id_to_digest(diff_id))

    def uncompressed_layer(self, diff_id: str) -> bytes:
        with self.uncompressed_layer_stream(diff_id) as f:
            return f.read()

    def __enter__(self) -> 'FromDisk':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        """Releases the legacy base's temporary files."""
        if self._legacy_base is not None:
            self._legacy_base.__exit__(None, None, None)

    def __str__(self) -> str:
        return '<docker_image.FromDisk layers: %d>' % len(self._layers)
