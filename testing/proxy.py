"""A tampering reverse proxy in front of a real registry.

Clients name it `localhost:PORT` (plain http). By default it forwards every
request unchanged; tests switch on faults:

- `corrupt_blob(digest, times=None)`: flip one byte of that blob's body
  (every time, or in the first TIMES responses);
- `replace_manifest(ref, body)`: serve BODY for manifest GET/HEADs of REF;
- `drop_blob(digest, after=N, times=None)`: announce the full length, send N
  bytes, close (every time, or the first TIMES responses, ranged ones too);
- `stall_blob(digest, after=N)`: send N bytes of that blob, then nothing
  until the proxy stops (a download stuck on the network);
- `redirect_blobs()`: answer blob GETs with a 307 to a second server on
  `127.0.0.1:OTHERPORT` (another host name than `localhost`), which serves
  the blob itself and records the headers it received (`origin_requests`);
- `divert_uploads()`: point the `Location` of upload responses at that
  second server, which forwards the upload to the registry with its own
  credentials (as a blob store behind a registry would);
- `anonymous_ping()`: answer `GET /v2/` with 200 itself, as registries that
  allow anonymous access to some repositories do;
- `oversize_manifest(ref, announce)`: answer manifest GETs of REF with
  9 MiB of junk, announced as 10 GB (ANNOUNCE) or sent chunked;
- `fail(method, contains, status, times)`: answer the first TIMES requests
  of METHOD whose path contains CONTAINS with STATUS (and a Retry-After
  header when given) instead of forwarding them;
- `cut(method, pattern, after=N, times)`, `hang(...)`, `trickle(..., rate)`:
  for requests of METHOD whose path matches the regex PATTERN (the ping
  `^/v2/$`, `/manifests/`, `/tags/list`, `^/token`, blobs...), announce the
  whole body and close after N bytes; never answer; or send the body at
  RATE bytes per second (the first TIMES responses, or all);
- `route_token()`: send Bearer clients to the token server through this
  proxy (path `/token`), so that its answers can be cut, hung or trickled.

`SilentServer` accepts connections and never answers a byte.

- `rewrite_realm(realm)`: put REALM into the registry's Bearer challenges
  (a registry naming a token realm elsewhere);
- `redirect(path, location, status)`: answer requests for PATH with STATUS
  and that Location (a registry sending a manifest request elsewhere).

Every request is recorded in `requests` as (method, path, headers).
"""
import hashlib
import http.client
import http.server
import re
import socket
import threading
import urllib.parse
from typing import Dict, List, Optional, Tuple

