"""Views of Docker v2.2 images and lists as OCI ones, and back.

Only the manifests change: media types are rewritten and the manifest is
re-serialized with `json.dumps(sort_keys=True)`; blobs, sizes, digests and
every other field (`urls`, `annotations`, ...) stay as they are.

Layer types follow what the layer holds. Upstream labelled every layer
`OCI_LAYER_MIME` (an uncompressed tar) even though Docker layers are gzip,
and turned foreign layers into distributable ones, so a push then tried to
upload them. Here gzip layers become `OCI_GZIP_LAYER_MIME` and foreign
layers `OCI_NONDISTRIBUTABLE_GZIP_LAYER_MIME`. That changes the digest of
an `--oci` image relative to upstream's; `upstream_layer_types=True`
reproduces upstream's manifest exactly for anyone who must keep it.
"""
import json
import threading
from typing import Any, Dict, Optional

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import docker_image_list
from containerregistry.client.v2_2 import media_types

# Docker's type for an uncompressed layer (distribution's schema2 package
# defines it; only this module needs it).
DOCKER_UNCOMPRESSED_LAYER_MIME = 'application/vnd.docker.image.rootfs.diff.tar'

_OCI_LAYER_FOR_DOCKER = {
    media_types.LAYER_MIME: media_types.OCI_GZIP_LAYER_MIME,
    media_types.FOREIGN_LAYER_MIME:
        media_types.OCI_NONDISTRIBUTABLE_GZIP_LAYER_MIME,
    DOCKER_UNCOMPRESSED_LAYER_MIME: media_types.OCI_LAYER_MIME,
}

_DOCKER_LAYER_FOR_OCI = {
    media_types.OCI_GZIP_LAYER_MIME: media_types.LAYER_MIME,
    media_types.OCI_LAYER_MIME: DOCKER_UNCOMPRESSED_LAYER_MIME,
    media_types.OCI_NONDISTRIBUTABLE_GZIP_LAYER_MIME:
        media_types.FOREIGN_LAYER_MIME,
    # Docker has no uncompressed foreign type; foreign is what matters.
    media_types.OCI_NONDISTRIBUTABLE_LAYER_MIME: media_types.FOREIGN_LAYER_MIME,
}


def oci_layer_type(media_type: Optional[str]) -> str:
    """The OCI type of a layer described by MEDIA_TYPE in a v2.2 manifest.

    Types that are already OCI (or unknown) are kept; a layer without a
    type is taken to be a gzipped Docker layer.
    """
    if not media_type:
        return media_types.OCI_GZIP_LAYER_MIME
    return _OCI_LAYER_FOR_DOCKER.get(media_type, media_type)


def docker_layer_type(media_type: Optional[str]) -> str:
    """The Docker type of a layer described by MEDIA_TYPE in an OCI manifest.

    Types without a Docker counterpart (zstd, unknown ones) are kept.
    """
    if not media_type:
        return media_types.LAYER_MIME
    return _DOCKER_LAYER_FOR_OCI.get(media_type, media_type)


class _Rewritten(docker_image.Delegate):
    """An image whose manifest is the inner one with its types rewritten.

    The rewritten text is computed once. Like upstream's, entering and
    exiting do nothing: the inner image is expected to be entered already.
    """

    _MEDIA_TYPE = ''
    _CONFIG_TYPE = ''
    # Only media types change: every blob, and so every fast path, holds.
    passes_on = capabilities.ALL

    def __init__(self, image: docker_image.DockerImage):
        super().__init__(image)
        self._lock = threading.Lock()
        self._manifest: Optional[str] = None

    def _layer_type(self, media_type: Optional[str]) -> str:
        raise NotImplementedError

    def manifest(self) -> str:
        with self._lock:
            if self._manifest is None:
                manifest = json.loads(self._image.manifest())
                manifest['mediaType'] = self._MEDIA_TYPE
                manifest['config']['mediaType'] = self._CONFIG_TYPE
                for layer in manifest['layers']:
                    layer['mediaType'] = self._layer_type(
                        layer.get('mediaType'))
                self._manifest = json.dumps(manifest, sort_keys=True)
            return self._manifest

    def media_type(self) -> str:
        return self._MEDIA_TYPE

    def distributable_blob_set(self):
        # From this manifest's types (not the inner image's).
        return docker_image.DockerImage.distributable_blob_set(self)

    def __enter__(self) -> '_Rewritten':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass


class OCIFromV22(_Rewritten):
    """Serves a v2.2 image with an OCI manifest."""

    _MEDIA_TYPE = media_types.OCI_MANIFEST_MIME
    _CONFIG_TYPE = media_types.OCI_CONFIG_JSON_MIME

    def __init__(self, image: docker_image.DockerImage,
                 upstream_layer_types: bool = False):
        """IMAGE must be entered already.

        With UPSTREAM_LAYER_TYPES every layer is labelled OCI_LAYER_MIME, as
        upstream did (wrong for gzip and foreign layers, but digest-exact).
        """
        super().__init__(image)
        self._upstream_layer_types = upstream_layer_types

    def _layer_type(self, media_type: Optional[str]) -> str:
        if self._upstream_layer_types:
            return media_types.OCI_LAYER_MIME
        return oci_layer_type(media_type)


class V22FromOCI(_Rewritten):
    """Serves an OCI image with a Docker v2.2 manifest."""

    _MEDIA_TYPE = media_types.MANIFEST_SCHEMA2_MIME
    _CONFIG_TYPE = media_types.CONFIG_JSON_MIME

    def _layer_type(self, media_type: Optional[str]) -> str:
        return docker_layer_type(media_type)


class _ListRewritten(docker_image_list.Delegate):
    """A list whose manifest is the inner one with another media type.

    When recursive, entering converts every child and rebuilds the list
    with `FromList` from the converted children.
    """

    _MEDIA_TYPE = ''

    def __init__(self, image: docker_image_list.DockerImageList,
                 recursive: bool = True):
        super().__init__(image)
        self._recursive = recursive

    def _convert_image(self, image: docker_image.DockerImage
                       ) -> docker_image.DockerImage:
        raise NotImplementedError

    def _convert_list(self, image: docker_image_list.DockerImageList
                      ) -> docker_image_list.DockerImageList:
        raise NotImplementedError

    def manifest(self) -> str:
        manifest: Dict[str, Any] = json.loads(self._image.manifest())
        manifest['mediaType'] = self._MEDIA_TYPE
        return json.dumps(manifest, sort_keys=True)

    def media_type(self) -> str:
        return self._MEDIA_TYPE

    def __enter__(self) -> '_ListRewritten':
        if not self._recursive:
            return self
        converted = []
        for platform, child in self._image:
            if isinstance(child, docker_image_list.DockerImageList):
                result = self._convert_list(child)
            else:
                result = self._convert_image(child)
            with result:
                converted.append((platform, result))
        with docker_image_list.FromList(converted) as image_list:
            self._image = image_list
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass


class IndexFromList(_ListRewritten):
    """Serves an OCI image index from a Docker manifest list."""

    _MEDIA_TYPE = media_types.OCI_IMAGE_INDEX_MIME

    def _convert_image(self, image):
        return OCIFromV22(image)

    def _convert_list(self, image):
        return IndexFromList(image)


class ListFromIndex(_ListRewritten):
    """Serves a Docker manifest list from an OCI image index."""

    _MEDIA_TYPE = media_types.MANIFEST_LIST_MIME

    def _convert_image(self, image):
        return V22FromOCI(image)

    def _convert_list(self, image):
        return ListFromIndex(image)
