"""libtrust "pretty JWS" signatures for schema 1 manifests, with a new key.

Registries refuse an unsigned schema 1 manifest, but trust no particular
key: they check that each signature verifies under the key it carries
(the `jwk` header). So a manifest the library builds is signed, when it is
pushed, with an ECDSA P-256 key made for that one signature and then
dropped. The signature says nothing about who made the image; it only
makes the manifest well-formed.

The signed payload is the manifest's exact bytes (`formatLength` stops
before the closing brace, `formatTail` holds the rest), so the digest a
registry gives the signed manifest is the sha256 of the unsigned one.

The curve arithmetic is plain Python: one signature costs two scalar
multiplications, a few milliseconds. The key lives only for the call and
protects nothing, so timing side channels are of no concern here.
"""
import base64
import hashlib
import json
import secrets
import time
from typing import Optional, Tuple, TypeVar

_Text = TypeVar('_Text', str, bytes)

# NIST P-256 (FIPS 186-4, D.1.2.3): y^2 = x^3 - 3x + B over GF(P).
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b
_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
_G = (0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296,
      0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5)

# DER SubjectPublicKeyInfo of a P-256 key, up to the uncompressed point.
_SPKI_PREFIX = bytes.fromhex(
    '3059301306072a8648ce3d020106082a8648ce3d030107034200')

_Point = Optional[Tuple[int, int]]


def _add(p1: _Point, p2: _Point) -> _Point:
    """The sum of two affine points (None is the point at infinity)."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % _P == 0:
            return None
        slope = (3 * x1 * x1 - 3) * pow(2 * y1, -1, _P) % _P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, _P) % _P
    x3 = (slope * slope - x1 - x2) % _P
    return x3, (slope * (x1 - x3) - y1) % _P


def _multiply(k: int, point: _Point) -> _Point:
    result: _Point = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def _times_g(k: int) -> Tuple[int, int]:
    """K times the base point, for 0 < K < N (never the point at infinity)."""
    point = _multiply(k, _G)
    assert point is not None
    return point


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def key_id(x: int, y: int) -> str:
    """libtrust's key id: base32 of 240 bits of sha256(SPKI), groups of 4."""
    spki = _SPKI_PREFIX + b'\x04' + x.to_bytes(32, 'big') + y.to_bytes(32, 'big')
    text = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode('ascii')
    return ':'.join(text[i:i + 4] for i in range(0, len(text), 4))


def _es256(secret: int, message: bytes) -> bytes:
    """The ES256 signature of MESSAGE: r and s, 32 bytes each."""
    z = int.from_bytes(hashlib.sha256(message).digest(), 'big')
    while True:
        k = secrets.randbelow(_N - 1) + 1
        r = _times_g(k)[0] % _N
        s = pow(k, -1, _N) * (z + r * secret) % _N
        if r and s:
            return r.to_bytes(32, 'big') + s.to_bytes(32, 'big')


def sign(manifest: _Text) -> _Text:
    """MANIFEST (a JSON object, str or bytes) with one libtrust signature
    by a new key, as the same type. Its signed payload is MANIFEST itself.
    """
    raw = manifest.encode('utf8') if isinstance(manifest, str) else bytes(
        manifest)
    close = len(raw.rstrip()) - 1
    length = len(raw[:close].rstrip())
    parsed = json.loads(raw)
    if not isinstance(parsed, dict) or not parsed or raw[close:close + 1] != b'}':
        raise ValueError('only a non-empty JSON object can be signed')
    if 'signatures' in parsed:
        raise ValueError('the manifest is signed already')
    secret = secrets.randbelow(_N - 1) + 1
    x, y = _times_g(secret)
    protected = _b64url(json.dumps({
        'formatLength': length,
        'formatTail': _b64url(raw[length:]),
        'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
    }, sort_keys=True).encode('utf8'))
    signing_input = (protected + '.' + _b64url(raw)).encode('ascii')
    signature = {
        'header': {'alg': 'ES256', 'jwk': {
            'crv': 'P-256', 'kid': key_id(x, y), 'kty': 'EC',
            'x': _b64url(x.to_bytes(32, 'big')),
            'y': _b64url(y.to_bytes(32, 'big'))}},
        'protected': protected,
        'signature': _b64url(_es256(secret, signing_input)),
    }
    signed = (raw[:length] + b',\n   "signatures": '
              + json.dumps([signature], sort_keys=True).encode('ascii')
              + raw[length:])
    return signed.decode('utf8') if isinstance(manifest, str) else signed
