"""A small server of the v1 registry protocol, for the v1 client's tests.

No maintained registry serves the v1 protocol any more (the distribution
registry the other tests run dropped it), so this is the one place where a
test server of the project's own stands in for a real registry. It serves
what Docker's v1 index and registry did, and enforces it so that a client
that gets it wrong fails:

- the index (`registry`, `localhost:PORT`): `GET /v1/repositories/R/images`
  (pull) and `PUT /v1/repositories/R/` (push) with the caller's
  credentials (Basic, checked when `credentials` is set) answer, when asked
  with `X-Docker-Token: true`, with a session token (`X-Docker-Token`) and
  the endpoint (`X-Docker-Endpoints`); `PUT /v1/repositories/R/images`
  (Basic again) ends a push session, revoking its token.
- the endpoint (`endpoint`, a second port, so another origin): image JSON,
  ancestry and layer, tags, and the push's PUTs, each only with a token the
  index issued (`Authorization: Token ...`; write access for PUTs). An
  image is visible only once its JSON, layer and matching checksum
  (`X-Docker-Checksum-Payload`: sha256 of JSON, newline, layer) are in; a
  tag may only name a visible image.

`seen` records (role, method, path, Authorization) for every request, so
tests can check which credentials reached which host.
"""
import base64
import hashlib
import http.server
import json
import re
import secrets
import threading
from typing import Dict, List, NamedTuple, Optional, Tuple

_REPO = r'(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)'
_ID = r'(?P<id>[0-9a-f]{64})'


class Seen(NamedTuple):
    role: str
    method: str
    path: str
    authorization: Optional[str]


class _Image:
    def __init__(self, metadata: bytes, parent: Optional[str]):
        self.json = metadata
        self.parent = parent
        self.layer: Optional[bytes] = None
        self.complete = False


