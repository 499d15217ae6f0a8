"""Docker schema 1 (v2.1) images for tests: built, JWS-signed and pushed.

Schema 1 manifests are signed with libtrust's "pretty JWS": the manifest is
written with 3-space indentation, and the signatures are spliced in before
its closing brace. Each signature's protected header records the length of
the signed prefix (`formatLength`) and what followed it (`formatTail`), so a
reader can cut the signatures out again and get the exact signed payload;
that payload's sha256 is the manifest digest the registry reports.

The real registry (distribution 2.8) accepts schema 1 pushes only with
`compatibility: schema1: enabled: true`, and checks the signature and that
every `fsLayers` blob exists; `start_registry()` starts one so configured.
"""
import base64
import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
from typing import Dict, List, Optional, Sequence

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature)

from containerregistry.client.v2 import docker_image as v2_image
from containerregistry.testing import images
from containerregistry.testing import registry as reg

SIGNED_MIME = 'application/vnd.docker.distribution.manifest.v1+prettyjws'
UNSIGNED_MIME = 'application/vnd.docker.distribution.manifest.v1+json'
SCHEMA1_CONFIG = {'compatibility': {'schema1': {'enabled': True}}}
SIGNATURE_TIME = '2020-01-01T00:00:00Z'
CREATED = images.CREATED


def start_registry(**kwargs) -> reg.Registry:
    """A real registry that accepts schema 1 manifest pushes."""
    return reg.start_registry(extra_config=SCHEMA1_CONFIG, **kwargs)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """libtrust's key id: base32 of 240 bits of sha256(SPKI), in groups of 4."""
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode('ascii')
    return ':'.join(text[i:i + 4] for i in range(0, len(text), 4))


def _jwk(public_key: ec.EllipticCurvePublicKey) -> dict:
    numbers = public_key.public_numbers()
    return {'crv': 'P-256', 'kid': key_id(public_key), 'kty': 'EC',
            'x': b64url(numbers.x.to_bytes(32, 'big')),
            'y': b64url(numbers.y.to_bytes(32, 'big'))}


def signature(payload: bytes, key: ec.EllipticCurvePrivateKey,
              time: str = SIGNATURE_TIME) -> dict:
    """One libtrust JWS signature over PAYLOAD (pretty JSON ending in `}`)."""
    close = len(payload.rstrip()) - 1
    if payload[close:close + 1] != b'}':
        raise ValueError('payload does not end with a JSON object')
    length = len(payload[:close].rstrip())
    protected = b64url(json.dumps({
        'formatLength': length,
        'formatTail': b64url(payload[length:]),
        'time': time,
    }).encode('utf8'))
    signing_input = (protected + '.' + b64url(payload)).encode('ascii')
    r, s = decode_dss_signature(key.sign(signing_input,
                                         ec.ECDSA(hashes.SHA256())))
    return {'header': {'jwk': _jwk(key.public_key()), 'alg': 'ES256'},
            'signature': b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big')),
            'protected': protected}


def sign(payload: bytes, keys: Sequence[ec.EllipticCurvePrivateKey] = (),
         time: str = SIGNATURE_TIME) -> bytes:
    """PAYLOAD with the signatures of KEYS (a new key if none), as libtrust.

    The signed bytes are PAYLOAD[:formatLength] + formatTail: everything
    but the whitespace and `}` at the end, where the signatures go.
    """
    keys = list(keys) or [new_key()]
    sigs = [signature(payload, k, time) for k in keys]
    close = len(payload.rstrip()) - 1
    length = len(payload[:close].rstrip())
    indent = '   '
    listing = json.dumps(sigs, indent=3).replace('\n', '\n' + indent)
    return (payload[:length] + (',\n%s"signatures": %s\n}' % (indent, listing))
            .encode('utf8'))


