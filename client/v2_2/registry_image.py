"""`FromRegistry`: a v2.2 image read from a registry.

Manifests fetched by digest are checked against it, and so are tag
manifests whose response carries a Docker-Content-Digest; every manifest's
shape (descriptors, digest forms, sizes) is checked before use. Blobs stream
through `blob_stream()`, which checks size and sha256 as the data passes and
resumes a dropped or stalled download with a Range request (as often as
`retry_policy` allows).
"""
import json
import logging
from typing import Any, Dict, Iterator, List, Optional, Sequence

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.transport import retry_policy


class MalformedManifestError(docker_http.BadStateException):
    """A manifest without the shape its kind requires."""


def _check_descriptor(entry: Any, what: str) -> None:
    if not isinstance(entry, dict):
        raise MalformedManifestError('%s is not a JSON object' % what)
    docker_digest.check_form(entry.get('digest'), what)
    size = entry.get('size')
    if size is not None and (type(size) is not int or size < 0):
        raise MalformedManifestError('%s has a bad size: %r' % (what, size))


def _check_list_of(manifest: Dict[str, Any], key: str, what: str) -> List[Any]:
    entries = manifest.get(key)
    if not isinstance(entries, list):
        raise MalformedManifestError('%s has no "%s" list' % (what, key))
    return entries


_PLATFORM_TEXTS = ('os', 'architecture', 'variant', 'os.version')
_PLATFORM_LISTS = ('os.features', 'features')


def _check_platform(platform: Any, what: str) -> None:
    """A list entry's platform, if any, is an object of texts and lists of
    texts where the image spec says so: it picks what is pulled."""
    if platform is None:
        return
    if not isinstance(platform, dict):
        raise MalformedManifestError('%s is not a JSON object: %s'
                                     % (what, json.dumps(platform)[:100]))
    for key in _PLATFORM_TEXTS:
        if platform.get(key) is not None and not isinstance(platform[key], str):
            raise MalformedManifestError('%s: "%s" is not a string'
                                         % (what, key))
    for key in _PLATFORM_LISTS:
        value = platform.get(key)
        if value is not None and not isinstance(value, str) and not (
                isinstance(value, list)
                and all(isinstance(item, str) for item in value)):
            raise MalformedManifestError('%s: "%s" is not a list of strings'
                                         % (what, key))


def _check_schema1(manifest: Dict[str, Any], what: str) -> None:
    """Each fsLayers entry names a blob and has its history entry, whose
    v1Compatibility is a JSON object (it becomes the layer's config)."""
    layers = _check_list_of(manifest, 'fsLayers', what)
    history = _check_list_of(manifest, 'history', what)
    if len(history) != len(layers):
        raise MalformedManifestError(
            '%s has %d fsLayers but %d history entries'
            % (what, len(layers), len(history)))
    for i, (entry, past) in enumerate(zip(layers, history)):
        if not isinstance(entry, dict):
            raise MalformedManifestError('%s: fsLayers[%d] is not a JSON '
                                         'object' % (what, i))
        docker_digest.check_form(entry.get('blobSum'),
                                 '%s: fsLayers[%d]' % (what, i))
        compat = past.get('v1Compatibility') if isinstance(past, dict) else None
        if not isinstance(compat, str):
            raise MalformedManifestError('%s: history[%d] has no '
                                         'v1Compatibility text' % (what, i))
        docker_http.parse_object(compat, '%s: history[%d].v1Compatibility'
                                 % (what, i), MalformedManifestError)


