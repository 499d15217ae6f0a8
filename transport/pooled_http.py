"""A pooled, streaming HTTP/1.1 transport on the standard library, for the tools.

It implements both calls of `streaming.StreamingTransport`, so the registry
clients can stream blobs between sockets and files. It is built on
`http.client` rather than a third-party client because the benchmarks in
bench/ showed what one costs here: urllib3 added ~80 ms to every tool's
start and copied each chunk once more on its way to the caller's buffer.

Connections are kept alive per origin and shared by threads. Redirects are
followed for GET and HEAD only (as httplib2 does), and the Authorization
header is dropped when a redirect leaves the origin: blob stores behind
redirects reject registry credentials, and they must not see them.
Idempotent requests are retried on connection failures and on 408, 429 and
5xx answers, with exponential back-off that honours Retry-After. TLS is
verified against the system's trust store, as OpenSSL finds it (honouring
SSL_CERT_FILE and SSL_CERT_DIR, see `tls_env`), or against `ca_certs`.
Proxies come from the environment (`proxy_env`): https through a CONNECT
tunnel, plain http as absolute-URL requests to the proxy.
"""
import datetime
import email.utils
import http.client
import io
import logging
import os
import re
import stat
import threading
import time
import urllib.parse
from typing import Dict, List, Mapping, Optional, Tuple

from containerregistry.transport import proxy_env
from containerregistry.transport import streaming
from containerregistry.transport import tls_env

MAX_REDIRECTS = 5
RETRY_STATUSES = frozenset([408, 429, 500, 502, 503, 504])
IDEMPOTENT = frozenset(['GET', 'HEAD'])
_REDIRECTS = frozenset([301, 302, 303, 307, 308])
_BLOCK = 1 << 20
# Failures that mean a kept-alive connection was closed by the server
# while idle; the request never reached it, so it can go again at once.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError,
          ConnectionResetError, ConnectionAbortedError)

_Key = Tuple[str, str, int]


class TransportError(ConnectionError):
    """A request could not be completed: no connection, TLS, reset."""


class _Final(TransportError):
    """A failure that trying again cannot mend (a proxy refusing us)."""


def _strip_query(uri: str) -> str:
    """URI for messages: query strings can carry signed credentials."""
    return uri.split('?', 1)[0]


def _reason(err: BaseException) -> str:
    if isinstance(err, http.client.IncompleteRead):
        return 'connection closed with %s bytes of the body missing' % (
            err.expected)
    return str(err) or type(err).__name__


def _is_tls_error(err: BaseException) -> bool:
    """TLS failures (bad certificate, not TLS at all) do not heal on retry."""
    import ssl  # pylint: disable=import-outside-toplevel
    return isinstance(err, ssl.SSLError)