def payload_of(signed: bytes) -> bytes:
    """The signed payload of a pretty JWS, independently of the library."""
    sig = json.loads(signed)['signatures'][0]
    pad = '=' * (-len(sig['protected']) % 4)
    protected = json.loads(base64.urlsafe_b64decode(sig['protected'] + pad))
    tail = protected['formatTail']
    return (signed[:protected['formatLength']]
            + base64.urlsafe_b64decode(tail + '=' * (-len(tail) % 4)))


def empty_tar_gz() -> bytes:
    """The blob Docker used for layers that change no file (a3ed95...)."""
    return bytes.fromhex(
        '1f8b080000096e8800ff621805a360148c5800080000ffff2eafb5ef00040000')


EMPTY_DIGEST = images.sha256(empty_tar_gz())


@dataclasses.dataclass
class Entry:
    """One v1 layer of a schema 1 image (base first in `Schema1Image`)."""
    blob: bytes
    tar: bytes
    v1_compatibility: str
    throwaway: bool

    @property
    def digest(self) -> str:
        return images.sha256(self.blob)

    @property
    def diff_id(self) -> str:
        return images.sha256(self.tar)


@dataclasses.dataclass
class Schema1Image:
    """A built schema 1 image: signed manifest bytes and its blobs."""
    manifest: bytes
    payload: bytes
    entries: List[Entry]
    media_type: str = SIGNED_MIME

    @property
    def digest(self) -> str:
        """What the registry calls it: sha256 of the signed payload."""
        return images.sha256(self.payload)

    def blobs(self) -> Dict[str, bytes]:
        return {e.digest: e.blob for e in self.entries}

    @property
    def fs_layers(self) -> List[str]:
        """`fsLayers[].blobSum`, top first as in the manifest."""
        return [e.digest for e in reversed(self.entries)]


def _layer_id(seed: str) -> str:
    return hashlib.sha256(seed.encode('utf8')).hexdigest()


def build(layers: Sequence[bytes], name: str = 'test/schema1',
          tag: str = 'latest', throwaway: Sequence[int] = (),
          keys: Sequence[ec.EllipticCurvePrivateKey] = (),
          signed: bool = True, architecture: str = 'amd64',
          config: Optional[dict] = None) -> Schema1Image:
    """A schema 1 image over LAYERS (uncompressed tars, base first).

    Positions listed in THROWAWAY become history-only entries whose blob is
    the empty tar (`throwaway: true`), inserted before the layer of that
    index (so `throwaway=[len(layers)]` puts one on top).
    """
    tars: List[Optional[bytes]] = list(layers)
    for position in sorted(throwaway, reverse=True):
        tars.insert(position, None)
    entries: List[Entry] = []
    parent = ''
    for i, tar in enumerate(tars):
        top = i == len(tars) - 1
        layer_id = _layer_id('%s %d %s' % (name, i, parent))
        compat: dict = {'id': layer_id, 'created': CREATED,
                        'container_config': {
                            'Cmd': ['/bin/sh', '-c', '#(nop) step %d' % i]}}
        if parent:
            compat['parent'] = parent
        if tar is None:
            compat['throwaway'] = True
        if top:
            compat.update({'architecture': architecture, 'os': 'linux',
                           'docker_version': '18.09.7',
                           'container': 'c' * 64,
                           'config': config or {
                               'Env': ['PATH=/usr/bin:/bin'],
                               'Cmd': ['/bin/true']}})
        if tar is None:
            blob, plain = empty_tar_gz(), gzip.decompress(empty_tar_gz())
        else:
            blob, plain = images.gzip_bytes(tar), tar
        entries.append(Entry(blob=blob, tar=plain,
                             v1_compatibility=json.dumps(compat, sort_keys=True),
                             throwaway=tar is None))
        parent = layer_id
    manifest = {
        'schemaVersion': 1,
        'name': name,
        'tag': tag,
        'architecture': architecture,
        'fsLayers': [{'blobSum': e.digest} for e in reversed(entries)],
        'history': [{'v1Compatibility': e.v1_compatibility}
                    for e in reversed(entries)],
    }
    payload = json.dumps(manifest, indent=3).encode('utf8')
    if not signed:
        return Schema1Image(manifest=payload, payload=payload, entries=entries,
                            media_type=UNSIGNED_MIME)
    return Schema1Image(manifest=sign(payload, keys), payload=payload,
                        entries=entries)


