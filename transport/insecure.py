"""Registries the user named as insecure, as docker's `insecure-registries`.

Such a registry is reached by https without verifying its certificate, or
by plain http when it does not speak TLS. Only the names given are
insecure: `HOST:PORT` means that port, `HOST` the default ones. The names
come from `pooled_http.Http(insecure_registries=...)` (the tools'
`--insecure-registry`) and from $CONTAINERREGISTRY_INSECURE_REGISTRIES
(comma-separated).
"""
import os
import urllib.parse
from typing import FrozenSet, Iterable, Optional

from containerregistry.transport import certs_d

VARIABLE = 'CONTAINERREGISTRY_INSECURE_REGISTRIES'


class BadName(ValueError):
    """A name given as an insecure registry is not a `HOST[:PORT]`."""


def normalize(name: str) -> str:
    """NAME as matched: a `HOST[:PORT]` with the host in lowercase.

    Raises BadName when NAME is not a bare `HOST[:PORT]` (a scheme, a
    path or credentials would suggest a match that never happens).
    """
    text = name.strip()
    bad = BadName('%r is not a registry HOST[:PORT]' % name)
    try:
        parts = urllib.parse.urlsplit('//' + text)
        port = parts.port
    except ValueError:
        raise bad from None
    host = parts.hostname
    if (not text or not host or parts.netloc != text or '@' in text
            or text.endswith(':') or port == 0):
        raise bad
    host = host.lower()
    if ':' in host:
        host = '[%s]' % host
    return host if port is None else '%s:%d' % (host, port)


def from_environment() -> FrozenSet[str]:
    """The names in $CONTAINERREGISTRY_INSECURE_REGISTRIES.

    Raises BadName naming the variable for a malformed entry.
    """
    names = set()
    for entry in os.environ.get(VARIABLE, '').split(','):
        if entry.strip():
            try:
                names.add(normalize(entry))
            except BadName as e:
                raise BadName('%s: %s' % (VARIABLE, e)) from None
    return frozenset(names)


def registries(names: Optional[Iterable[str]]) -> FrozenSet[str]:
    """NAMES together with the environment's, normalized."""
    return from_environment() | frozenset(normalize(n) for n in names or ())


def listed(insecure: FrozenSet[str], host: str, port: int,
           default_port: int) -> bool:
    """Whether HOST:PORT is one of the INSECURE names."""
    return any(name in insecure for name in certs_d.directory_names(
        host.lower(), port, default_port))


def of_registry(transport: object, registry: str) -> bool:
    """Whether TRANSPORT was told that REGISTRY (`HOST[:PORT]`) is insecure.

    Transports without that notion (`insecure_registries`) have none.
    """
    insecure = getattr(transport, 'insecure_registries', None)
    if not insecure:
        return False
    try:
        return normalize(registry) in insecure
    except BadName:
        return False
