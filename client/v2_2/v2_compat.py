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

The other way, `V22FromV2` presents a schema 1 image as a v2.2 one, with a
config synthesized by `config_file` from the v1 compatibility entries and
diff_ids found by inflating each layer as it streams past (see its
docstring); `V2FromV22` presents a v2.2 image as an unsigned schema 1 one.
"""
import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
from typing import Any, Dict, List, Optional, Sequence, Union

from containerregistry.client.v2 import docker_image as v2_image
from containerregistry.client.v2 import util as v2_util
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import parallel

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
    parsed = json.loads(manifest) if isinstance(manifest, str) else manifest
    config = json.loads(raw_config)
    layers = parsed.get('layers') or []
    histories = _histories(config, layers)

    out: List[V1Layer] = []
    parent = ''
    next_layer = 0
    for index, history in enumerate(histories):
        top = index == len(histories) - 1
        throwaway = 'empty_layer' in history
        if throwaway:
            digest = EMPTY_TAR_DIGEST
            media_type = media_types.LAYER_MIME
        else:
            layer = layers[next_layer]
            next_layer += 1
            digest = layer['digest']
            media_type = layer.get('mediaType', media_types.LAYER_MIME)
        layer_id = _v1_id(digest, parent, raw_config if top else '')
        out.append(V1Layer(
            id=layer_id, parent=parent, digest=digest, media_type=media_type,
            throwaway=throwaway,
            v1_compatibility=_compatibility(layer_id, parent, history, config,
                                            top)))
        parent = layer_id
    return out


# Schema 1 -> v2.2.


def config_file(v1_compats: Sequence[Dict[str, Any]],
                diff_ids: Sequence[str]) -> str:
    """The v2.2 config of a schema 1 image, as upstream synthesized it.

    V1_COMPATS are the parsed `v1Compatibility` entries, base first; each
    gives one history entry (`created_by` = the first word of its
    `container_config.Cmd`, and `created`). The top entry lends the image
    fields. Serialized with sorted keys, so the config digest is upstream's.
    """
    histories = []
    top: Dict[str, Any] = {}
    for v1_compat in v1_compats:
        top = v1_compat
        history: Dict[str, Any] = {}
        container_config = v1_compat.get('container_config')
        if isinstance(container_config, dict) and container_config.get('Cmd'):
            history['created_by'] = container_config['Cmd'][0]
        if 'created' in v1_compat:
            history['created'] = v1_compat['created']
        histories.append(history)
    config: Dict[str, Any] = {
        'history': histories,
        'rootfs': {'diff_ids': list(diff_ids), 'type': 'layers'},
    }
    for key in ('architecture', 'config', 'container', 'container_config',
                'docker_version', 'os', 'created'):
        if key in top:
            config[key] = top[key]
    return json.dumps(config, sort_keys=True)


_CHUNK = 1 << 20


class _Cancelled(parallel.Cancelled):
    """Another layer failed, so this one stops reading."""


class _Tee:
    """Passes a blob's bytes through, counting them and copying them to OUT."""

    def __init__(self, reader, out, cancelled: threading.Event):
        self._reader = reader
        self._out = out
        self._cancelled = cancelled
        self.size = 0

    def read(self, amt: int = -1) -> bytes:
        if self._cancelled.is_set():
            raise _Cancelled()
        data = self._reader.read(amt)
        if data:
            self.size += len(data)
            if self._out is not None:
                self._out.write(data)
        return data

    def close(self) -> None:
        self._reader.close()


@dataclasses.dataclass(frozen=True)
class _LayerInfo:
    diff_id: str
    size: int
    spool: Optional[str]  # a verified local copy of the blob, if kept


