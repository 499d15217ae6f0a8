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
Idempotent requests are retried as `retry_policy` says (connection
failures, timeouts, stalls, 408, 429, 5xx; backoff with jitter, Retry-After),
and so is reading a whole body in `request()`. No wait is unbounded:
connecting has a timeout, every read an idle timeout, a response body
moving too slowly counts as stalled, and all of them end at the process's
deadline (`retry_policy.set_deadline`). TLS is
verified against the system's trust store, as OpenSSL finds it (honouring
SSL_CERT_FILE and SSL_CERT_DIR, see `tls_env`), or against `ca_certs`, plus
the CAs of the host's certificate directory (`certs_d`), which may also
hold a client certificate to present. Registries named insecure
(`insecure`) are not verified at all.
Proxies come from the environment (`proxy_env`): https through a CONNECT
tunnel, plain http as absolute-URL requests to the proxy.
"""
import contextlib
import functools
import http.client
import io
import logging
import os
import re
import socket
import stat
import threading
import time
import urllib.parse
from typing import (BinaryIO, Dict, Iterable, List, Mapping, Optional, Tuple,
                    Type, cast)

from containerregistry.transport import certs_d
from containerregistry.transport import insecure
from containerregistry.transport import proxy_env
from containerregistry.transport import retry_policy
from containerregistry.transport import streaming
from containerregistry.transport import tls_env

MAX_REDIRECTS = 5
IDEMPOTENT = frozenset(['GET', 'HEAD'])
_REDIRECTS = frozenset([301, 302, 303, 307, 308])
_BLOCK = 1 << 20
_MAX_ERROR_BODY = 64 << 10
# Failures that mean a kept-alive connection was closed by the server
# while idle; the request never reached it, so it can go again at once.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError,
          ConnectionResetError, ConnectionAbortedError)

_Key = Tuple[str, str, int]


class TransportError(ConnectionError):
    """A request could not be completed: no connection, TLS, reset.

    `transient` tells `retry_policy` whether trying again may help.
    """

    def __init__(self, message: str, transient: bool = True):
        super().__init__(message)
        self.transient = transient


class _Final(TransportError):
    """A failure that trying again cannot mend (a proxy refusing us)."""

    def __init__(self, message: str):
        super().__init__(message, transient=False)


def _strip_query(uri: str) -> str:
    """URI for messages: query strings can carry signed credentials."""
    return uri.split('?', 1)[0]


def _reason(err: BaseException) -> str:
    if isinstance(err, http.client.IncompleteRead):
        return 'connection closed with %s bytes of the body missing' % (
            err.expected)
    return str(err) or type(err).__name__


class _Watch:
    """The limits on reading one response, and what it is for messages."""

    def __init__(self, host: str, what: str, idle: float, window: float,
                 min_bytes: float):
        self.host = host
        self.what = what
        self.idle = idle
        self.window = window
        self.min_bytes = min_bytes


class _WatchedIO(socket.SocketIO):
    """The socket under a response: every read waits at most the idle
    timeout (or until the deadline), and a body that moves less than the
    watch's minimum over its window raises `retry_policy.Stalled`."""

    def __init__(self, sock: socket.socket, watch: _Watch):
        super().__init__(sock, 'rb')
        # As socket.makefile() counts its files: the socket closes once
        # the connection and every file on it are closed. The count is
        # private to socket.socket, so its stubs do not declare it.
        sock._io_refs += 1  # type: ignore[attr-defined]  # pylint: disable=protected-access
        self._socket = sock
        self._watch = watch
        self._timeout: Optional[float] = None
        self._window_start = time.monotonic()
        self._window_bytes = 0
        self._total = 0

    def _waiting_for(self) -> str:
        part = 'the rest of the answer' if self._total else 'an answer'
        return '%s: waiting for %s from %s' % (self._watch.what, part,
                                              self._watch.host)

    def readinto(self, b) -> Optional[int]:
        watch = self._watch
        limit = watch.idle
        left = retry_policy.remaining()
        if left is not None:
            if left <= 0:
                raise retry_policy.deadline_error(self._waiting_for())
            limit = min(limit, left)
        if limit != self._timeout:
            self._socket.settimeout(limit)
            self._timeout = limit
        try:
            n = super().readinto(b)
        except TimeoutError:
            if limit != watch.idle:
                raise retry_policy.deadline_error(self._waiting_for()) from None
            raise TimeoutError('%s sent nothing for %gs' % (
                watch.host, watch.idle)) from None
        now = time.monotonic()
        if not self._total:
            # The first window opens with the first byte: a slow start
            # (a registry fetching the blob itself) is the idle timeout's.
            self._window_start = now
        self._total += n or 0
        self._window_bytes += n or 0
        if now - self._window_start >= watch.window:
            if self._window_bytes < watch.min_bytes:
                raise retry_policy.Stalled(
                    '%s sent %d bytes in %.1fs: the transfer stalled' % (
                        watch.host, self._window_bytes,
                        now - self._window_start))
            self._window_start = now
            self._window_bytes = 0
        return n


