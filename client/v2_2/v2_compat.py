"""Schema 2 ↔ schema 1 compatibility: the v1 layer chain of a v2.2 image.

docker-save tarballs name each layer directory by a v1 id. Those ids are
derived from the config's `history` exactly as upstream's `V2FromV22` does,
so a saved tarball has the same member names (and bytes) as upstream's:

- every history entry is one v1 layer; an entry with an `empty_layer` key
  gets `EMPTY_TAR_DIGEST` and is marked `throwaway`, any other entry takes
  the next manifest layer;
- `id = sha256hex(blobhex + ' ' + parent)`, the top entry appending
  `' ' + raw_config`; the base has parent `''`.

Upstream silently dropped layers when the history has fewer non-empty
entries than the manifest has layers (or crashed when it had more). Here a
history that does not line up with the layers is replaced by one bare entry
per layer, so no layer is lost; histories that line up give equal bytes.
"""
import dataclasses
import json
from typing import Any, Dict, List, Union

from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http

# The gzip of a tar of 1024 zero bytes (two empty records), as Docker and
# the registry use for schema 1 layers that change nothing.
EMPTY_TAR_DIGEST = (
    'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4')
EMPTY_TAR_BYTES = bytes.fromhex(
    '1f8b080000096e8800ff621805a360148c5800080000ffff2eafb5ef00040000')
EMPTY_TAR_DIFF_ID = (
    'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef')
EMPTY_TAR_SIZE = 1024

# Keys the top v1 layer copies from the config, in upstream's order.
_TOP_KEYS = ('architecture', 'container', 'docker_version', 'os', 'config',
             'container_config', 'created')
_HISTORY_KEYS = ('created', 'comment', 'author')


class BadDigestException(Exception):
    """A digest is not of the form `algorithm:hex`."""


@dataclasses.dataclass(frozen=True)
class V1Layer:
    """One v1 layer of a v2.2 image, as the schema 1 conversion sees it."""
    id: str
    parent: str
    digest: str
    media_type: str
    throwaway: bool
    v1_compatibility: str


def _v1_id(digest: str, parent: str, raw_config: str = '') -> str:
    parts = digest.rsplit(':', 1)
    if len(parts) != 2:
        raise BadDigestException('Invalid Digest: %s, must be in '
                                 'algorithm : blobSumHex format.' % digest)
    data = parts[1] + ' ' + parent
    if raw_config:
        data += ' ' + raw_config
    return docker_digest.SHA256(data.encode('utf8'), '')


def _compatibility(layer_id: str, parent: str, history: Dict[str, Any],
                   config: Dict[str, Any], top: bool) -> str:
    out: Dict[str, Any] = {'id': layer_id}
    if parent:
        out['parent'] = parent
    if 'empty_layer' in history:
        out['throwaway'] = True
    if top:
        for key in _TOP_KEYS:
            if key in config:
                out[key] = config[key]
    else:
        if 'created_by' in history:
            out['container_config'] = {'Cmd': [history['created_by']]}
        for key in _HISTORY_KEYS:
            if key in history:
                out[key] = history[key]
    return json.dumps(out, sort_keys=True)


def _histories(config: Dict[str, Any],
               layers: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The history entries to walk: the config's, or one per layer."""
    history = config.get('history') or []
    if not isinstance(history, list):
        history = []
    history = [h if isinstance(h, dict) else {} for h in history]
    consuming = sum(1 for h in history if 'empty_layer' not in h)
    if consuming != len(layers):
        history = [{} for _ in layers]
    if not history:
        # No layers and no history: one throwaway entry gives the image a
        # top id, as an all-empty history would.
        history = [{'empty_layer': True}]
    return history


def v1_layers(manifest: Union[str, Dict[str, Any]],
              raw_config: str) -> List[V1Layer]:
    """The v1 layers of a schema 2 image, base first.

    MANIFEST is the schema 2 manifest (text or parsed), RAW_CONFIG the
    config blob as text (its exact text feeds the top layer's id).
    """
    if isinstance(manifest, str):
        manifest = json.loads(manifest)
    config = json.loads(raw_config)
    layers = manifest.get('layers') or []
    histories = _histories(config, layers)

    out: List[V1Layer] = []
    parent = ''
    next_layer = 0
    for index, history in enumerate(histories):
        top = index == len(histories) - 1
        throwaway = 'empty_layer' in history
        if throwaway:
            digest = EMPTY_TAR_DIGEST
            media_type = docker_http.LAYER_MIME
        else:
            layer = layers[next_layer]
            next_layer += 1
            digest = layer['digest']
            media_type = layer.get('mediaType', docker_http.LAYER_MIME)
        layer_id = _v1_id(digest, parent, raw_config if top else '')
        out.append(V1Layer(
            id=layer_id, parent=parent, digest=digest, media_type=media_type,
            throwaway=throwaway,
            v1_compatibility=_compatibility(layer_id, parent, history, config,
                                            top)))
        parent = layer_id
    return out
