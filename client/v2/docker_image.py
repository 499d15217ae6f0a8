"""Docker schema 1 (v2.1) images: the interface and `FromRegistry`.

A schema 1 manifest lists its layer blobs in `fsLayers`, newest first, with
one `history[].v1Compatibility` (a v1 image JSON) per entry; there is no
config blob. Its digest covers the signed payload only, since registries
re-sign the manifest every time they serve it.

Blobs stream through the v2.2 machinery: checked against their digest as
they pass, and resumed with a Range request when a connection drops.
"""
import abc
import io
import json
import tarfile
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Set, Union

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2 import docker_digest
from containerregistry.client.v2 import util
from containerregistry.client.v2_2 import compression

# Only FromRegistry uses the registry protocol, and loads it when used: the
# interface, which offline converters (v2_2.v2_compat) extend, needs none.
if TYPE_CHECKING:
    from containerregistry.client.v2 import docker_http
    from containerregistry.client.v2_2 import registry_image

DigestMismatchedError = docker_digest.DigestMismatchedError
BadManifestException = util.BadManifestException


class DockerImage(metaclass=abc.ABCMeta):
    """Interface for implementations that interact with schema 1 images."""

    def fs_layers(self) -> List[str]:
        """The layer blobs, top (newest) first, as `fsLayers` lists them."""
        manifest = json.loads(self.manifest())
        try:
            return [layer['blobSum'] for layer in manifest['fsLayers']]
        except (KeyError, TypeError) as e:
            raise BadManifestException(
                'Schema 1 manifest without readable fsLayers') from e

    def blob_set(self) -> Set[str]:
        """The unique set of blobs that compose this image."""
        return set(self.fs_layers())

    def digest(self) -> str:
        """The manifest's digest: of the signed payload, when signed."""
        return docker_digest.ManifestToSHA256(self.manifest())

    @abc.abstractmethod
    def manifest(self) -> str:
        """The JSON manifest referenced by the tag/digest, as text."""

    def blob_size(self, digest: str) -> int:
        """The byte size of the raw blob."""
        return len(self.blob(digest))

    @abc.abstractmethod
    def blob(self, digest: str) -> bytes:
        """The raw (compressed) blob of a layer."""

    def blob_stream(self, digest: str):
        """A reader over the raw blob; close it when done."""
        return io.BytesIO(self.blob(digest))

    def uncompressed_blob(self, digest: str) -> bytes:
        """Same as blob() but uncompressed."""
        with self.uncompressed_blob_stream(digest) as reader:
            return reader.read()

    def uncompressed_blob_stream(self, digest: str):
        """A reader over the blob, inflated on the fly if it is gzipped."""
        return compression.gunzip_if_compressed(self.blob_stream(digest))[0]

    def diff_id(self, digest: str) -> Optional[str]:
        """None: schema 1 manifests do not record diff_ids (a v2.2 image
        seen as schema 1 knows them, see v2_compat.V2FromV22)."""
        return None

    @abc.abstractmethod
    def __enter__(self) -> 'DockerImage':
        """Open the image for reading."""

    @abc.abstractmethod
    def __exit__(self, unused_type, unused_value, unused_traceback):
        """Close the image."""

    def __str__(self) -> str:
        return str(type(self))