def _push_blob(client: images.Client, repo: str, digest: str,
               data: bytes) -> None:
    status, _, _ = client.request('HEAD', repo, 'blobs/' + digest)
    if status == 200:
        return
    status, headers, body = client.request('POST', repo, 'blobs/uploads/',
                                           body=b'')
    if status != 202:
        raise RuntimeError('POST upload -> %d %r' % (status, body))
    location = headers['Location']
    if location.startswith('/'):
        location = client.registry.url + location
    sep = '&' if '?' in location else '?'
    prefix = '%s/v2/%s/' % (client.registry.url, repo)
    if not location.startswith(prefix):
        raise RuntimeError('unexpected upload location %r' % location)
    status, _, body = client.request(
        'PUT', repo, location[len(prefix):] + sep + 'digest=' + digest,
        body=data, headers={'Content-Type': 'application/octet-stream'})
    if status != 201:
        raise RuntimeError('PUT blob -> %d %r' % (status, body))


@dataclasses.dataclass
class PushedSchema1:
    registry: object
    repo: str
    tag: str
    digest: str
    image: Schema1Image

    @property
    def by_tag(self) -> str:
        return '%s/%s:%s' % (self.registry.host, self.repo, self.tag)

    @property
    def by_digest(self) -> str:
        return '%s/%s@%s' % (self.registry.host, self.repo, self.digest)


def push(registry, ref: str, image: Schema1Image) -> PushedSchema1:
    """Uploads IMAGE's blobs and PUTs its manifest as REF=`repo:tag`.

    Returns what the registry reports; raises unless it names the manifest
    by its payload digest and serves that payload under tag and digest.
    (The registry signs a schema 1 manifest anew, with its own key and the
    current time, on every GET: only the payload stays the same.)
    """
    repo, _, tag = ref.rpartition(':')
    client = images.Client(registry)
    for digest, data in image.blobs().items():
        _push_blob(client, repo, digest, data)
    status, headers, body = client.request(
        'PUT', repo, 'manifests/' + tag, body=image.manifest,
        headers={'Content-Type': image.media_type})
    if status not in (200, 201, 202):
        raise RuntimeError('PUT schema 1 manifest -> %d %r' % (status, body))
    digest = headers.get('Docker-Content-Digest')
    if digest != image.digest:
        raise RuntimeError('registry calls the manifest %s, not %s'
                           % (digest, image.digest))
    for served_ref in (tag, digest):
        served, _ = client.manifest(repo, served_ref, accept=image.media_type)
        if served_payload(served, image) != image.payload:
            raise RuntimeError('registry serves another payload for %s'
                               % served_ref)
    return PushedSchema1(registry=registry, repo=repo, tag=tag, digest=digest,
                         image=image)


def served_payload(served: bytes, image: Schema1Image) -> bytes:
    """The payload of SERVED, which is signed anew if IMAGE was signed."""
    return payload_of(served) if image.media_type == SIGNED_MIME else served


def tar_of(files: Dict[str, bytes]) -> bytes:
    """A small deterministic tar of FILES (path -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mtime = images.LAYER_MTIME
            tar.addfile(info, io.BytesIO(files[path]))
    return buf.getvalue()


class MemoryImage(v2_image.DockerImage):
    """IMAGE as a library schema 1 image, its blobs served from memory."""

    def __init__(self, image: Schema1Image):
        self._image = image
        self._blobs = image.blobs()

    def manifest(self) -> str:
        return self._image.manifest.decode('utf8')

    def blob(self, digest: str) -> bytes:
        return self._blobs[digest]

    def __enter__(self) -> 'MemoryImage':
        return self

    def __exit__(self, *unused) -> None:
        pass