class V22FromV2(docker_image.StreamingImage):
    """A schema 1 image (client.v2 `DockerImage`) seen as a v2.2 image.

    The manifest is schema 2: the schema 1 blobs, base first, all of them
    (throwaway entries keep their empty-tar blob, as upstream), and a config
    from `config_file`. The digest is therefore synthetic: the sha256 of
    that manifest, not the registry's schema 1 digest.

    diff_ids need every layer inflated. That happens once, the first time
    the config, the manifest or the digest is asked for, with up to THREADS
    layers at a time, each hashed while it streams and never held in
    memory. With SPOOL, each blob is also kept in a temporary file as it
    passes, and `blob_stream()` serves that copy (a file handle on a file
    removed once every layer entry using it was opened), so a pull reads
    each blob from the registry once; `__exit__` removes what is left.
    The empty-tar blob is served from memory, without asking the registry.
    """

    def __init__(self, v2_img, threads: int = 8, spool: bool = True):
        self._v2_image = v2_img
        self._threads = max(1, threads)
        self._spool = spool
        self._lock = threading.Lock()
        self._spool_lock = threading.Lock()
        self._config: Optional[str] = None
        self._manifest: Optional[str] = None
        self._layers: Dict[str, _LayerInfo] = {}
        self._opens_left: Dict[str, int] = {}
        self._spool_dir: Optional[str] = None

    def _schema1(self) -> Dict[str, Any]:
        manifest = json.loads(self._v2_image.manifest())
        layers = manifest.get('fsLayers') or []
        history = manifest.get('history') or []
        if len(layers) != len(history):
            raise v2_util.BadManifestException(
                'schema 1 manifest has %d fsLayers but %d history entries'
                % (len(layers), len(history)))
        return manifest

    def _layer_info(self, digest: str,
                    cancelled: threading.Event) -> _LayerInfo:
        """Streams one blob: checks its digest, hashes the tar inside."""
        if digest == EMPTY_TAR_DIGEST:
            return _LayerInfo(EMPTY_TAR_DIFF_ID, len(EMPTY_TAR_BYTES), None)
        blob = self._v2_image.blob_stream(digest)
        if not isinstance(blob, docker_digest.VerifyingReader):
            blob = docker_digest.VerifyingReader(blob, digest)
        spool: Optional[str] = None
        temp = ''
        out = None
        try:
            if self._spool_dir is not None:
                spool = os.path.join(self._spool_dir, digest.split(':', 1)[-1])
                temp = spool + '.part'
                out = open(temp, 'wb')
            tee = _Tee(blob, out, cancelled)
            tar_hash = hashlib.sha256()
            inner, compressed = compression.gunzip_if_compressed(tee)
            with inner:
                try:
                    while True:
                        chunk = inner.read(_CHUNK)
                        if not chunk:
                            break
                        tar_hash.update(chunk)
                except (_Cancelled, docker_digest.DigestMismatchedError):
                    raise
                except Exception:
                    # Data that does not inflate is most likely damaged in
                    # transit: let the blob digest say so, if it can.
                    _drain(tee)
                    raise
                # Whatever the inflater left unread still has to be hashed.
                _drain(tee)
            if out is not None and spool is not None:
                out.close()
                os.replace(temp, spool)
        except BaseException:
            blob.close()
            if out is not None:
                out.close()
                _remove(temp)
            raise
        diff_id = ('sha256:' + tar_hash.hexdigest()) if compressed else digest
        return _LayerInfo(diff_id, tee.size, spool)

    def _layer_infos(self, digests: List[str]) -> Dict[str, _LayerInfo]:
        cancelled = threading.Event()
        infos = parallel.run_all(
            [functools.partial(self._layer_info, d, cancelled)
             for d in digests], self._threads, cancelled, 'schema1')
        return dict(zip(digests, infos))

    def _process(self) -> None:
        with self._lock:
            if self._manifest is not None:
                return
            schema1 = self._schema1()
            v1_compats = [json.loads(h.get('v1Compatibility') or '{}')
                          for h in reversed(schema1['history'])]
            digests = [layer['blobSum']
                       for layer in reversed(schema1['fsLayers'])]
            unique = list(dict.fromkeys(digests))
            if self._spool and self._spool_dir is None and any(
                    d != EMPTY_TAR_DIGEST for d in unique):
                self._spool_dir = tempfile.mkdtemp(prefix='cr-schema1-')
            logging.info('Inflating %d schema 1 layers to find their '
                         'diff_ids', len(unique))
            infos = self._layer_infos(unique)
            with self._spool_lock:
                self._layers = infos
                self._opens_left = {d: digests.count(d) for d in unique}
            raw_config = config_file(v1_compats,
                                     [infos[d].diff_id for d in digests])
            config_bytes = raw_config.encode('utf8')
            self._config = raw_config
            self._manifest = json.dumps({
                'schemaVersion': 2,
                'mediaType': media_types.MANIFEST_SCHEMA2_MIME,
                'config': {
                    'mediaType': media_types.CONFIG_JSON_MIME,
                    'size': len(config_bytes),
                    'digest': docker_digest.SHA256(config_bytes),
                },
                'layers': [{
                    'mediaType': media_types.LAYER_MIME,
                    'size': infos[d].size,
                    'digest': d,
                } for d in digests],
            }, sort_keys=True)

    def manifest(self) -> str:
        self._process()
        assert self._manifest is not None  # _process() set it
        return self._manifest

    def config_file(self) -> str:
        self._process()
        assert self._config is not None  # _process() set it
        return self._config

    def media_type(self) -> str:
        return media_types.MANIFEST_SCHEMA2_MIME

    def fs_layers(self) -> List[str]:
        return self._v2_image.fs_layers()

    def blob_size(self, digest: str) -> int:
        if digest == EMPTY_TAR_DIGEST:
            return len(EMPTY_TAR_BYTES)
        info = self._layers.get(digest)
        if info is not None:
            return info.size
        if self._is_config(digest):
            return len(self.config_file().encode('utf8'))
        return self._v2_image.blob_size(digest)

    def _is_config(self, digest: str) -> bool:
        """Whether DIGEST names the config this view makes up (asked only
        for what no layer is, so that layers never wait for the config)."""
        return digest not in self.fs_layers() and digest == self.config_blob()

    def _open_spool(self, digest: str):
        """The spooled copy of DIGEST, if there is one left, else None."""
        with self._spool_lock:
            info = self._layers.get(digest)
            if info is None or info.spool is None:
                return None
            try:
                reader = open(info.spool, 'rb')
            except FileNotFoundError:
                return None
            self._opens_left[digest] -= 1
            if self._opens_left[digest] <= 0:
                # The open handle keeps the data; the name is not needed.
                _remove(info.spool)
                self._layers[digest] = dataclasses.replace(info, spool=None)
            return reader

    def blob_stream(self, digest: str):
        if digest == EMPTY_TAR_DIGEST:
            return io.BytesIO(EMPTY_TAR_BYTES)
        if self._is_config(digest):
            return io.BytesIO(self.config_file().encode('utf8'))
        spooled = self._open_spool(digest)
        if spooled is not None:
            return spooled
        return self._v2_image.blob_stream(digest)

    def blob(self, digest: str) -> bytes:
        with self.blob_stream(digest) as reader:
            return reader.read()

    def uncompressed_blob(self, digest: str) -> bytes:
        with self.uncompressed_blob_stream(digest) as reader:
            return reader.read()

    def __enter__(self) -> 'V22FromV2':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        with self._spool_lock:
            spool_dir, self._spool_dir = self._spool_dir, None
            self._layers = {d: dataclasses.replace(i, spool=None)
                            for d, i in self._layers.items()}
        if spool_dir is not None:
            shutil.rmtree(spool_dir, ignore_errors=True)

    def __str__(self) -> str:
        return str(self._v2_image)