def check_manifest(content: bytes, what: str) -> None:
    """Raises unless CONTENT has the shape of a manifest, list or index.

    What is read from it later must be of the right type: digests become
    URL paths and file names, sizes bound downloads.
    """
    manifest = docker_http.parse_object(content, what, MalformedManifestError)
    version = manifest.get('schemaVersion')
    if type(version) is not int or version not in (1, 2):
        raise MalformedManifestError('%s has an unknown schemaVersion: %s'
                                     % (what, json.dumps(version)))
    if 'manifests' in manifest:
        for i, entry in enumerate(_check_list_of(manifest, 'manifests', what)):
            _check_descriptor(entry, '%s: manifests[%d]' % (what, i))
            _check_platform(entry.get('platform'),
                            '%s: manifests[%d].platform' % (what, i))
    elif manifest.get('schemaVersion') == 1:
        _check_schema1(manifest, what)
    else:
        _check_descriptor(manifest.get('config'), '%s: config' % what)
        for i, entry in enumerate(_check_list_of(manifest, 'layers', what)):
            _check_descriptor(entry, '%s: layers[%d]' % (what, i))


def _manifest_digest(content: bytes) -> str:
    """sha256 of the bytes; of the signed payload for signed schema 1.

    Registries name a signed schema 1 manifest by its payload, since they
    sign it anew on every GET.
    """
    if b'"signatures"' in content:
        from containerregistry.client.v2 import docker_digest as v2_digest  # pylint: disable=import-outside-toplevel
        return v2_digest.ManifestToSHA256(content)
    return docker_digest.SHA256(content)


class _ResumingReader:
    """Reads a blob; when the connection drops, asks for the rest by Range.

    A foreign (non-distributable) layer is read from the first of its
    `urls` that serves it, else from the registry; no credentials go to
    those URLs (they are other hosts), and the digest is checked as ever.
    """

    def __init__(self, image: 'FromRegistry', digest: str):
        self._image = image
        self._digest = digest
        self._offset = 0
        self._url = image.url('blobs/' + digest)
        self._attempts = retry_policy.Attempts.join(
            'Download of %s' % digest)
        with self._attempts:
            self._reader = self._first_open(image.foreign_urls(digest))

    def _first_open(self, urls: List[str]):
        failures = []
        for url in urls:
            try:
                # Each URL once: the next one is the fallback.
                with retry_policy.Attempts(url, limit=1):
                    reader = self._open(None, url)
            except (ConnectionError, docker_http.V2DiagnosticException) as e:
                logging.info('Foreign layer %s not read from %s: %s',
                             self._digest, url, e)
                failures.append(str(e))
                continue
            self._url = url
            return reader
        try:
            return self._open(None, self._url)
        except (ConnectionError, docker_http.V2DiagnosticException) as e:
            if not failures:
                raise
            raise docker_http.BadStateException(
                'foreign layer %s: none of its URLs served it (%s), nor did '
                'the registry (%s)' % (self._digest, '; '.join(failures), e)
            ) from e

    def _open(self, offset: Optional[int], url: Optional[str] = None):
        headers = {'range': 'bytes=%d-' % offset} if offset else None
        resp, reader = self._image.transport().Stream(
            url or self._url, accepted_codes=[200, 206], headers=headers)
        if offset and resp.status == 200:
            # The server ignored Range: skip what we already have.
            remaining = offset
            while remaining:
                chunk = reader.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
        return reader

    def _resume(self, err: Exception) -> None:
        """After ERR, reopens from the offset reached, or raises ERR."""
        if not retry_policy.transient_error(err):
            raise err
        if not self._attempts.again(
                'broke after %d bytes (%s); resuming' % (
                    self._offset, retry_policy.describe(err)),
                what='Download of %s' % self._digest):
            raise err
        self._reader.close()
        with self._attempts:
            self._reader = self._open(self._offset)

    def read(self, amt: Optional[int] = None) -> bytes:
        while True:
            try:
                data = self._reader.read(amt)
            except ConnectionError as e:
                self._resume(e)
                continue
            self._offset += len(data)
            return data

    def readinto(self, buffer) -> int:
        while True:
            try:
                n = self._reader.readinto(buffer)
            except ConnectionError as e:
                self._resume(e)
                continue
            self._offset += n
            return n

    def close(self) -> None:
        self._reader.close()