class _Response(http.client.HTTPResponse):
    """A response read through a `_WatchedIO`."""

    def __init__(self, sock: socket.socket, *args, watch: _Watch, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp.close()
        self.fp = io.BufferedReader(_WatchedIO(sock, watch))


class _Connection(http.client.HTTPConnection):
    """A pooled connection. `forward_proxy` is the proxy that plain-http
    requests on it go to as absolute URLs, or None when they go direct."""

    forward_proxy: Optional[proxy_env.Proxy] = None


class _TLSConnection(http.client.HTTPSConnection, _Connection):
    """A pooled https connection (direct, or tunnelled through a proxy)."""


class _Body:
    """A response body; its connection goes back to the pool once drained."""

    def __init__(self, owner: 'Http', key: _Key, conn: _Connection,
                 response: http.client.HTTPResponse, what: str):
        self._owner = owner
        self._what = what
        self._key = key
        self._conn: Optional[_Connection] = conn
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
        if isinstance(err, TimeoutError):
            return TransportError('%s: while reading the response: %s'
                                  % (self._what, _reason(err)))
        return TransportError('%s: connection lost while reading the '
                              'response: %s' % (self._what, _reason(err)),
                              retry_policy.transient_error(err))

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
    """Thread-safe streaming transport with keep-alive connection pools.

    Unset waits and retries take `retry_policy`'s values (and their
    environment variables): CONNECT_TIMEOUT, IDLE_TIMEOUT (READ_TIMEOUT
    here), attempts and backoff; the stall window is the policy's.

    INSECURE_REGISTRIES (`HOST[:PORT]` names, with those of
    $CONTAINERREGISTRY_INSECURE_REGISTRIES) are reached without verifying
    their certificates; `docker_http.Transport` also falls back to plain
    http for them. A malformed name raises `insecure.BadName` (a ValueError).
    """

    def __init__(self, maxsize: int = 8,
                 connect_timeout: Optional[float] = None,
                 read_timeout: Optional[float] = None,
                 max_retries: Optional[int] = None,
                 backoff_factor: Optional[float] = None,
                 ca_certs: Optional[str] = None,
                 insecure_registries: Optional[Iterable[str]] = None):
        self.insecure_registries = insecure.registries(insecure_registries)
        self._maxsize = maxsize
        self._connect_timeout = (connect_timeout if connect_timeout
                                 else retry_policy.setting('CONNECT_TIMEOUT'))
        self._read_timeout = (read_timeout if read_timeout
                              else retry_policy.setting('IDLE_TIMEOUT'))
        self._stall_window = retry_policy.setting('STALL_WINDOW')
        self._stall_bytes = retry_policy.setting('STALL_BYTES')
        self._attempts = (retry_policy.ATTEMPTS if max_retries is None
                          else max_retries + 1)
        self._backoff = (retry_policy.BACKOFF_SECONDS if backoff_factor is None
                         else backoff_factor)
        self._ca_certs = ca_certs
        self._context = None
        self._contexts: Dict[Tuple[str, int], object] = {}
        self._lock = threading.Lock()
        self._idle: Dict[_Key, List[_Connection]] = {}

    def _verifying_context(self):
        """A context trusting the system's store (or `ca_certs`)."""
        import ssl  # pylint: disable=import-outside-toplevel
        if self._ca_certs is None:
            tls_env.check_environment()
        return ssl.create_default_context(cafile=self._ca_certs)

    def _tls_context(self, host: str, port: int):
        """The TLS settings for HOST:PORT: the shared default, or its own
        when its certificate directory has something or it is insecure."""
        with self._lock:
            context = self._contexts.get((host, port))
        if context is not None:
            return context
        try:
            trust = certs_d.lookup(host, port)
        except certs_d.CertsDirError as e:
            raise _Final(str(e)) from e
        unverified = insecure.listed(self.insecure_registries, host, port, 443)
        if trust is None and not unverified:
            with self._lock:
                if self._context is None:
                    self._context = self._verifying_context()
                context = self._context
        else:
            context = _own_context(self._verifying_context(), trust,
                                   unverified)
        with self._lock:
            return self._contexts.setdefault((host, port), context)

    def _connect(self, key: _Key) -> _Connection:
        scheme, host, port = key
        if scheme not in ('http', 'https'):
            raise _Final('unsupported URL scheme: %s' % scheme)
        try:
            proxy = proxy_env.for_url(scheme, host)
        except proxy_env.ProxyConfigError as e:
            raise _Final('%s_proxy: %s' % (scheme, e)) from e
        address = (proxy.host, proxy.port) if proxy else (host, port)
        timeout = retry_policy.wait_limit(
            self._connect_timeout, 'connecting to %s:%d' % address)
        conn: _Connection
        if scheme == 'https':
            conn = _TLSConnection(
                *address, timeout=timeout,
                context=self._tls_context(host, port), blocksize=_BLOCK)
            if proxy:
                # TLS to the registry inside a CONNECT tunnel.
                conn.set_tunnel(host, port, headers=_proxy_headers(proxy))
        else:
            conn = _Connection(*address, timeout=timeout, blocksize=_BLOCK)
        # Plain http through a proxy: requests name the absolute URL.
        conn.forward_proxy = proxy if proxy and scheme == 'http' else None
        try:
            conn.connect()
        except TimeoutError as e:
            conn.close()
            if timeout < self._connect_timeout:
                raise retry_policy.deadline_error(
                    'connecting to %s:%d' % address) from e
            raise TimeoutError('%s:%d did not take a connection within %gs'
                               % (address + (timeout,))) from e
        except OSError as e:
            conn.close()
            if getattr(e, 'verify_message', None):
                raise _Final(_unverified(e, host, port)) from e
            if not proxy:
                raise
            # http.client: "Tunnel connection failed: 407 Proxy Authentication Required"
            refused = re.search(r'failed: 4\d\d ', str(e)) is not None
            raise (_Final if refused else TransportError)(
                '%s: %s' % (proxy, _reason(e))) from e
        return conn

    def _acquire(self, key: _Key) -> Tuple[_Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._connect(key), False

    def release(self, key: _Key, conn: _Connection) -> None:
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
        """The response and its whole body; for GET and HEAD, a body cut
        off or stalled is asked for again (as `retry_policy` allows)."""
        def whole() -> Tuple[streaming.Response, bytes]:
            resp, reader = self.stream(uri, method, body, headers)
            with contextlib.closing(reader):
                return resp, reader.read()
        if method not in IDEMPOTENT or body is not None:
            return whole()
        return retry_policy.retried('%s %s' % (method, _strip_query(uri)),
                                    whole)

    def stream(self, uri: str, method: str = 'GET',
               body: streaming.Body = None,
               headers: Optional[Mapping[str, str]] = None
               ) -> Tuple[streaming.Response, streaming.Reader]:
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
                                     % (method, _strip_query(uri)), False)
            target = urllib.parse.urljoin(uri, location)
            if _origin(target) != _origin(uri):
                headers = {k: v for k, v in headers.items()
                           if k.lower() != 'authorization'}
            logging.debug('Following redirect to %s',
                          urllib.parse.urlsplit(target).netloc)
            uri = target
        raise TransportError('%s %s: more than %d redirects'
                             % (method, _strip_query(uri), MAX_REDIRECTS),
                             False)

    def _send(self, uri: str, method: str, body: streaming.Body,
              headers: Mapping[str, str]
              ) -> Tuple[streaming.Response, streaming.Reader]:
        parts = urllib.parse.urlsplit(uri)
        key = (parts.scheme, parts.hostname or '',
               parts.port or (443 if parts.scheme == 'https' else 80))
        target = urllib.parse.urlunsplit(('', '', parts.path or '/',
                                          parts.query, ''))
        what = '%s %s' % (method, _strip_query(uri))
        idempotent = method in IDEMPOTENT and body is None
        file = streaming.seekable_file(body)
        rewind = (file, file.tell()) if file is not None else None
        attempts = retry_policy.Attempts.join(
            what, limit=self._attempts, base=self._backoff)
        while True:
            try:
                resp, reader = self._exchange(key, method, target, body,
                                              headers, rewind, what)
            except (http.client.HTTPException, OSError) as e:
                transient = (retry_policy.transient_error(e)
                             and not isinstance(e, _Final))
                if not (idempotent and transient
                        and attempts.again(_reason(e), what=what)):
                    raise TransportError('%s: %s%s' % (
                        what, _reason(e), _tls_hint(e, key)),
                                         transient) from e
                continue
            if (not idempotent
                    or not retry_policy.transient_status(resp.status)):
                return resp, reader
            # An error body is short; the caller reports it if this was
            # the last attempt.
            with reader:
                content = reader.read(_MAX_ERROR_BODY)
            if not attempts.again('%d %s' % (resp.status, resp.reason),
                                  retry_policy.retry_after(resp), what):
                return resp, io.BytesIO(content)

    def _exchange(self, key: _Key, method: str, target: str,
                  body: streaming.Body, headers: Mapping[str, str],
                  rewind: Optional[Tuple[BinaryIO, int]],
                  what: str) -> Tuple[streaming.Response, _Body]:
        """One request on a pooled connection.

        A kept-alive connection the server closed meanwhile fails at once;
        the request then goes again on a fresh one, if its body allows.
        """
        conn, reused = self._acquire(key)
        if conn.forward_proxy is not None:
            target = '%s://%s:%d%s' % (key + (target,))
            headers = dict(headers, **_proxy_headers(conn.forward_proxy))
        try:
            response = self._ask(conn, method, target, body, headers, what)
        except _STALE:
            conn.close()
            if not reused or (body is not None and rewind is None
                              and not isinstance(body, (bytes, bytearray))):
                raise
            if rewind is not None:
                file, offset = rewind
                file.seek(offset)
            conn = self._connect(key)
            try:
                response = self._ask(conn, method, target, body, headers,
                                     what)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        resp = streaming.Response(response.status, _headers(response),
                                  response.reason or '')
        return resp, _Body(self, key, conn, response, what)

    def _ask(self, conn: _Connection, method: str, target: str,
             body: streaming.Body, headers: Mapping[str, str],
             what: str) -> http.client.HTTPResponse:
        """Sends the request on CONN and reads the response's head; every
        wait is bounded (see `_WatchedIO`)."""
        host = '%s:%d' % (conn.host, conn.port)
        limit = retry_policy.wait_limit(
            self._read_timeout, '%s: sending to %s' % (what, host))
        conn.sock.settimeout(limit)
        # http.client only calls response_class(sock, method=...): a
        # partial serves, though the stubs ask for the class itself.
        conn.response_class = cast(
            Type[http.client.HTTPResponse],
            functools.partial(_Response, watch=_Watch(
                host, what, self._read_timeout, self._stall_window,
                self._stall_bytes)))
        try:
            _request(conn, method, target, body, headers)
        except TimeoutError as e:
            raise TimeoutError('%s took nothing for %gs' % (host, limit)) from e
        return conn.getresponse()


def _own_context(context, trust: Optional[certs_d.Trust], unverified: bool):
    """CONTEXT with a registry's own CAs and client certificate, or
    verifying nothing when UNVERIFIED."""
    import ssl  # pylint: disable=import-outside-toplevel
    if unverified:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if trust is None:
        return context
    for cafile in trust.cafiles:
        try:
            context.load_verify_locations(cafile=cafile)
        except (ssl.SSLError, OSError) as e:
            raise _Final('%s is not a usable CA certificate: %s'
                         % (cafile, _reason(e))) from e
    if trust.client:
        try:
            context.load_cert_chain(*trust.client)
        except (ssl.SSLError, OSError) as e:
            raise _Final('%s and %s are not a usable client certificate and '
                         'key: %s' % (trust.client + (_reason(e),))) from e
    return context


def _certs_dir(host: str, port: int) -> str:
    """Where the certificates of HOST:PORT are looked for first."""
    return os.path.join(certs_d.roots()[0],
                        certs_d.directory_names(host, port, 443)[-1])


def _unverified(err: OSError, host: str, port: int) -> str:
    """The line for a certificate that failed verification, with where a
    CA for this registry alone would be trusted."""
    return ('the certificate of %s:%d could not be verified (%s): put its CA '
            'in %s/ (as ca.crt) to trust it for this registry, or name the '
            'registry with --insecure-registry' % (
                host, port, getattr(err, 'verify_message', err),
                _certs_dir(host, port)))


# OpenSSL's reasons when the server refused our (missing) client
# certificate, and when what answered https was no TLS server.
_CLIENT_CERT_REFUSED = frozenset([
    'SSLV3_ALERT_BAD_CERTIFICATE', 'TLSV13_ALERT_CERTIFICATE_REQUIRED',
    'SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'TLSV1_ALERT_UNKNOWN_CA'])
_NOT_TLS = frozenset(['WRONG_VERSION_NUMBER', 'RECORD_LAYER_FAILURE',
                      'PACKET_LENGTH_TOO_LONG'])


def _tls_hint(err: BaseException, key: _Key) -> str:
    """What the user may do about a TLS failure with KEY's host, or ''."""
    reason = getattr(err, 'reason', None)
    scheme, host, port = key
    if scheme != 'https' or not isinstance(reason, str):
        return ''
    if reason in _CLIENT_CERT_REFUSED:
        return (' (%s:%d refused the client certificate, or wanted one: it '
                'goes in %s/ as NAME.cert with NAME.key)'
                % (host, port, _certs_dir(host, port)))
    if reason in _NOT_TLS:
        return (' (%s:%d does not speak TLS; a plain-http registry is named '
                'with --insecure-registry)' % (host, port))
    return ''


def _proxy_headers(proxy: proxy_env.Proxy) -> Dict[str, str]:
    return {'Proxy-Authorization': proxy.authorization} if proxy.authorization else {}


def _sendable_file(conn: http.client.HTTPConnection, body: streaming.Body,
                   headers: Mapping[str, str]
                   ) -> Optional[Tuple[BinaryIO, int]]:
    """The file body to send by sendfile and its Content-Length, or None
    when it cannot be.

    Only a regular file over plain TCP with its length given qualifies: TLS
    sockets cannot sendfile, and pipes have no offsets.
    """
    if (isinstance(conn, http.client.HTTPSConnection) or body is None
            or isinstance(body, (bytes, bytearray))):
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
    return body, int(length)


# How much one sendfile call sends.
_SENDFILE_SLICE = 8 << 20


def _request(conn: http.client.HTTPConnection, method: str, target: str,
             body: streaming.Body, headers: Mapping[str, str]) -> None:
    """Sends one request; a file body goes to the socket by sendfile.

    http.client copies a file body through Python a block at a time; the
    kernel copying it saves the pusher most of its CPU on large layers.
    """
    sendable = _sendable_file(conn, body, headers)
    if sendable is None:
        conn.request(method, target, body=body, headers=headers)
        return
    file, length = sendable
    names = frozenset(k.lower() for k in headers)
    conn.putrequest(method, target, skip_host='host' in names,
                    skip_accept_encoding='accept-encoding' in names)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    offset = file.tell()
    sent = 0
    # In slices, so that a body counting its seeks (progress) sees each.
    while sent < length:
        step = conn.sock.sendfile(file, offset + sent,
                                  min(_SENDFILE_SLICE, length - sent))
        if not step:
            break
        sent += step
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