def payload_checksum(metadata: bytes, layer: bytes) -> str:
    return 'sha256:' + hashlib.sha256(metadata + b'\n' + layer).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    timeout = 30
    # Headers and body in one write, flushed after each response: no
    # Nagle/delayed-ACK stall per request.
    wbufsize = 1 << 16
    server: '_Server'

    def log_message(self, *unused) -> None:
        pass

    def _reply(self, status: int, body: bytes = b'',
               headers: Optional[Dict[str, str]] = None,
               content_type: str = 'application/json') -> None:
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, json.dumps({'error': message}).encode())

    def _body(self) -> Optional[bytes]:
        length = self.headers.get('Content-Length')
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(411, 'Content-Length required')
            return None
        return self.rfile.read(int(length))

    def _dispatch(self) -> None:
        owner = self.server.owner
        auth = self.headers.get('Authorization')
        path = self.path.split('?', 1)[0]
        owner.record(Seen(self.server.role, self.command, path, auth))
        body = b''
        if self.command == 'PUT':
            read = self._body()
            if read is None:
                return
            body = read
        for role, method, pattern, handler in _ROUTES:
            if role not in self.server.roles or method != self.command:
                continue
            match = re.fullmatch(pattern, path)
            if match:
                with owner.lock:
                    handler(self, owner, body, auth, **match.groupdict())
                return
        self._error(404, 'no such endpoint: %s %s' % (self.command, path))

    do_GET = do_PUT = _dispatch

    # The index.

    def _session(self, owner: 'V1Registry', repo: str, auth: Optional[str],
                 access: str) -> Optional[Dict[str, str]]:
        """Token headers for a session, or None after answering 401."""
        if owner.credentials and auth != owner.basic_header():
            self._error(401, 'Invalid credentials')
            return None
        if self.headers.get('X-Docker-Token', '').lower() != 'true':
            return {}
        token = 'signature=%s,repository="%s",access=%s' % (
            secrets.token_hex(16), repo, access)
        owner.tokens[token] = (repo, access)
        return {'X-Docker-Token': token,
                'X-Docker-Endpoints': owner.endpoint}

    def index_images(self, owner, body, auth, repo):
        headers = self._session(owner, repo, auth, 'read')
        if headers is None:
            return
        if repo not in owner.repositories:
            self._error(404, 'Repository not found')
            return
        ids = sorted({i for top in owner.repositories[repo].values()
                      for i in owner.ancestry(top)})
        self._reply(200, json.dumps([{'id': i} for i in ids]).encode(),
                    headers)

    def index_start_push(self, owner, body, auth, repo):
        headers = self._session(owner, repo, auth, 'write')
        if headers is None:
            return
        if not isinstance(_loads(body), list):
            self._error(400, 'Expected a JSON list of images')
            return
        owner.repositories.setdefault(repo, {})
        self._reply(200, b'""', headers)

    def index_end_push(self, owner, body, auth, repo):
        if owner.credentials and auth != owner.basic_header():
            self._error(401, 'Invalid credentials')
            return
        listed = _loads(body)
        if not isinstance(listed, list):
            self._error(400, 'Expected a JSON list of images')
            return
        owner.closed.append((repo, listed))
        for token, (token_repo, access) in list(owner.tokens.items()):
            if token_repo == repo and access == 'write':
                del owner.tokens[token]
        self._reply(204)

    # The endpoint.

    def _grant(self, owner: 'V1Registry', auth: Optional[str],
               repo: Optional[str] = None, write: bool = False) -> bool:
        """Whether AUTH is a live token (for REPO, with write access when
        WRITE); answers 401 when not."""
        token = auth[len('Token '):] if auth and auth.startswith(
            'Token ') else None
        grant = owner.tokens.get(token) if token else None
        if (grant is None or (repo is not None and grant[0] != repo)
                or (write and grant[1] != 'write')):
            self._error(401, 'Requires a session token')
            return False
        return True

    def _visible(self, owner, image_id) -> Optional[_Image]:
        image = owner.images.get(image_id)
        if image is None or not image.complete:
            self._error(404, 'Image not found')
            return None
        return image

    def get_json(self, owner, body, auth, id):
        image = self._grant(owner, auth) and self._visible(owner, id)
        if image:
            self._reply(200, image.json)

    def get_ancestry(self, owner, body, auth, id):
        if self._grant(owner, auth) and self._visible(owner, id):
            self._reply(200, json.dumps(owner.ancestry(id)).encode())

    def get_layer(self, owner, body, auth, id):
        image = self._grant(owner, auth) and self._visible(owner, id)
        if image:
            self._reply(200, image.layer, content_type='application/octet-stream')

    def get_tags(self, owner, body, auth, repo):
        if not self._grant(owner, auth, repo):
            return
        if repo not in owner.repositories:
            self._error(404, 'Repository not found')
            return
        self._reply(200, json.dumps(owner.repositories[repo]).encode())

    def put_json(self, owner, body, auth, id):
        if not self._grant(owner, auth, write=True):
            return
        metadata = _loads(body)
        if not isinstance(metadata, dict) or metadata.get('id') != id:
            self._error(400, 'JSON does not describe image %s' % id)
            return
        parent = metadata.get('parent')
        if parent is not None and not (parent in owner.images
                                       and owner.images[parent].complete):
            self._error(400, 'Parent %s not uploaded' % parent)
            return
        if id in owner.images and owner.images[id].complete:
            self._error(409, 'Image already exists')
            return
        owner.images[id] = _Image(body, parent)
        self._reply(200, b'""')

    def put_layer(self, owner, body, auth, id):
        if not self._grant(owner, auth, write=True):
            return
        image = owner.images.get(id)
        if image is None:
            self._error(400, 'Image JSON not uploaded')
            return
        if image.complete:
            self._error(409, 'Image already exists')
            return
        image.layer = body
        self._reply(200, b'""')

    def put_checksum(self, owner, body, auth, id):
        if not self._grant(owner, auth, write=True):
            return
        image = owner.images.get(id)
        if image is None or image.layer is None:
            self._error(400, 'Image layer not uploaded')
            return
        sent = self.headers.get('X-Docker-Checksum-Payload')
        if sent != payload_checksum(image.json, image.layer):
            self._error(400, 'Checksum mismatch')
            return
        image.complete = True
        self._reply(200, b'""')

    def put_tag(self, owner, body, auth, repo, tag):
        if not self._grant(owner, auth, repo, write=True):
            return
        image_id = _loads(body)
        if not isinstance(image_id, str):
            self._error(400, 'Expected a JSON string')
            return
        if self._visible(owner, image_id) is None:
            return
        owner.repositories.setdefault(repo, {})[tag] = image_id
        self._reply(200, b'""')