class FromRegistry(docker_image.StreamingImage):
    """An image in a registry, named by tag or digest."""

    def __init__(self, name: docker_name.Registry,
                 basic_creds: docker_creds.Provider, transport,
                 accepted_mimes: Sequence[str] = (
                     docker_http.MANIFEST_SCHEMA2_MIMES)):
        self._name = name
        self._creds = basic_creds
        self._original_transport = transport
        self._accepted_mimes = list(accepted_mimes)
        self._response: Dict[str, bytes] = {}
        self._content_type: Dict[str, str] = {}
        self._transport: Optional[docker_http.Transport] = None
        self._shape_checked = False

    @classmethod
    def FromTransport(cls, name: docker_name.Registry,
                      transport: docker_http.Transport,
                      accepted_mimes: Sequence[str],
                      manifest: Optional[bytes] = None,
                      media_type: Optional[str] = None) -> 'FromRegistry':
        """An image sharing an authenticated Transport (no new ping/token).

        MANIFEST, when given, is the manifest already fetched for NAME.
        """
        # The transport is given, so the credentials are never asked for.
        image = cls(name, docker_creds.Anonymous(), None, accepted_mimes)
        image._transport = transport
        if manifest is not None:
            suffix = 'manifests/' + image._ref()
            image._response[suffix] = manifest
            image._content_type[suffix] = media_type or ''
        return image

    def transport(self) -> docker_http.Transport:
        if self._transport is None:
            raise RuntimeError('%s is used outside its "with" block' % self)
        return self._transport

    def url(self, suffix: str) -> str:
        return '{base_url}/v2/{repository}/{suffix}'.format(
            base_url=self.transport().base_url(),
            repository=self._repository().repository, suffix=suffix)

    def _repository(self) -> docker_name.Repository:
        """The name, which names a repository for all but `catalog`."""
        if not isinstance(self._name, docker_name.Repository):
            raise ValueError('Expected a docker_name.Repository for "name"')
        return self._name

    def _ref(self) -> str:
        if isinstance(self._name, docker_name.Tag):
            return self._name.tag
        if not isinstance(self._name, docker_name.Digest):
            raise ValueError('Expected a docker_name.Tag or Digest for "name"')
        return self._name.digest

    def _content(self, suffix: str,
                 accepted_mimes: Optional[Sequence[str]] = None,
                 cache: bool = True) -> bytes:
        if cache and suffix in self._response:
            return self._response[suffix]
        resp, content = self.transport().Request(
            self.url(suffix), accepted_codes=[200],
            accepted_mimes=accepted_mimes,
            max_bytes=docker_http.MAX_DOCUMENT_BYTES)
        if cache:
            self._response[suffix] = content
            self._content_type[suffix] = resp.get('content-type', '')
            self._check_header_digest(suffix, resp, content)
        return content

    def _check_header_digest(self, suffix: str, resp, content: bytes) -> None:
        if not suffix.startswith('manifests/'):
            return
        header = resp.get('docker-content-digest', '')
        if header.startswith('sha256:'):
            docker_digest.check(header, _manifest_digest(content),
                                '%s (Docker-Content-Digest)' % self._name)

    def _manifest_bytes(self, validate: bool = True) -> bytes:
        content = self._content('manifests/' + self._ref(),
                                self._accepted_mimes)
        if not self._shape_checked:
            check_manifest(content, 'the manifest of %s' % self._name)
            self._shape_checked = True
        if validate and isinstance(self._name, docker_name.Digest):
            docker_digest.check(self._name.digest, _manifest_digest(content),
                                'manifest %s' % self._name)
        return content

    def manifest(self, validate: bool = True) -> str:
        """The manifest as served; checked when named by digest."""
        return self._manifest_bytes(validate).decode('utf8')

    def digest(self) -> str:
        return docker_digest.SHA256(self._manifest_bytes())

    def served_type(self) -> str:
        """The Content-Type the registry gave with the manifest."""
        self._manifest_bytes(validate=False)
        served = self._content_type.get('manifests/' + self._ref(), '')
        return served.split(';')[0].strip()

    def media_type(self) -> str:
        manifest = json.loads(self.manifest())
        return (manifest.get('mediaType') or self.served_type()
                or docker_http.OCI_MANIFEST_MIME)

    def exists(self) -> bool:
        """True if the name refers to a v2.2 image of an accepted type."""
        try:
            manifest = json.loads(self.manifest(validate=False))
        except docker_http.V2DiagnosticException as err:
            if err.status == 404:
                return False
            raise
        return (manifest.get('schemaVersion') == 2 and 'layers' in manifest
                and self.media_type() in self._accepted_mimes)

    def foreign_urls(self, digest: str) -> List[str]:
        """Where the manifest says foreign layer DIGEST may be fetched.

        Only a manifest already read counts (blobs are read after it; a
        schema 1 reader's blob source never reads one, and has none).
        """
        content = self._response.get('manifests/' + self._ref())
        manifest = json.loads(content) if content else {}
        for layer in manifest.get('layers') or []:
            if (layer.get('digest') == digest and layer.get('mediaType')
                    in docker_http.NON_DISTRIBUTABLE_LAYER_MIMES):
                return docker_image.fetchable_urls(layer.get('urls'))
        return []

    def config_file(self) -> str:
        digest = self.config_blob()
        what = 'config %s of %s' % (digest, self._name)

        def fetch() -> bytes:
            with self.blob_stream(digest) as reader:
                return docker_http.read_capped(reader, what)
        content = docker_digest.fetched_once_more(fetch, what)
        try:
            return content.decode('utf8')
        except UnicodeDecodeError as e:
            raise docker_http.BadStateException(
                '%s is not UTF-8 text: %s' % (what, e)) from None

    def blob_size(self, digest: str) -> int:
        resp, unused_content = self.transport().Request(
            self.url('blobs/' + digest), method='HEAD', accepted_codes=[200])
        return int(resp['content-length'])

    def blob(self, digest: str) -> bytes:
        """The whole blob, checked against DIGEST."""
        with self.blob_stream(digest) as reader:
            return reader.read()

    def blob_stream(self, digest: str,
                    size: Optional[int] = None) -> docker_digest.VerifyingReader:
        """A reader that checks sha256 (and SIZE, if given) at end of data."""
        return docker_digest.VerifyingReader(
            _ResumingReader(self, digest), digest,
            'blob %s of %s' % (digest, self._repository().as_repository()), size)

    def catalog(self, page_size: int = 100) -> Iterator[str]:
        if not isinstance(self._name, docker_name.Registry) or isinstance(
                self._name, docker_name.Repository):
            raise ValueError('Expected docker_name.Registry for "name"')
        url = '{base_url}/v2/_catalog?n={page_size}'.format(
            base_url=self.transport().base_url(), page_size=page_size)
        for _, content in self.transport().PaginatedRequest(
                url, accepted_codes=[200]):
            for repo in json.loads(content).get('repositories', []):
                yield repo

    def _tags(self) -> Dict[str, Any]:
        return json.loads(self._content('tags/list', cache=False))

    def tags(self) -> List[str]:
        return self._tags().get('tags', [])

    def manifests(self) -> Dict[str, Any]:
        return self._tags().get('manifest', {})

    def children(self) -> List[str]:
        return self._tags().get('child', [])

    def __enter__(self) -> 'FromRegistry':
        if self._transport is None:
            self._transport = docker_http.Transport(
                self._name, self._creds, self._original_transport,
                docker_http.PULL)
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass

    def __str__(self) -> str:
        return '<docker_image.FromRegistry name: {}>'.format(str(self._name))