# v2.2 -> schema 1.


class V2FromV22(v2_image.DockerImage):
    """A v2.2 image seen as an unsigned schema 1 image (name/tag `unused`).

    Its layers and v1 compatibility entries are those of `v1_layers`, top
    first; `throwaway` entries name the empty-tar blob, which is served
    from memory. As upstream, the manifest is not signed (`Sign` is a
    no-op), so its digest is the sha256 of its bytes.
    """

    def __init__(self, v2_2_img: docker_image.DockerImage):
        self._v2_2_image = v2_2_img
        self._manifest: Optional[str] = None

    def manifest(self) -> str:
        if self._manifest is None:
            raw_config = self._v2_2_image.config_file()
            config = json.loads(raw_config)
            layers = list(reversed(v1_layers(self._v2_2_image.manifest(),
                                             raw_config)))
            schema1: Dict[str, Any] = {
                'schemaVersion': 1,
                'name': 'unused',
                'tag': 'unused',
                'fsLayers': [{'blobSum': layer.digest} for layer in layers],
                'history': [{'v1Compatibility': layer.v1_compatibility}
                            for layer in layers],
            }
            if 'architecture' in config:
                schema1['architecture'] = config['architecture']
            self._manifest = v2_util.Sign(json.dumps(schema1, sort_keys=True))
        return self._manifest

    def blob_size(self, digest: str) -> int:
        if digest == EMPTY_TAR_DIGEST:
            return len(EMPTY_TAR_BYTES)
        return self._v2_2_image.blob_size(digest)

    def blob(self, digest: str) -> bytes:
        if digest == EMPTY_TAR_DIGEST:
            return EMPTY_TAR_BYTES
        return self._v2_2_image.blob(digest)

    def blob_stream(self, digest: str):
        if digest == EMPTY_TAR_DIGEST:
            return io.BytesIO(EMPTY_TAR_BYTES)
        return self._v2_2_image.blob_stream(digest)

    def diff_id(self, digest: str) -> str:
        """The v2.2 config's diff_id for the layer blob DIGEST."""
        if digest == EMPTY_TAR_DIGEST:
            return EMPTY_TAR_DIFF_ID
        return self._v2_2_image.digest_to_diff_id(digest)

    def __enter__(self) -> 'V2FromV22':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass

    def __str__(self) -> str:
        return str(self._v2_2_image)


def _drain(reader) -> None:
    while reader.read(_CHUNK):
        pass


def _remove(path: Optional[str]) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