class FromRegistry(DockerImage):
    """A schema 1 image in a registry, named by tag or digest.

    The manifest is fetched once: later GETs would bring new signatures.
    A digest name, and a Docker-Content-Digest header, are checked against
    the signed payload.
    """

    def __init__(self, name: Union[docker_name.Tag, docker_name.Digest],
                 basic_creds: Optional[docker_creds.Provider], transport):
        self._name = name
        self._creds = basic_creds
        self._original_transport = transport
        self._transport: Optional['docker_http.Transport'] = None
        self._blobs: Optional['registry_image.FromRegistry'] = None
        self._raw: Optional[bytes] = None
        self._digest: Optional[str] = None

    @classmethod
    def FromTransport(cls, name: Union[docker_name.Tag, docker_name.Digest],
                      transport: 'docker_http.Transport',
                      manifest: Optional[bytes] = None) -> 'FromRegistry':
        """An image sharing an authenticated Transport (no new ping/token).

        MANIFEST, when given, is the manifest already fetched for NAME.
        """
        image = cls(name, None, None)
        image._transport = transport
        image._raw = manifest
        return image

    def transport(self) -> 'docker_http.Transport':
        if self._transport is None:
            raise RuntimeError('%s is used outside its "with" block' % self)
        return self._transport

    def _blob_source(self) -> 'registry_image.FromRegistry':
        """Blob access: the v2.2 reader, on this image's Transport."""
        if self._blobs is None:
            from containerregistry.client.v2 import docker_http  # pylint: disable=import-outside-toplevel
            from containerregistry.client.v2_2 import registry_image  # pylint: disable=import-outside-toplevel
            self._blobs = registry_image.FromRegistry.FromTransport(
                self._name, self.transport(), docker_http.SCHEMA1_ACCEPT)
        return self._blobs

    def _ref(self) -> str:
        if isinstance(self._name, docker_name.Tag):
            return self._name.tag
        return self._name.digest

    def _manifest_bytes(self, validate: bool = True) -> bytes:
        if self._raw is None:
            from containerregistry.client.v2 import docker_http  # pylint: disable=import-outside-toplevel
            url = '{base}/v2/{repository}/manifests/{ref}'.format(
                base=self.transport().base_url(),
                repository=self._name.repository, ref=self._ref())
            resp, content = self.transport().Request(
                url, accepted_codes=[200],
                accepted_mimes=docker_http.SCHEMA1_ACCEPT,
                max_bytes=docker_http.MAX_DOCUMENT_BYTES)
            header = resp.get('docker-content-digest', '')
            if header.startswith('sha256:'):
                self._digest = docker_digest.ManifestToSHA256(content)
                docker_digest.check(header, self._digest,
                                    '%s (Docker-Content-Digest)' % self._name)
            self._raw = content
        if validate and isinstance(self._name, docker_name.Digest):
            docker_digest.check(self._name.digest, self.digest(),
                                'manifest %s' % self._name)
        return self._raw

    def manifest(self, validate: bool = True) -> str:
        """The manifest as served; checked when named by digest."""
        return self._manifest_bytes(validate).decode('utf8')

    def digest(self) -> str:
        if self._digest is None:
            self._digest = docker_digest.ManifestToSHA256(
                self._manifest_bytes(validate=False))
        return self._digest

    def exists(self) -> bool:
        """True if the name refers to a schema 1 manifest."""
        from containerregistry.client.v2 import docker_http  # pylint: disable=import-outside-toplevel
        try:
            manifest = json.loads(self.manifest(validate=False))
        except docker_http.V2DiagnosticException as err:
            if err.status == 404:
                return False
            raise
        return isinstance(manifest, dict) and manifest.get('schemaVersion') == 1

    def blob_size(self, digest: str) -> int:
        return self._blob_source().blob_size(digest)

    def blob(self, digest: str) -> bytes:
        """The whole blob, checked against DIGEST."""
        with self.blob_stream(digest) as reader:
            return reader.read()

    def blob_stream(self, digest: str, size: Optional[int] = None):
        """A reader that checks sha256 (and SIZE, if given) at end of data."""
        return self._blob_source().blob_stream(digest, size)

    def tags(self) -> List[str]:
        return self._blob_source().tags()

    def manifests(self) -> Dict[str, Any]:
        return self._blob_source().manifests()

    def children(self) -> List[str]:
        return self._blob_source().children()

    def catalog(self, page_size: int = 100) -> Iterator[str]:
        return self._blob_source().catalog(page_size)

    def __enter__(self) -> 'FromRegistry':
        if self._transport is None:
            from containerregistry.client.v2 import docker_http  # pylint: disable=import-outside-toplevel
            self._transport = docker_http.Transport(
                self._name, self._creds or docker_creds.Anonymous(),
                self._original_transport,
                docker_http.PULL)
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass

    def __str__(self) -> str:
        return '<docker_image.FromRegistry name: {}>'.format(str(self._name))


def extract(image: DockerImage, tar: tarfile.TarFile) -> None:
    """Writes the schema 1 IMAGE's merged filesystem into the open tarfile
    TAR, as `client.v2_2.docker_image.extract` writes a v2.2 image's (the
    same merge, order and checks; each layer is checked against the tar
    digest found while it first streams)."""
    # Imported here: v2_compat imports this module.
    from containerregistry.client.v2_2 import flatten
    from containerregistry.client.v2_2 import v2_compat
    with v2_compat.V22FromV2(image) as v2_2_image:
        flatten.extract(v2_2_image, tar)
