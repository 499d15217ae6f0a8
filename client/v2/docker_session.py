"""Pushing schema 1 images (and deleting manifests), on the v2.2 session.

The protocol is the v2.2 one (`client.v2_2.docker_session`: blobs the
registry has are skipped, mounts, streamed uploads, retries, the manifest
last); only the image differs. A schema 1 image has no config blob and no
blob sizes, and goes up as a signed manifest: registries refuse unsigned
ones, so a manifest the library built unsigned (`append.Layer`,
`v1_compat.V2FromV1`, `V2FromV22`) is signed on the way with a new key
(`signing.sign`), over its exact bytes, so the digest stays `digest()`.
"""
import json
from typing import Dict, Optional, Sequence, Set, Union

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2 import docker_image
from containerregistry.client.v2 import signing
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image as v2_2_image
from containerregistry.client.v2_2 import docker_session as v2_2_session

Delete = v2_2_session.Delete


class _Upload(v2_2_image.DockerImage):
    """A schema 1 image as the v2.2 session reads what it pushes."""

    def __init__(self, image: docker_image.DockerImage):
        self._image = image
        manifest = image.manifest()
        if 'signatures' not in json.loads(manifest):
            manifest = signing.sign(manifest)
        self._manifest = manifest

    def manifest(self) -> str:
        return self._manifest

    def media_type(self) -> str:
        return docker_http.MANIFEST_SCHEMA1_SIGNED_MIME

    def digest(self) -> str:
        return self._image.digest()

    def config_blob(self) -> str:
        return ''  # none: no blob is read as a config

    def config_file(self) -> str:
        raise NotImplementedError('a schema 1 image has no config')

    def distributable_blob_set(self) -> Set[str]:
        return self._image.blob_set()

    def descriptor_sizes(self) -> Dict[str, int]:
        return {}  # schema 1 manifests give no sizes

    def blob_size(self, digest: str) -> int:
        return self._image.blob_size(digest)

    def blob(self, digest: str) -> bytes:
        return self._image.blob(digest)

    def blob_stream(self, digest: str):
        return self._image.blob_stream(digest)

    def __enter__(self) -> '_Upload':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass


class Push:
    """A schema 1 push session: `with Push(...) as s: s.upload(image)`.

    It drives a v2.2 session (same arguments) with the image adapted.
    """

    def __init__(self, name: Union[docker_name.Tag, docker_name.Digest],
                 creds: docker_creds.Provider, transport,
                 mount: Optional[Sequence[docker_name.Repository]] = None,
                 threads: int = 1):
        self._session = v2_2_session.Push(name, creds, transport, mount=mount,
                                          threads=threads)

    def upload(self, image: docker_image.DockerImage) -> None:
        """Pushes the schema 1 IMAGE's blobs, then its signed manifest."""
        self._session.upload(_Upload(image))

    def __enter__(self) -> 'Push':
        return self

    def __exit__(self, exception_type, value, traceback):
        return self._session.__exit__(exception_type, value, traceback)
