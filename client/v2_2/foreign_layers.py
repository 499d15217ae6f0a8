"""Foreign layers fetched from the URLs their descriptors list.

Foreign (non-distributable) layers, the base layers of Windows images, are
served from the `urls` of their descriptor, not by registries. The puller
reads them through the registry client (`registry_image`). An image that
holds only a placeholder for one (a tarball built on such a base) raises
`ForeignLayerUnavailableError` when asked for its blob, and gives the empty
placeholder as its tar (as upstream did). `Fetching` answers both by
downloading the layer from those URLs, once, into a temporary file.
Only http(s) URLs are tried, in order; no credentials are sent (they are
other hosts); the bytes must match the layer's digest and size before they
are used.
"""
import contextlib
import io
import json
import logging
import os
import tempfile
import threading
from typing import Dict, List, Optional

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import save
from containerregistry.transport import streaming


_EMPTY = docker_digest.SHA256(b'')


class ForeignLayerFetchError(ValueError):
    """None of a foreign layer's URLs served its bytes."""


def download(transport: streaming.StreamingTransport, digest: str,
             urls: List[str], size: Optional[int], dest: str) -> str:
    """Writes foreign layer DIGEST to the new file DEST from the first of
    URLS that serves the right bytes; returns that URL."""
    failures = []
    for url in docker_image.fetchable_urls(urls):
        try:
            resp, reader = transport.stream(
                url, 'GET', None, {'user-agent': docker_name.USER_AGENT})
            with contextlib.closing(reader):
                if resp.status != 200:
                    failures.append('%s: status %d' % (url, resp.status))
                    continue
                save.copy_verified(reader, dest, digest, size,
                                   'foreign layer %s from %s' % (digest, url))
            return url
        except (OSError, docker_digest.DigestMismatchedError) as e:
            logging.info('Foreign layer %s not read from %s: %s', digest,
                         url, e)
            failures.append('%s: %s' % (url, ' '.join(str(e).split())))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
    raise ForeignLayerFetchError(
        'foreign layer %s could not be fetched: %s' % (
            digest, '; '.join(failures) or 'it lists no http(s) URLs'))


class Fetching(docker_image.Delegate, capabilities.UncompressedLayers):
    """IMAGE, with the foreign layers it lacks fetched from their URLs.

    Each is downloaded at most once, when first read, into a temporary
    directory (inside TEMP_DIR if given) removed on exit. IMAGE's
    placeholders are not passed on: the layers fetched replace them.
    """

    passes_on = (capabilities.BlobFiles, capabilities.TarFiles)

    def __init__(self, image: docker_image.DockerImage,
                 transport: streaming.StreamingTransport,
                 temp_dir: Optional[str] = None):
        super().__init__(image)
        self._transport = transport
        self._temp_dir = temp_dir
        self._lock = threading.Lock()
        self._dir: Optional[tempfile.TemporaryDirectory] = None
        self._fetched: Dict[str, str] = {}
        self._locks: Dict[str, threading.Lock] = {}

    def _path(self, err: docker_image.ForeignLayerUnavailableError) -> str:
        """The local copy of the layer ERR names, fetched if need be."""
        digest = docker_digest.check_form(err.digest, 'a foreign layer')
        with self._lock:
            lock = self._locks.setdefault(digest, threading.Lock())
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(
                    prefix='cr-foreign-', dir=self._temp_dir)
            dest = os.path.join(self._dir.name, digest.split(':', 1)[1])
        with lock:
            if digest not in self._fetched:
                url = download(self._transport, digest, err.urls,
                               self._image.descriptor_sizes().get(digest),
                               dest)
                logging.info('Fetched foreign layer %s from %s', digest, url)
                self._fetched[digest] = dest
            return self._fetched[digest]

    def _opened(self, err: docker_image.ForeignLayerUnavailableError):
        return open(self._path(err), 'rb')  # pylint: disable=consider-using-with

    def _inflated(self, err: docker_image.ForeignLayerUnavailableError):
        return compression.gunzip_if_compressed(self._opened(err))[0]

    def blob_stream(self, digest: str):
        try:
            return self._image.blob_stream(digest)
        except docker_image.ForeignLayerUnavailableError as e:
            return self._opened(e)

    def uncompressed_blob_stream(self, digest: str):
        return self._tar(digest, self._image.uncompressed_blob_stream(digest))

    def uncompressed_layer_stream(self, diff_id: str):
        """A reader over the layer tar of DIFF_ID; close it when done."""
        try:
            digest: Optional[str] = self._diff_id_to_digest(diff_id)
        except ValueError:
            digest = None  # a layer given only as a tar: not foreign
        layers = self._image.capability(capabilities.UncompressedLayers)
        if layers is not None:
            reader = layers.uncompressed_layer_stream(diff_id)
        elif digest is not None:
            reader = self._image.uncompressed_blob_stream(digest)
        else:
            raise ValueError('Unmatched "diff_id": "%s"' % diff_id)
        return self._tar(digest, reader) if digest else reader

    def _tar(self, digest: str, reader):
        """READER over the tar of DIGEST; for a foreign layer's empty
        placeholder (empty, though the diff_id names content), the tar of
        the layer fetched instead."""
        missing = self._missing(digest)
        if missing is None:
            return reader
        first = reader.read(1)
        if first:
            return io.BufferedReader(compression.Prefixed(first, reader))
        reader.close()
        return self._inflated(missing)

    def _missing(self, digest: str
                 ) -> Optional[docker_image.ForeignLayerUnavailableError]:
        """What names foreign layer DIGEST, if it is one with content."""
        try:
            if self.digest_to_diff_id(digest) == _EMPTY:
                return None
            layers = json.loads(self.manifest()).get('layers') or []
        except (ValueError, AttributeError):
            return None
        for layer in layers:
            if (isinstance(layer, dict) and layer.get('digest') == digest
                    and layer.get('mediaType')
                    in media_types.NON_DISTRIBUTABLE_LAYER_MIMES):
                return docker_image.ForeignLayerUnavailableError(
                    digest, docker_image.fetchable_urls(layer.get('urls')),
                    'the image')
        return None

    def __enter__(self) -> 'Fetching':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        """Removes the fetched layers."""
        with self._lock:
            if self._dir is not None:
                self._dir.cleanup()
                self._dir = None
            self._fetched.clear()
