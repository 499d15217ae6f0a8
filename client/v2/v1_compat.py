"""v1 layer chains ↔ schema 1 images, the two forms of one history.

A schema 1 manifest already is a v1 chain: `history[i].v1Compatibility` is
the v1 JSON of the layer whose blob is `fsLayers[i]`, top first, its `id`
and `parent` linking the chain. `V1FromV2` reads it so (an id listed twice
is one layer, as upstream); `V2FromV1` writes a v1 image's chain as an
unsigned schema 1 manifest named `unused:unused`, as upstream did.
"""
import json
from typing import Dict, List, Optional

from containerregistry.client.v1 import docker_image as v1_image
from containerregistry.client.v2 import docker_digest
from containerregistry.client.v2 import docker_image as v2_image
from containerregistry.client.v2 import util


class V1FromV2(v1_image.DockerImage):
    """A schema 1 image (already entered) seen as a v1 layer chain."""

    def __init__(self, v2_img: v2_image.DockerImage):
        self._v2_image = v2_img
        self._ComputeLayerMapping()

    def _ComputeLayerMapping(self) -> None:
        """Indexes the manifest: v1 id -> blob digest and JSON, and the
        chain's order (top first)."""
        manifest = json.loads(self._v2_image.manifest())
        try:
            pairs = [(entry['v1Compatibility'], layer['blobSum'])
                     for entry, layer in zip(manifest['history'],
                                             manifest['fsLayers'],
                                             strict=True)]
            ids = [json.loads(v1_json)['id'] for v1_json, _ in pairs]
        except (KeyError, TypeError, ValueError) as e:
            raise util.BadManifestException(
                'Schema 1 manifest whose history and fsLayers do not pair '
                'up into v1 layers: %s' % e) from e
        self._v1_to_v2: Dict[str, str] = {}
        self._v1_json: Dict[str, str] = {}
        self._v1_ancestry: List[str] = []
        for layer_id, (v1_json, digest) in zip(ids, pairs):
            if layer_id in self._v1_to_v2:
                if (self._v1_to_v2[layer_id], self._v1_json[layer_id]) != (
                        digest, v1_json):
                    raise util.BadManifestException(
                        'v1 id %s is listed twice, with different contents'
                        % layer_id)
                continue
            self._v1_to_v2[layer_id] = digest
            self._v1_json[layer_id] = v1_json
            self._v1_ancestry.append(layer_id)
        if not self._v1_ancestry:
            raise util.BadManifestException('Schema 1 manifest without layers')

    def _digest(self, layer_id: str) -> str:
        try:
            return self._v1_to_v2[layer_id]
        except KeyError:
            raise ValueError('unknown layer id %r' % layer_id) from None

    def top(self) -> str:
        return self._v1_ancestry[0]

    def repositories(self) -> Dict[str, Dict[str, str]]:
        """Empty: a registry image comes with no `repositories` file."""
        return {}

    def parent(self, layer_id: str) -> Optional[str]:
        ancestry = self.ancestry(layer_id)
        return ancestry[1] if len(ancestry) > 1 else None

    def json(self, layer_id: str) -> str:
        return self._v1_json.get(layer_id, '{}')

    def layer(self, layer_id: str) -> bytes:
        return self._v2_image.blob(self._digest(layer_id))

    def uncompressed_layer_stream(self, layer_id: str):
        return self._v2_image.uncompressed_blob_stream(self._digest(layer_id))

    def ancestry(self, layer_id: str) -> List[str]:
        self._digest(layer_id)
        return self._v1_ancestry[self._v1_ancestry.index(layer_id):]

    def __enter__(self) -> 'V1FromV2':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback) -> None:
        pass


class V2FromV1(v2_image.DockerImage):
    """A v1 image (already entered) seen as an unsigned schema 1 image.

    Each layer's blob is its `layer()` (gzipped); the manifest digests them
    when it is built, so the v1 image must give the same bytes each time.
    """

    def __init__(self, v1_img: v1_image.DockerImage):
        self._v1_image = v1_img
        self._ProcessImage()

    def _ProcessImage(self) -> None:
        ancestry = self._v1_image.ancestry(self._v1_image.top())
        self._layer_map: Dict[str, str] = {}
        fs_layers = []
        for layer_id in ancestry:
            digest = docker_digest.SHA256(self._v1_image.layer(layer_id))
            fs_layers.append({'blobSum': digest})
            self._layer_map[digest] = layer_id
        self._manifest = util.Sign(json.dumps({
            'schemaVersion': 1,
            'name': 'unused',
            'tag': 'unused',
            'architecture': 'amd64',
            'fsLayers': fs_layers,
            'history': [{'v1Compatibility': self._v1_image.json(layer_id)}
                        for layer_id in ancestry],
        }, sort_keys=True))

    def _layer_id(self, digest: str) -> str:
        try:
            return self._layer_map[digest]
        except KeyError:
            raise ValueError('unknown blob %s' % digest) from None

    def manifest(self) -> str:
        return self._manifest

    def blob(self, digest: str) -> bytes:
        return self._v1_image.layer(self._layer_id(digest))

    def uncompressed_blob_stream(self, digest: str):
        return self._v1_image.uncompressed_layer_stream(self._layer_id(digest))

    def __enter__(self) -> 'V2FromV1':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass
