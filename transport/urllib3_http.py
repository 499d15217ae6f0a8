"""A pooled, streaming HTTP transport on urllib3, used by the tools.

It implements both calls of `streaming.StreamingTransport`, so the registry
clients can stream blobs between sockets and files. Redirects are followed
here (GET and HEAD only, as httplib2 does) so that the Authorization header
can be dropped when a redirect leaves the origin: blob stores behind
redirects reject registry credentials, and they must not see them.
"""
import logging
import ssl
import time
import urllib.parse
from typing import Mapping, Optional, Tuple

import urllib3
from urllib3 import exceptions as urllib3_exceptions

from containerregistry.transport import streaming

MAX_REDIRECTS = 5
RETRY_STATUSES = frozenset([408, 429, 500, 502, 503, 504])
IDEMPOTENT = frozenset(['GET', 'HEAD'])
_REDIRECTS = frozenset([301, 302, 303, 307, 308])
_CHUNK = 1 << 20


class TransportError(ConnectionError):
    """A request could not be completed: no connection, TLS, reset."""


def _origin(uri: str) -> Tuple[str, str]:
    parts = urllib.parse.urlsplit(uri)
    return parts.scheme, parts.netloc.lower()


def _reason(err: BaseException) -> str:
    """The innermost useful message of a urllib3 exception chain."""
    while isinstance(err, urllib3_exceptions.MaxRetryError) and err.reason:
        err = err.reason
    if isinstance(err, urllib3_exceptions.ProtocolError) and err.args:
        return str(err.args[0])
    text = str(err)
    # urllib3 prefixes messages with the connection object's repr.
    for prefix_end in ('>: ', '): '):
        if text.startswith(('<', 'HTTPConnection(', 'HTTPSConnection(')) \
                and prefix_end in text:
            text = text.split(prefix_end, 1)[1]
    return text


class _Body:
    """A response body that returns its connection to the pool when done."""

    def __init__(self, response: urllib3.BaseHTTPResponse):
        self._response = response

    def read(self, amt: Optional[int] = None) -> bytes:
        try:
            return self._response.read(amt)
        except (urllib3_exceptions.HTTPError, OSError) as e:
            raise TransportError('connection lost while reading the response: '
                                 + _reason(e)) from e

    def readinto(self, buffer) -> int:
        try:
            return self._response.readinto(buffer)
        except (urllib3_exceptions.HTTPError, OSError) as e:
            raise TransportError('connection lost while reading the response: '
                                 + _reason(e)) from e

    def close(self) -> None:
        self._response.release_conn()
        self._response.close()

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        self.close()


class Http:
    """Thread-safe streaming transport with keep-alive connection pools.

    Idempotent requests are retried on connection failures and on 408, 429
    and 5xx answers, with exponential back-off that honours Retry-After.
    TLS is verified against the system's trust store (or SSL_CERT_FILE).
    """

    def __init__(self, maxsize: int = 8, connect_timeout: float = 30.0,
                 read_timeout: float = 300.0, max_retries: int = 3,
                 backoff_factor: float = 0.5, ca_certs: Optional[str] = None):
        self._pool = urllib3.PoolManager(
            num_pools=16, maxsize=maxsize, block=False,
            cert_reqs='CERT_REQUIRED', ca_certs=ca_certs, blocksize=_CHUNK,
            timeout=urllib3.Timeout(connect=connect_timeout,
                                    read=read_timeout))
        self._max_retries = max_retries
        self._backoff = backoff_factor

    def request(self, uri: str, method: str = 'GET',
                body: streaming.Body = None,
                headers: Optional[Mapping[str, str]] = None
                ) -> Tuple[streaming.Response, bytes]:
        resp, reader = self.stream(uri, method, body, headers)
        with reader:
            return resp, reader.read()

    def stream(self, uri: str, method: str = 'GET',
               body: streaming.Body = None,
               headers: Optional[Mapping[str, str]] = None
               ) -> Tuple[streaming.Response, _Body]:
        headers = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(uri, method, body, headers)
            if response.status not in _REDIRECTS or method not in IDEMPOTENT:
                return self._wrap(response)
            location = response.headers.get('location')
            response.drain_conn()
            response.release_conn()
            if not location:
                raise TransportError('%s %s: redirect without a Location'
                                     % (method, uri))
            target = urllib.parse.urljoin(uri, location)
            if _origin(target) != _origin(uri):
                headers = {k: v for k, v in headers.items()
                           if k.lower() != 'authorization'}
            logging.debug('Following redirect to %s',
                          urllib.parse.urlsplit(target).netloc)
            uri = target
        raise TransportError('%s %s: more than %d redirects'
                             % (method, uri, MAX_REDIRECTS))

    @staticmethod
    def _wrap(response) -> Tuple[streaming.Response, _Body]:
        resp = streaming.Response(response.status,
                                  dict(response.headers.itermerged()),
                                  response.reason or '')
        return resp, _Body(response)

    def _send(self, uri: str, method: str, body: streaming.Body,
              headers: Mapping[str, str]) -> urllib3.BaseHTTPResponse:
        idempotent = method in IDEMPOTENT and body is None
        attempt = 0
        while True:
            try:
                response = self._pool.urlopen(
                    method, uri, body=body, headers=headers, redirect=False,
                    retries=False, preload_content=False,
                    decode_content=True)
            except (urllib3_exceptions.HTTPError, OSError) as e:
                if (not idempotent or attempt >= self._max_retries
                        or _is_tls_error(e)):
                    raise TransportError('%s %s: %s'
                                         % (method, _strip_query(uri),
                                            _reason(e))) from e
                delay = self._backoff * 2 ** attempt
            else:
                if (not idempotent or response.status not in RETRY_STATUSES
                        or attempt >= self._max_retries):
                    return response
                delay = _retry_after(response) or self._backoff * 2 ** attempt
                response.drain_conn()
                response.release_conn()
            attempt += 1
            logging.info('Retrying %s %s in %.1fs (attempt %d)', method,
                            _strip_query(uri), delay, attempt + 1)
            time.sleep(delay)

    def clear(self) -> None:
        self._pool.clear()


def _is_tls_error(err: BaseException) -> bool:
    """TLS failures (bad certificate, not TLS at all) do not heal on retry."""
    while isinstance(err, urllib3_exceptions.MaxRetryError) and err.reason:
        err = err.reason
    return isinstance(err, (urllib3_exceptions.SSLError, ssl.SSLError))


def _strip_query(uri: str) -> str:
    """URI for messages: query strings can carry signed credentials."""
    return uri.split('?', 1)[0]


def _retry_after(response) -> float:
    value = response.headers.get('retry-after', '')
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        return 0.0