class _Body:
    """A response body; its connection goes back to the pool once drained."""

    def __init__(self, owner: 'Http', key: _Key,
                 conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse):
        self._owner = owner
        self._key = key
        self._conn: Optional[http.client.HTTPConnection] = conn
        self._response = response

    def _finish(self, drained: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if drained and not self._response.will_close:
            self._owner.release(self._key, conn)
        else:
            conn.close()

    def _failed(self, err: BaseException) -> TransportError:
        self._finish(drained=False)
        return TransportError('connection lost while reading the response: '
                              + _reason(err))

    def _check_end(self, got: int, asked: int) -> None:
        """http.client returns no data, not an error, when a body is cut."""
        missing = self._response.length
        if not got and asked and missing:
            raise self._failed(http.client.IncompleteRead(b'', missing))

    def read(self, amt: Optional[int] = None) -> bytes:
        try:
            data = self._response.read(amt)
        except (http.client.HTTPException, OSError) as e:
            raise self._failed(e) from e
        if amt:
            self._check_end(len(data), amt)
        if self._response.isclosed():
            self._finish(drained=True)
        return data

    def readinto(self, buffer) -> int:
        try:
            n = self._response.readinto(buffer)
        except (http.client.HTTPException, OSError) as e:
            raise self._failed(e) from e
        self._check_end(n, len(buffer))
        if not n or self._response.isclosed():
            self._finish(drained=True)
        return n

    def close(self) -> None:
        self._finish(drained=self._response.isclosed())
        self._response.close()

    def __enter__(self) -> '_Body':
        return self

    def __exit__(self, *unused) -> None:
        self.close()


class Http:
    """Thread-safe streaming transport with keep-alive connection pools."""

    def __init__(self, maxsize: int = 8, connect_timeout: float = 30.0,
                 read_timeout: float = 300.0, max_retries: int = 3,
                 backoff_factor: float = 0.5, ca_certs: Optional[str] = None):
        self._maxsize = maxsize
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_retries = max_retries
        self._backoff = backoff_factor
        self._ca_certs = ca_certs
        self._context = None
        self._lock = threading.Lock()
        self._idle: Dict[_Key, List[http.client.HTTPConnection]] = {}

    def _tls_context(self):
        with self._lock:
            if self._context is None:
                import ssl  # pylint: disable=import-outside-toplevel
                if self._ca_certs is None:
                    tls_env.check_environment()
                self._context = ssl.create_default_context(
                    cafile=self._ca_certs)
            return self._context

    def _connect(self, key: _Key) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme not in ('http', 'https'):
            raise TransportError('unsupported URL scheme: %s' % scheme)
        try:
            proxy = proxy_env.for_url(scheme, host)
        except proxy_env.ProxyConfigError as e:
            raise _Final('%s_proxy: %s' % (scheme, e)) from e
        address = (proxy.host, proxy.port) if proxy else (host, port)
        if scheme == 'https':
            conn = http.client.HTTPSConnection(
                *address, timeout=self._connect_timeout,
                context=self._tls_context(), blocksize=_BLOCK)
            if proxy:
                # TLS to the registry inside a CONNECT tunnel.
                conn.set_tunnel(host, port, headers=_proxy_headers(proxy))
        else:
            conn = http.client.HTTPConnection(
                *address, timeout=self._connect_timeout, blocksize=_BLOCK)
        # Plain http through a proxy: requests name the absolute URL.
        conn.forward_proxy = proxy if proxy and scheme == 'http' else None
        try:
            conn.connect()
        except OSError as e:
            if not proxy:
                raise
            # http.client: "Tunnel connection failed: 407 Proxy Authentication Required"
            refused = re.search(r'failed: 4\d\d ', str(e)) is not None
            raise (_Final if refused else TransportError)(
                '%s: %s' % (proxy, _reason(e))) from e
        conn.sock.settimeout(self._read_timeout)
        return conn

    def _acquire(self, key: _Key) -> Tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._connect(key), False

    def release(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        """Takes back a connection whose last response was read to the end."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._maxsize:
                idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        """Closes every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

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
            resp, reader = self._send(uri, method, body, headers)
            if resp.status not in _REDIRECTS or method not in IDEMPOTENT:
                resp.url = uri
                return resp, reader
            location = resp.get('location')
            reader.read()
            reader.close()
            if not location:
                raise TransportError('%s %s: redirect without a Location'
                                     % (method, _strip_query(uri)))
            target = urllib.parse.urljoin(uri, location)
            if _origin(target) != _origin(uri):
                headers = {k: v for k, v in headers.items()
                           if k.lower() != 'authorization'}
            logging.debug('Following redirect to %s',
                          urllib.parse.urlsplit(target).netloc)
            uri = target
        raise TransportError('%s %s: more than %d redirects'
                             % (method, _strip_query(uri), MAX_REDIRECTS))

    def _send(self, uri: str, method: str, body: streaming.Body,
              headers: Mapping[str, str]) -> Tuple[streaming.Response, _Body]:
        parts = urllib.parse.urlsplit(uri)
        key = (parts.scheme, parts.hostname or '',
               parts.port or (443 if parts.scheme == 'https' else 80))
        target = urllib.parse.urlunsplit(('', '', parts.path or '/',
                                          parts.query, ''))
        idempotent = method in IDEMPOTENT and body is None
        rewind = body.tell() if hasattr(body, 'seekable') and body.seekable() \
            else None
        attempt = 0
        while True:
            try:
                resp, reader = self._exchange(key, method, target, body,
                                              headers, rewind)
            except (http.client.HTTPException, OSError) as e:
                if (not idempotent or attempt >= self._max_retries
                        or _is_tls_error(e) or isinstance(e, _Final)):
                    raise TransportError('%s %s: %s' % (
                        method, _strip_query(uri), _reason(e))) from e
                delay = self._backoff * 2 ** attempt
            else:
                if (not idempotent or resp.status not in RETRY_STATUSES
                        or attempt >= self._max_retries):
                    return resp, reader
                delay = retry_after(resp) or self._backoff * 2 ** attempt
                reader.close()
            attempt += 1
            logging.info('Retrying %s %s in %.1fs (attempt %d)', method,
                         _strip_query(uri), delay, attempt + 1)
            time.sleep(delay)

    def _exchange(self, key: _Key, method: str, target: str,
                  body: streaming.Body, headers: Mapping[str, str],
                  rewind: Optional[int]) -> Tuple[streaming.Response, _Body]:
        """One request on a pooled connection.

        A kept-alive connection the server closed meanwhile fails at once;
        the request then goes again on a fresh one, if its body allows.
        """
        conn, reused = self._acquire(key)
        if conn.forward_proxy is not None:
            target = '%s://%s:%d%s' % (key + (target,))
            headers = dict(headers, **_proxy_headers(conn.forward_proxy))
        try:
            _request(conn, method, target, body, headers)
            response = conn.getresponse()
        except _STALE:
            conn.close()
            if not reused or (body is not None and rewind is None
                              and not isinstance(body, (bytes, bytearray))):
                raise
            if rewind is not None:
                body.seek(rewind)
            conn = self._connect(key)
            try:
                _request(conn, method, target, body, headers)
                response = conn.getresponse()
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        resp = streaming.Response(response.status, _headers(response),
                                  response.reason or '')
        return resp, _Body(self, key, conn, response)


def _proxy_headers(proxy: proxy_env.Proxy) -> Dict[str, str]:
    return {'Proxy-Authorization': proxy.authorization} if proxy.authorization else {}


def _file_body_length(conn: http.client.HTTPConnection, body: streaming.Body,
                      headers: Mapping[str, str]) -> Optional[int]:
    """The Content-Length to send by sendfile, or None when it cannot be.

    Only a regular file over plain TCP with its length given qualifies: TLS
    sockets cannot sendfile, and pipes have no offsets.
    """
    if isinstance(conn, http.client.HTTPSConnection) or body is None:
        return None
    fileno = getattr(body, 'fileno', None)
    length = next((v for k, v in headers.items() if k.lower() == 'content-length'), None)
    if fileno is None or length is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fileno()).st_mode):
            return None
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return int(length)


