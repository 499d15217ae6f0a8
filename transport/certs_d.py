"""Per-registry certificates in the directories docker and podman read.

For a registry `HOST[:PORT]`, `/etc/docker/certs.d/HOST[:PORT]/` and
`/etc/containers/certs.d/HOST[:PORT]/` may hold:

- `*.crt`: CA certificates trusted for that registry only, on top of the
  system's trust store;
- `NAME.cert` with `NAME.key`: a client certificate presented to it (mTLS).

`$CONTAINERREGISTRY_CERTS_D` names one other root instead of both, so tests
and sandboxes need no write access to /etc.
"""
import os
from typing import List, Optional, Sequence, Tuple

ROOTS_VARIABLE = 'CONTAINERREGISTRY_CERTS_D'
DEFAULT_ROOTS = ('/etc/docker/certs.d', '/etc/containers/certs.d')


class CertsDirError(Exception):
    """A registry's certificate directory holds something unusable."""


class Trust:
    """What the certificate directories say about one registry."""

    def __init__(self, cafiles: Sequence[str],
                 client: Optional[Tuple[str, str]]):
        self.cafiles = tuple(cafiles)
        # (certificate file, key file), or None.
        self.client = client


def roots() -> Tuple[str, ...]:
    """The directories whose `HOST[:PORT]` subdirectories are read."""
    custom = os.environ.get(ROOTS_VARIABLE, '').strip()
    return (custom,) if custom else DEFAULT_ROOTS


def directory_names(host: str, port: int, default_port: int) -> List[str]:
    """The names a registry's directory may have: `HOST:PORT`, and `HOST`
    alone when PORT is the scheme's default (IPv6 hosts in brackets)."""
    if ':' in host:
        host = '[%s]' % host
    names = ['%s:%d' % (host, port)]
    if port == default_port:
        names.append(host)
    return names


def _client_pair(directory: str, entries: Sequence[str]
                 ) -> Optional[Tuple[str, str]]:
    certs = [e for e in entries if e.endswith('.cert')]
    keys = [e for e in entries if e.endswith('.key')]
    for cert in certs:
        if cert[:-len('.cert')] + '.key' not in keys:
            raise CertsDirError('%s has no key for its client certificate: '
                                '%s is missing' % (directory, cert[:-5] + '.key'))
    for key in keys:
        if key[:-len('.key')] + '.cert' not in certs:
            raise CertsDirError('%s has no client certificate for its key: '
                                '%s is missing' % (directory, key[:-4] + '.cert'))
    if len(certs) > 1:
        raise CertsDirError('%s holds %d client certificates (%s); only one '
                            'can be presented' % (directory, len(certs),
                                                  ', '.join(certs)))
    if not certs:
        return None
    return (os.path.join(directory, certs[0]),
            os.path.join(directory, keys[0]))


def lookup(host: str, port: int, default_port: int = 443) -> Optional[Trust]:
    """The CAs and client certificate configured for HOST:PORT, or None
    when no directory names it.

    Raises CertsDirError for an unreadable directory, a certificate without
    its key or a key without its certificate.
    """
    found = False
    cafiles: List[str] = []
    client: Optional[Tuple[str, str]] = None
    for root in roots():
        for name in directory_names(host, port, default_port):
            directory = os.path.join(root, name)
            if not os.path.isdir(directory):
                continue
            try:
                entries = sorted(os.listdir(directory))
            except OSError as e:
                raise CertsDirError('cannot read %s: %s' % (
                    directory, e.strerror or e)) from e
            found = True
            cafiles += [os.path.join(directory, e) for e in entries
                        if e.endswith('.crt')]
            pair = _client_pair(directory, entries)
            if pair and client and pair != client:
                raise CertsDirError('client certificates for %s in both %s '
                                    'and %s; only one can be presented' % (
                                        name, os.path.dirname(client[0]),
                                        directory))
            client = client or pair
    if not found:
        return None
    return Trust(cafiles, client)
