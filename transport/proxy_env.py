"""Which HTTP proxy a request goes through, from the environment as curl and Go read it.

`https_proxy` serves https URLs and `http_proxy` http ones (each also in
upper case; the lower-case name wins, and `HTTP_PROXY` is ignored in a CGI
request, where a client could set it). `no_proxy` lists hosts, domain
suffixes or `*` that are reached directly. Loopback hosts are always reached
directly, as Go's net/http does: a local registry stays reachable whatever
proxy a build machine sets. Only `http://` proxies are spoken to (https
targets go through a CONNECT tunnel, so the proxy sees no registry
credentials).

Every new connection asks, so this costs nothing unless a proxy variable is
set (urllib.request, which parses them, imports ssl: 12 ms of start-up).
"""
import base64
import os
import urllib.parse
from typing import NamedTuple, Optional


_VARIABLES = frozenset(['http_proxy', 'https_proxy'])


class ProxyConfigError(ValueError):
    """A proxy variable that cannot be used."""


class Proxy(NamedTuple):
    """An http proxy; `authorization` is its Proxy-Authorization value, if any."""
    host: str
    port: int
    authorization: Optional[str] = None

    def __str__(self) -> str:
        # Never the credentials: this goes into messages.
        return 'proxy %s:%d' % (self.host, self.port)


def is_loopback(host: str) -> bool:
    host = host.strip('[]').lower()
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    if not host or not (host[0].isdigit() or ':' in host):
        return False  # a name, not an address
    import ipaddress  # pylint: disable=import-outside-toplevel
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse(value: str) -> Proxy:
    """The proxy named by VALUE (`http://[user:password@]host[:port]`, or no scheme)."""
    url = value if '://' in value else 'http://' + value
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != 'http':
        raise ProxyConfigError('unsupported proxy scheme %r (only http:// proxies '
                               'are supported)' % parts.scheme)
    try:
        port = parts.port or 80
    except ValueError as e:
        raise ProxyConfigError('bad proxy port in %s' % parts.hostname) from e
    if not parts.hostname:
        raise ProxyConfigError('proxy setting without a host')
    authorization = None
    if parts.username is not None:
        pair = '%s:%s' % (urllib.parse.unquote(parts.username),
                          urllib.parse.unquote(parts.password or ''))
        authorization = 'Basic ' + base64.b64encode(pair.encode('utf8')).decode('ascii')
    return Proxy(parts.hostname, port, authorization)


def for_url(scheme: str, host: str) -> Optional[Proxy]:
    """The proxy for SCHEME://HOST from the environment, or None to go direct."""
    if is_loopback(host) or not any(name.lower() in _VARIABLES for name in os.environ):
        return None
    import urllib.request  # pylint: disable=import-outside-toplevel
    proxies = urllib.request.getproxies_environment()
    value = proxies.get(scheme)
    if not value or urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            host, proxies):
        return None
    return parse(value)
