"""The registry v2 HTTP protocol as schema 1 readers use it.

The wire protocol (ping, Basic/Bearer auth, errors) is the v2.2 one, so its
`Transport` is reused as is; what differs is what a schema 1 reader asks
for: `SCHEMA1_ACCEPT` names only the schema 1 manifest types.
"""
from containerregistry.client.v2_2.docker_http import (
    ACTIONS, CATALOG, DELETE, MANIFEST_SCHEMA1_MIME, MANIFEST_SCHEMA1_MIMES,
    MAX_DOCUMENT_BYTES,
    MANIFEST_SCHEMA1_SIGNED_MIME, PULL, PUSH, BadStateException, Diagnostic,
    ParseNextLinkHeader, Scheme, TokenRefreshException, Transport,
    V2DiagnosticException)

# The signed type first: it is what registries store and serve.
SCHEMA1_ACCEPT = [MANIFEST_SCHEMA1_SIGNED_MIME, MANIFEST_SCHEMA1_MIME]

__all__ = ['ACTIONS', 'CATALOG', 'DELETE', 'MANIFEST_SCHEMA1_MIME',
           'MAX_DOCUMENT_BYTES',
           'MANIFEST_SCHEMA1_MIMES', 'MANIFEST_SCHEMA1_SIGNED_MIME', 'PULL',
           'PUSH', 'SCHEMA1_ACCEPT', 'BadStateException', 'Diagnostic',
           'ParseNextLinkHeader', 'Scheme', 'TokenRefreshException',
           'Transport', 'V2DiagnosticException']
