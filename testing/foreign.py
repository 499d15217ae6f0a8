"""Images with a foreign layer (a Windows base), as rules_docker builds them.

rules_docker's `join_layers.py` wrote a docker-save tarball whose foreign
base layer is an empty placeholder `layer.tar`, described by a
`LayerSources` entry of `manifest.json` (keyed by its diff_id: the layer's
descriptor from the base image's manifest, `urls` included). The layer's
real bytes live only at those URLs; `serve` stands in for that host.
"""
import contextlib
import dataclasses
import hashlib
import http.server
import io
import json
import tarfile
import threading
from typing import Dict, Iterator, List, Union

from containerregistry.client.v2_2 import docker_http
from containerregistry.testing import images


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class ForeignImage:
    """A join_layers tarball: foreign base layer + one own layer."""
    path: str
    config: bytes
    foreign: images.Layer  # the real base layer, served from its URLs
    descriptor: dict  # the foreign layer's LayerSources entry
    own: images.Layer  # the own layer, a plain tar in the tarball

    @property
    def tars(self) -> List[bytes]:
        return [self.foreign.tar, self.own.tar]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def descriptor(layer: images.Layer, urls: List[str]) -> dict:
    return {'digest': layer.digest, 'mediaType': docker_http.FOREIGN_LAYER_MIME,
            'size': len(layer.blob), 'urls': list(urls)}


def join_layers_tarball(path: str, urls: List[str], seed: int = 900,
                        tag: str = 'example.com/win/app:v1',
                        foreign_member: Union[bool, bytes] = False
                        ) -> ForeignImage:
    """Writes what join_layers.py writes for a base with a foreign layer.

    FOREIGN_MEMBER True puts the layer's tar in place of the empty
    placeholder, as `docker save` does; bytes put those bytes there.
    """
    foreign = images.layer_from_tar(images.make_layer(seed, 6000))
    own = images.layer_from_tar(images.make_layer(seed + 1, 3000))
    config = json.dumps({
        'architecture': 'amd64', 'os': 'windows',
        'os.version': '10.0.17763.1234',
        'rootfs': {'type': 'layers',
                   'diff_ids': [foreign.diff_id, own.diff_id]},
    }, sort_keys=True).encode()
    source = descriptor(foreign, urls)
    ids = [hashlib.sha256(b'v1-%d' % i).hexdigest() for i in range(2)]
    member = b''
    if foreign_member is True:
        member = foreign.tar
    elif foreign_member:
        member = foreign_member
    with tarfile.open(path, 'w') as tar:
        _add(tar, sha256(config).split(':')[1] + '.json', config)
        for i, (v1_id, data) in enumerate(zip(ids, [member, own.tar])):
            _add(tar, v1_id + '/layer.tar', data)
            _add(tar, v1_id + '/VERSION', b'1.0')
            parent = {'parent': ids[i - 1]} if i else {}
            _add(tar, v1_id + '/json',
                 json.dumps(dict(id=v1_id, **parent)).encode())
        repo, tag_name = tag.rsplit(':', 1)
        _add(tar, 'repositories',
             json.dumps({repo: {tag_name: ids[-1]}}).encode())
        _add(tar, 'manifest.json', json.dumps([{
            'Config': sha256(config).split(':')[1] + '.json',
            'Layers': [v1_id + '/layer.tar' for v1_id in ids],
            'LayerSources': {foreign.diff_id: source},
            'RepoTags': [tag],
        }], sort_keys=True).encode())
    return ForeignImage(path=path, config=config, foreign=foreign,
                        descriptor=source, own=own)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: Dict[str, bytes] = {}
    seen: List[dict] = []

    def do_GET(self):  # pylint: disable=invalid-name
        self.seen.append({'path': self.path, 'headers': dict(self.headers)})
        body = self.routes.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *unused):
        pass


@dataclasses.dataclass
class Server:
    base: str
    seen: List[dict]

    def url(self, path: str) -> str:
        return self.base + path


@contextlib.contextmanager
def serve(routes: Dict[str, bytes]) -> Iterator[Server]:
    """A plain HTTP server on 127.0.0.1 serving ROUTES (path -> bytes).

    `seen` records each request's path and headers.
    """
    handler = type('Handler', (_Handler,), {'routes': dict(routes),
                                            'seen': []})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server('http://127.0.0.1:%d' % server.server_address[1],
                     handler.seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)