_BLOB_RE = re.compile(r'^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$')
_REPO_RE = re.compile(r'^/v2/(.+?)/(?:blobs|manifests|tags)/')
_MANIFEST_RE = re.compile(r'^/v2/(.+)/manifests/([^/]+)$')
_HOP = {'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization',
        'te', 'trailers', 'transfer-encoding', 'upgrade', 'host'}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler) -> Tuple[_Server, threading.Thread]:
    httpd = _Server(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


class Proxy:
    def __init__(self, registry):
        self.registry = registry
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []
        self.origin_requests: List[Tuple[str, str, Dict[str, str]]] = []
        self._corrupt: Dict[str, Optional[int]] = {}
        self._drop: Dict[str, int] = {}
        self._stall: Dict[str, int] = {}
        self.stalled = threading.Event()  # set once a stalled GET began
        self._stopping = threading.Event()
        self._manifests: Dict[str, bytes] = {}
        self._redirect = False
        self._divert = False
        self._anonymous_ping = False
        self._failures: List[list] = []
        self._oversize: Dict[str, bool] = {}
        self._redirects: Dict[str, Tuple[str, int]] = {}
        self._realm: Optional[str] = None
        self._faults: List[list] = []
        self._route_token = False
        self._lock = threading.Lock()
        self._httpd, _ = _serve(self._proxy_handler())
        self._origin, _ = _serve(self._origin_handler())
        self.port = self._httpd.server_address[1]
        self.origin_port = self._origin.server_address[1]

    @property
    def host(self) -> str:
        return 'localhost:%d' % self.port

    @property
    def origin_host(self) -> str:
        return '127.0.0.1:%d' % self.origin_port

    # Fault switches.
    def corrupt_blob(self, digest: str, times: Optional[int] = None) -> None:
        self._corrupt[digest] = times

    def _corrupting(self, digest: str) -> bool:
        """Whether this response of DIGEST is to be damaged (counts it)."""
        with self._lock:
            if digest not in self._corrupt:
                return False
            times = self._corrupt[digest]
            if times is not None:
                if times <= 0:
                    return False
                self._corrupt[digest] = times - 1
            return True

    def replace_manifest(self, ref: str, body: bytes,
                         consistent_digest: bool = False) -> None:
        """Serve BODY for REF; with CONSISTENT_DIGEST, its own sha256 as
        Docker-Content-Digest (a registry lying consistently)."""
        self._manifests[ref] = (body, consistent_digest)

    def drop_blob(self, digest: str, after: int = 16,
                  times: Optional[int] = None) -> None:
        """Cut GETs of DIGEST (full or ranged) after AFTER body bytes.

        With TIMES, only that many responses are cut; later ones go through.
        """
        self._drop[digest] = (after, times)

    def stall_blob(self, digest: str, after: int = 16) -> None:
        """Hold GETs of DIGEST after AFTER body bytes until the proxy stops."""
        self._stall[digest] = after

    def redirect_blobs(self, on: bool = True) -> None:
        self._redirect = on

    def divert_uploads(self, on: bool = True) -> None:
        self._divert = on

    def anonymous_ping(self, on: bool = True) -> None:
        self._anonymous_ping = on

    def rewrite_realm(self, realm: str) -> None:
        self._realm = realm

    def redirect(self, path: str, location: str, status: int = 301) -> None:
        self._redirects[path] = (location, status)

    def oversize_manifest(self, ref: str, announce: bool) -> None:
        self._oversize[ref] = announce

    def fail(self, method: str, contains: str, status: int, times: int = 1,
             retry_after: Optional[str] = None) -> None:
        with self._lock:
            self._failures.append([method, contains, status, times, retry_after])

    def cut(self, method: str, pattern: str, after: int = 16,
            times: Optional[int] = 1) -> None:
        self._add_fault('cut', method, pattern, times, after)

    def hang(self, method: str, pattern: str, times: Optional[int] = None) -> None:
        self._add_fault('hang', method, pattern, times, None)

    def trickle(self, method: str, pattern: str, rate: int = 100,
                times: Optional[int] = None) -> None:
        self._add_fault('trickle', method, pattern, times, rate)

    def _add_fault(self, kind, method, pattern, times, arg) -> None:
        with self._lock:
            self._faults.append([kind, method, re.compile(pattern), times, arg])

    def _fault(self, method: str, path: str):
        """(kind, argument) of the first fault matching, if any is left."""
        with self._lock:
            for rule in self._faults:
                kind, m, pattern, times, arg = rule
                if m == method and pattern.search(path) and times != 0:
                    if times is not None:
                        rule[3] -= 1
                    return kind, arg
        return None

    def route_token(self, on: bool = True) -> None:
        self._route_token = on

    def _failure(self, method: str, path: str):
        """The (status, retry_after) to answer with, if a fault matches."""
        with self._lock:
            for rule in self._failures:
                if rule[0] == method and rule[1] in path and rule[3] > 0:
                    rule[3] -= 1
                    return rule[2], rule[4]
        return None

    def count(self, method: Optional[str] = None, contains: str = '') -> int:
        return sum(1 for m, p, _ in self.requests
                   if (method is None or m == method) and contains in p)

    def stop(self) -> None:
        self._stopping.set()
        for httpd in (self._httpd, self._origin):
            httpd.shutdown()
            httpd.server_close()

    def _upstream(self, method: str, path: str, headers: Dict[str, str]):
        conn = http.client.HTTPConnection('127.0.0.1', self.registry.port, timeout=30)
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return conn, resp

    def _proxy_handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _record(self):
                with proxy._lock:
                    proxy.requests.append((self.command, self.path,
                                           dict(self.headers.items())))

            def _send(self, status: int, headers, body: bytes, declared=None,
                      drop_after=None, stall_after=None, fault=None):
                if fault and fault[0] == 'cut':
                    declared, drop_after = len(body), fault[1]
                if fault and fault[0] == 'hang':
                    proxy._stopping.wait(120)
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in _HOP and k.lower() != 'content-length':
                        self.send_header(k, v)
                length = len(body) if declared is None else declared
                self.send_header('Content-Length', str(length))
                if drop_after is not None:
                    self.send_header('Connection', 'close')
                self.end_headers()
                if self.command == 'HEAD':
                    return
                if fault and fault[0] == 'trickle':
                    self._trickle(body, fault[1])
                elif stall_after is not None:
                    self.wfile.write(body[:stall_after])
                    self.wfile.flush()
                    proxy.stalled.set()
                    proxy._stopping.wait(120)
                    self.close_connection = True
                elif drop_after is None:
                    self.wfile.write(body)
                else:
                    self.wfile.write(body[:drop_after])
                    self.wfile.flush()
                    self.close_connection = True

            def _trickle(self, body: bytes, rate: int) -> None:
                """BODY at RATE bytes a second, until the client goes."""
                self.close_connection = True
                step = max(1, rate // 10)
                try:
                    for i in range(0, len(body), step):
                        if proxy._stopping.wait(0.1):
                            return
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                except OSError:
                    pass

            def _handle(self):
                self._record()
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split('?', 1)[0]
                fault = proxy._fault(self.command, path)
                if fault and fault[0] == 'hang':
                    return self._send(0, [], b'', fault=fault)
                if path == '/token' and proxy.registry.token_server:
                    return self._token(fault)
                blob = _BLOB_RE.match(path)
                manifest = _MANIFEST_RE.match(path)
                failure = proxy._failure(self.command, path)
                if failure:
                    status, retry_after = failure
                    headers = [('Content-Type', 'application/json')]
                    if retry_after is not None:
                        headers.append(('Retry-After', retry_after))
                    return self._send(status, headers, (
                        b'{"errors": [{"code": "UNAVAILABLE", '
                        b'"message": "injected failure"}]}'))
                if (path == '/v2/' and self.command == 'GET'
                        and proxy._anonymous_ping):
                    return self._send(200, [('Content-Type', 'application/json')],
                                      b'{}')
                if path in proxy._redirects:
                    location, status = proxy._redirects[path]
                    return self._send(status, [('Location', location)], b'')
                if (blob and self.command == 'GET' and proxy._redirect):
                    self.send_response(307)
                    self.send_header('Location', 'http://%s%s' % (proxy.origin_host, self.path))
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                if (manifest and manifest.group(2) in proxy._oversize
                        and self.command == 'GET'):
                    return self._send_oversize(proxy._oversize[manifest.group(2)])
                if manifest and manifest.group(2) in proxy._manifests \
                        and self.command in ('GET', 'HEAD'):
                    fake, consistent = proxy._manifests[manifest.group(2)]
                    conn, resp = proxy._upstream('HEAD', self.path, self._fwd_headers())
                    resp.read()
                    conn.close()
                    if resp.status == 401:
                        return self._send(401, resp.getheaders(), b'')
                    headers = resp.getheaders()
                    if consistent:
                        digest = 'sha256:' + hashlib.sha256(fake).hexdigest()
                        headers = [(k, digest if k.lower() == 'docker-content-digest'
                                    else v) for k, v in headers]
                    return self._send(200, headers, fake)
                headers = self._fwd_headers()
                conn = http.client.HTTPConnection('127.0.0.1', proxy.registry.port,
                                                  timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                drop = None
                declared = None
                if blob and self.command == 'GET' and resp.status == 200:
                    digest = blob.group(2)
                    if data and proxy._corrupting(digest):
                        data = bytes([data[0] ^ 0xff]) + data[1:]
                if blob and self.command == 'GET' and resp.status in (200, 206):
                    digest = blob.group(2)
                    with proxy._lock:
                        after, times = proxy._drop.get(digest, (None, None))
                        if after is not None and times is not None:
                            if times <= 0:
                                after = None
                            else:
                                proxy._drop[digest] = (after, times - 1)
                    if after is not None:
                        drop = after
                        declared = len(data)
                stall = None
                if blob and self.command == 'GET' and resp.status == 200:
                    stall = proxy._stall.get(blob.group(2))
                headers = resp.getheaders()
                if proxy._realm:
                    headers = [(k, re.sub(r'realm="[^"]*"',
                                          'realm="%s"' % proxy._realm, v)
                                if k.lower() == 'www-authenticate' else v)
                               for k, v in headers]
                if proxy._divert and '/blobs/uploads/' in path:
                    headers = _relocated(headers, proxy.origin_host)
                if proxy._route_token:
                    headers = [(k, v.replace(proxy.registry.token_server.realm,
                                             'http://%s/token' % proxy.host))
                               if k.lower() == 'www-authenticate' else (k, v)
                               for k, v in headers]
                self._send(resp.status, headers, data, declared, drop, stall,
                           fault)

            def _token(self, fault) -> None:
                """Forwards a token request to the registry's token server."""
                url = urllib.parse.urlsplit(proxy.registry.token_server.realm)
                conn = http.client.HTTPConnection(url.hostname, url.port,
                                                  timeout=30)
                conn.request(self.command, self.path, headers=self._fwd_headers())
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self._send(resp.status, resp.getheaders(), data, fault=fault)

            def _send_oversize(self, announce: bool) -> None:
                self.send_response(200)
                self.send_header('Content-Type',
                                 'application/vnd.docker.distribution.manifest.v2+json')
                if announce:
                    self.send_header('Content-Length', str(10 ** 10))
                else:
                    self.send_header('Transfer-Encoding', 'chunked')
                self.end_headers()
                piece = b' ' * (1 << 20)
                try:
                    for _ in range(9):
                        if announce:
                            self.wfile.write(piece)
                        else:
                            self.wfile.write(b'%x\r\n%s\r\n' % (len(piece), piece))
                    if not announce:
                        self.wfile.write(b'0\r\n\r\n')
                except OSError:
                    pass
                self.close_connection = True

            def _fwd_headers(self):
                """The request's end-to-end headers and its Host, so the
                registry's absolute URLs name the proxy (as behind nginx)."""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP and k.lower() != 'content-length'}
                headers['Host'] = self.headers.get('Host') or proxy.host
                return headers

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler

    def _origin_handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _forward(self):
                with proxy._lock:
                    proxy.origin_requests.append((self.command, self.path,
                                                  dict(self.headers.items())))
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP
                           and k.lower() not in ('content-length', 'authorization')}
                if proxy.registry.username:
                    headers.update(_registry_auth(proxy.registry, self.path))
                conn = http.client.HTTPConnection('127.0.0.1', proxy.registry.port,
                                                  timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in _relocated(resp.getheaders(), proxy.origin_host):
                    if k.lower() not in _HOP and k.lower() != 'content-length':
                        self.send_header(k, v)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                if self.command != 'HEAD':
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = _forward

        return Handler


class SilentServer:
    """Accepts connections on 127.0.0.1 (`host` is localhost:PORT), reads
    what comes and never answers, until stopped."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._conns: List[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return 'localhost:%d' % self.port

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        for conn in self._conns:
            conn.close()
        self._sock.close()


def _relocated(headers, host: str):
    """HEADERS with an absolute or relative Location moved to HOST."""
    out = []
    for k, v in headers:
        if k.lower() == 'location':
            parts = urllib.parse.urlsplit(v)
            v = urllib.parse.urlunsplit(('http', host, parts.path, parts.query, ''))
        out.append((k, v))
    return out


def _registry_auth(registry, path: str) -> Dict[str, str]:
    """Headers that let the origin read a blob from an auth registry itself."""
    if registry.auth == 'basic':
        return {'Authorization': registry.basic_auth_header()}
    from containerregistry.testing import images
    repo = _REPO_RE.match(path.split('?', 1)[0]).group(1)
    client = images.Client(registry)
    client.request('GET', repo, 'tags/list')
    return {'Authorization': client._token['repository:%s:pull,push' % repo]}


def start_proxy(registry) -> Proxy:
    """A proxy for REGISTRY (anonymous or basic/token auth, plain http)."""
    return Proxy(registry)
