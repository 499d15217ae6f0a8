"""A forward HTTP proxy for tests: CONNECT tunnels and absolute-form requests.

Host names are looked up in its own table (`hosts`, e.g. `registry.test` ->
`127.0.0.1`), so clients can name a local registry by a name that is not
loopback (loopback goes direct, never through a proxy) and that they never
resolve themselves. With `credentials` set it answers 407 unless the first
request of a connection carries the matching Proxy-Authorization.

After the first request of a connection, bytes are piped both ways
unchanged: the distribution registry accepts absolute-form request targets
itself. `seen` records each connection's first request line and its
Proxy-Authorization header.
"""
import base64
import socket
import socketserver
import threading
from typing import Dict, List, Optional, Tuple


class _Handler(socketserver.BaseRequestHandler):
    server: '_Server'

    def handle(self) -> None:
        client = self.request
        head = b''
        while b'\r\n\r\n' not in head:
            more = client.recv(65536)
            if not more:
                return
            head += more
        header, _, rest = head.partition(b'\r\n\r\n')
        lines = header.decode('latin-1').split('\r\n')
        method, target, _ = lines[0].split(' ', 2)
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(':')
            fields[name.strip().lower()] = value.strip()
        auth = fields.get('proxy-authorization')
        owner = self.server.owner
        owner.seen.append((lines[0], auth))
        if owner.credentials and auth != 'Basic ' + base64.b64encode(
                ('%s:%s' % owner.credentials).encode()).decode():
            client.sendall(b'HTTP/1.1 407 Proxy Authentication Required\r\n'
                           b'Proxy-Authenticate: Basic realm="test"\r\n'
                           b'Content-Length: 0\r\nConnection: close\r\n\r\n')
            return
        if method == 'CONNECT':
            host, _, port = target.rpartition(':')
        else:
            netloc = target.split('://', 1)[1].split('/', 1)[0]
            host, _, port = netloc.rpartition(':')
        try:
            upstream = socket.create_connection((owner.hosts.get(host, host), int(port)))
        except OSError:
            client.sendall(b'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n'
                           b'Connection: close\r\n\r\n')
            return
        with upstream:
            if method == 'CONNECT':
                client.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
                if rest:
                    upstream.sendall(rest)
            else:
                upstream.sendall(head)
            pump = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            pump.start()
            _pipe(client, upstream)
            pump.join()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: 'ForwardProxy'


class ForwardProxy:
    """Listens on 127.0.0.1; `.url` is what HTTP(S)_PROXY should say."""

    def __init__(self, hosts: Dict[str, str],
                 credentials: Optional[Tuple[str, str]] = None):
        self.hosts = dict(hosts)
        self.credentials = credentials
        self.seen: List[Tuple[str, Optional[str]]] = []
        self._server = _Server(('127.0.0.1', 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, credentials: Optional[Tuple[str, str]] = None) -> str:
        user = '%s:%s@' % credentials if credentials else ''
        return 'http://%s127.0.0.1:%d' % (user, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