def _request(conn: http.client.HTTPConnection, method: str, target: str,
             body: streaming.Body, headers: Mapping[str, str]) -> None:
    """Sends one request; a file body goes to the socket by sendfile.

    http.client copies a file body through Python a block at a time; the
    kernel copying it saves the pusher most of its CPU on large layers.
    """
    length = _file_body_length(conn, body, headers)
    if length is None:
        conn.request(method, target, body=body, headers=headers)
        return
    names = frozenset(k.lower() for k in headers)
    conn.putrequest(method, target, skip_host='host' in names,
                    skip_accept_encoding='accept-encoding' in names)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    offset = body.tell()
    sent = conn.sock.sendfile(body, offset, length) if length else 0
    if sent != length:
        raise http.client.HTTPException(
            'file body ended after %d of %d bytes' % (sent, length))


def _headers(response: http.client.HTTPResponse) -> Dict[str, str]:
    """Response headers under lowercase names, repeated ones joined."""
    merged: Dict[str, str] = {}
    for name, value in response.getheaders():
        name = name.lower()
        merged[name] = merged[name] + ', ' + value if name in merged else value
    return merged


def _origin(uri: str) -> Tuple[str, str]:
    parts = urllib.parse.urlsplit(uri)
    return parts.scheme, parts.netloc.lower()


def retry_after(resp: streaming.Response, cap: float = 60.0) -> float:
    """The seconds a `Retry-After` header asks for (a delay or an HTTP
    date), between 0 and CAP; 0 without one."""
    value = (resp.get('retry-after') or '').strip()
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return 0.0
    return min(max(seconds, 0.0), cap)
