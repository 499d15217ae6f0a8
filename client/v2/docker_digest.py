"""Digests of schema 1 manifests and blobs."""
import json
from typing import Union

from containerregistry.client.v2 import util
from containerregistry.client.v2_2.docker_digest import (
    SHA256, DigestMismatchedError, check)

__all__ = ['SHA256', 'SignedManifestToSHA256', 'ManifestToSHA256',
           'DigestMismatchedError', 'check']


def SignedManifestToSHA256(manifest: Union[str, bytes]) -> str:
    """The digest of a signed manifest: sha256 of its signed payload."""
    unsigned, _ = util.DetachSignatures(manifest)
    if isinstance(unsigned, str):
        unsigned = unsigned.encode('utf8')
    return SHA256(unsigned)


def ManifestToSHA256(manifest: Union[str, bytes]) -> str:
    """The digest registries give a manifest of any schema.

    A signed schema 1 manifest is named by its signed payload (registries
    sign it anew on every GET); anything else by its exact bytes.
    """
    raw = manifest.encode('utf8') if isinstance(manifest, str) else manifest
    if b'"signatures"' in raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if (isinstance(parsed, dict) and parsed.get('schemaVersion') == 1
                and 'signatures' in parsed):
            return SignedManifestToSHA256(raw)
    return SHA256(raw)
