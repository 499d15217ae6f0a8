"""Signed schema 1 manifests: taking the JWS signatures off, renaming.

A schema 1 manifest is signed as a libtrust "pretty JWS": the signatures sit
inside the JSON object, spliced in before its closing brace. Each one's
protected header gives `formatLength` (how many leading bytes were signed)
and `formatTail` (base64url of what followed them), so the signed payload is
`manifest[:formatLength] + formatTail`; its sha256 is the manifest's digest.
Registries sign anew on every GET, so only the payload is stable.
"""
import base64
import binascii
import json
from typing import Any, Dict, List, Tuple, TypeVar, Union, overload

from containerregistry.client import docker_name

_Text = TypeVar('_Text', str, bytes)


class BadManifestException(Exception):
    """A schema 1 manifest that is malformed or improperly signed."""


def _JoseBase64UrlDecode(message: str) -> bytes:
    """Decodes unpadded base64url, as JOSE writes it."""
    if not isinstance(message, str) or len(message) % 4 == 1:
        raise BadManifestException('Malformed JOSE Base64 encoding.')
    try:
        return base64.urlsafe_b64decode(message + '=' * (-len(message) % 4))
    except (binascii.Error, ValueError) as e:
        raise BadManifestException('Malformed JOSE Base64 encoding.') from e


def _ExtractProtectedRegion(signature: Any) -> Tuple[int, str]:
    """(formatLength, formatTail) from one signature's protected header."""
    try:
        protected = json.loads(_JoseBase64UrlDecode(signature['protected']))
        length, tail = protected['formatLength'], protected['formatTail']
    except (TypeError, KeyError, ValueError) as e:
        raise BadManifestException(
            'Signature has no readable protected header') from e
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise BadManifestException('Bad formatLength in signature: %r'
                                   % (length,))
    return length, tail


def _ExtractCommonProtectedRegion(
        signatures: List[Dict[str, Any]]) -> Tuple[int, str]:
    region = _ExtractProtectedRegion(signatures[0])
    for sig in signatures[1:]:
        if _ExtractProtectedRegion(sig) != region:
            raise BadManifestException(
                'Signatures disagree on protected region')
    return region


@overload
def DetachSignatures(manifest: str) -> Tuple[str, List[Dict[str, Any]]]: ...


@overload
def DetachSignatures(manifest: bytes) -> Tuple[bytes, List[Dict[str, Any]]]: ...


@overload
def DetachSignatures(manifest: Union[str, bytes]
                     ) -> Tuple[Union[str, bytes], List[Dict[str, Any]]]: ...


def DetachSignatures(manifest):
    """Splits a signed manifest into (signed payload, signatures).

    The payload has the type of MANIFEST (str or bytes); `formatLength`
    counts bytes, so text is cut as its UTF-8 encoding. The payload must
    hold exactly the manifest's fields, so no field can hide outside what
    the digest covers.
    """
    raw = manifest.encode('utf8') if isinstance(manifest, str) else bytes(
        manifest)
    try:
        parsed = json.loads(raw)
    except ValueError as e:
        raise BadManifestException('The manifest is not JSON: %s' % e) from e
    signatures = parsed.get('signatures') if isinstance(parsed, dict) else None
    if not isinstance(signatures, list) or not signatures:
        raise BadManifestException('Expected a signed manifest.')
    if not all(isinstance(sig, dict) and 'protected' in sig
               for sig in signatures):
        raise BadManifestException('Signature is missing "protected" key')
    length, tail = _ExtractCommonProtectedRegion(signatures)
    if length > len(raw):
        raise BadManifestException('formatLength %d is beyond the manifest\'s '
                                   '%d bytes' % (length, len(raw)))
    unsigned = raw[:length] + _JoseBase64UrlDecode(tail)
    try:
        payload = json.loads(unsigned)
    except ValueError as e:
        raise BadManifestException(
            'The signed region of the manifest is not JSON') from e
    rest = {k: v for k, v in parsed.items() if k != 'signatures'}
    if payload != rest:
        raise BadManifestException(
            'The manifest holds fields outside its signed region')
    if isinstance(manifest, str):
        return unsigned.decode('utf8'), signatures
    return unsigned, signatures


def Sign(unsigned_manifest: _Text) -> _Text:
    """Returns the manifest unchanged: as upstream, nothing is signed here."""
    return unsigned_manifest


def Rename(manifest: Union[str, bytes], name: docker_name.Tag) -> str:
    """MANIFEST with its `name`/`tag` fields set from NAME (signatures dropped)."""
    try:
        unsigned, _ = DetachSignatures(manifest)
    except BadManifestException:
        parsed = json.loads(manifest)
        if isinstance(parsed, dict) and 'signatures' in parsed:
            raise
        unsigned = manifest
    parsed = json.loads(unsigned)
    parsed['name'] = name.repository
    parsed['tag'] = name.tag
    return Sign(json.dumps(parsed, sort_keys=True, indent=2))