def _loads(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


_ROUTES = [
    ('index', 'GET', r'/v1/repositories/%s/images' % _REPO,
     _Handler.index_images),
    ('index', 'PUT', r'/v1/repositories/%s/' % _REPO,
     _Handler.index_start_push),
    ('index', 'PUT', r'/v1/repositories/%s/images' % _REPO,
     _Handler.index_end_push),
    ('endpoint', 'GET', r'/v1/images/%s/json' % _ID, _Handler.get_json),
    ('endpoint', 'GET', r'/v1/images/%s/ancestry' % _ID,
     _Handler.get_ancestry),
    ('endpoint', 'GET', r'/v1/images/%s/layer' % _ID, _Handler.get_layer),
    ('endpoint', 'GET', r'/v1/repositories/%s/tags' % _REPO,
     _Handler.get_tags),
    ('endpoint', 'PUT', r'/v1/images/%s/json' % _ID, _Handler.put_json),
    ('endpoint', 'PUT', r'/v1/images/%s/layer' % _ID, _Handler.put_layer),
    ('endpoint', 'PUT', r'/v1/images/%s/checksum' % _ID,
     _Handler.put_checksum),
    ('endpoint', 'PUT', r'/v1/repositories/%s/tags/(?P<tag>[\w][\w.-]*)'
     % _REPO, _Handler.put_tag),
]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: 'V1Registry', role: str, roles: Tuple[str, ...]):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.owner = owner
        self.role = role
        self.roles = roles


class V1Registry:
    """A v1 index and endpoint on 127.0.0.1, each on a free port.

    With `separate_endpoint=False` one port serves both, as a registry that
    names itself as its endpoint. `credentials` is (username, password) for
    the index; without it the index lets anyone in.
    """

    def __init__(self, credentials: Optional[Tuple[str, str]] = None,
                 separate_endpoint: bool = True):
        self.credentials = credentials
        self.lock = threading.Lock()
        self.images: Dict[str, _Image] = {}
        self.repositories: Dict[str, Dict[str, str]] = {}
        self.tokens: Dict[str, Tuple[str, str]] = {}
        self.closed: List[Tuple[str, list]] = []
        self.seen: List[Seen] = []
        if separate_endpoint:
            self._servers = [_Server(self, 'index', ('index',)),
                             _Server(self, 'endpoint', ('endpoint',))]
        else:
            self._servers = [_Server(self, 'index', ('index', 'endpoint'))]
        self.registry = 'localhost:%d' % self._servers[0].server_address[1]
        self.endpoint = 'localhost:%d' % self._servers[-1].server_address[1]
        self._threads = [threading.Thread(target=s.serve_forever,
                                          kwargs={'poll_interval': 0.1},
                                          daemon=True) for s in self._servers]
        for thread in self._threads:
            thread.start()

    def basic_header(self) -> Optional[str]:
        if not self.credentials:
            return None
        raw = ('%s:%s' % self.credentials).encode()
        return 'Basic ' + base64.b64encode(raw).decode()

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def ancestry(self, image_id: str) -> List[str]:
        chain = [image_id]
        while self.images[chain[-1]].parent:
            chain.append(self.images[chain[-1]].parent)
        return chain

    def add(self, repo: str, tag: str, layers: List[Tuple[str, bytes, bytes]]
            ) -> None:
        """Serves LAYERS, (id, JSON, layer) base first, as REPO:TAG."""
        with self.lock:
            for image_id, metadata, layer in layers:
                image = _Image(metadata, json.loads(metadata).get('parent'))
                image.layer = layer
                image.complete = True
                self.images[image_id] = image
            self.repositories.setdefault(repo, {})[tag] = layers[-1][0]

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(10)

    def __enter__(self) -> 'V1Registry':
        return self

    def __exit__(self, *unused) -> None:
        self.stop()
