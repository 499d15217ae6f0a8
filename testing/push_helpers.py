"""Helpers for the push-side tests: pusher, digester, appender and Push.

What the tools must produce is computed here independently of the library:
the manifest FromDisk synthesizes is `json.dumps(sort_keys=True)` of a fixed
shape (SPEC §4.3), and layers the library compresses itself use upstream's
fixed gzip header (SPEC §4.4). Tests compare the registry's bytes with these.
"""
import dataclasses
import http.client
import http.server
import json
import os
import re
import struct
import threading
import urllib.parse
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import registry as reg

DOCKER_FOREIGN = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'
OCI_NONDISTRIBUTABLE_GZIP = (
    'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip')
UNAUTHORIZED = ('401', 'UNAUTHORIZED', 'unauthorized', 'denied', 'DENIED')
UPSTREAM_GZIP_MTIME = 1225856967
_PUBLISHED_RE = re.compile(r'^(?P<name>\S+) was published with digest: '
                           r'(?P<digest>sha256:[0-9a-f]{64})$')


def manifest_json(obj) -> bytes:
    """Upstream's serialization of synthesized JSON (SPEC §4.3)."""
    return json.dumps(obj, sort_keys=True).encode()


def upstream_gzip(data: bytes) -> bytes:
    """gzip as the library writes it: level 9, fixed mtime, OS 255 (SPEC §4.4)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15, 8)
    body = comp.compress(data) + comp.flush()
    header = (b'\x1f\x8b\x08\x00' + struct.pack('<I', UPSTREAM_GZIP_MTIME)
              + b'\x02\xff')
    trailer = struct.pack('<II', zlib.crc32(data) & 0xffffffff,
                          len(data) & 0xffffffff)
    return header + body + trailer


def config_bytes(diff_ids: Sequence[str], extra: Optional[dict] = None) -> bytes:
    """A Docker image config over DIFF_IDS (indented, so never re-serialized)."""
    config = {
        'architecture': 'amd64',
        'os': 'linux',
        'created': images.CREATED,
        'config': {'Env': ['PATH=/usr/bin:/bin'], 'Cmd': ['/bin/true']},
        'rootfs': {'type': 'layers', 'diff_ids': list(diff_ids)},
        'history': [{'created': images.CREATED, 'created_by': 'layer %d' % i}
                    for i in range(len(diff_ids))],
    }
    config.update(extra or {})
    return json.dumps(config, indent=2).encode()


def descriptor(media_type: str, data: bytes) -> dict:
    return {'mediaType': media_type, 'size': len(data),
            'digest': images.sha256(data)}


def expected_manifest(config: bytes, layers: Sequence[images.Layer],
                      oci: bool = False,
                      base_layers: Sequence[dict] = ()) -> bytes:
    """The manifest the pusher/digester must synthesize, byte for byte.

    BASE_LAYERS are descriptors that go first (a legacy base's layers or a
    base manifest's foreign layers), as given.
    """
    if oci:
        own_type = images.OCI_LAYER
        base = []
        for desc in base_layers:
            desc = dict(desc)
            if desc['mediaType'] == DOCKER_FOREIGN:
                desc['mediaType'] = OCI_NONDISTRIBUTABLE_GZIP
            elif desc['mediaType'] == images.DOCKER_LAYER:
                desc['mediaType'] = images.OCI_LAYER
            base.append(desc)
        return manifest_json({
            'schemaVersion': 2,
            'mediaType': images.OCI_MANIFEST,
            'config': descriptor(images.OCI_CONFIG, config),
            'layers': base + [descriptor(own_type, l.blob) for l in layers],
        })
    return manifest_json({
        'schemaVersion': 2,
        'mediaType': images.DOCKER_MANIFEST,
        'config': descriptor(images.DOCKER_CONFIG, config),
        'layers': list(base_layers) + [descriptor(images.DOCKER_LAYER, l.blob)
                                       for l in layers],
    })


@dataclasses.dataclass
class DiskImage:
    """Files in the shape rules_docker hands the pusher: config + layer pairs."""
    directory: str
    config_path: str
    config: bytes
    layers: List[images.Layer]
    digest_paths: List[str]
    layer_paths: List[str]

    def layer_args(self, equals: bool = False) -> List[str]:
        """`--digest D --layer L` for each layer (all digests, then layers)."""
        out = []
        for flag, paths in (('--digest', self.digest_paths),
                            ('--layer', self.layer_paths)):
            for p in paths:
                out += ['%s=%s' % (flag, p)] if equals else [flag, p]
        return out

    def args(self, equals: bool = False) -> List[str]:
        """`--config C` plus layer_args (rules_docker's `=` form with EQUALS)."""
        head = (['--config=' + self.config_path] if equals
                else ['--config', self.config_path])
        return head + self.layer_args(equals)

    def manifest(self, oci: bool = False, base_layers: Sequence[dict] = ()) -> bytes:
        return expected_manifest(self.config, self.layers, oci, base_layers)

    def digest(self, oci: bool = False, base_layers: Sequence[dict] = ()) -> str:
        return images.sha256(self.manifest(oci, base_layers))

    def pushed(self, registry, repo: str, tag: Optional[str],
               oci: bool = False) -> images.PushedImage:
        """What a registry should hold after this image was pushed as REPO:TAG."""
        manifest = self.manifest(oci)
        return images.PushedImage(
            registry=registry, repo=repo, tag=tag, digest=images.sha256(manifest),
            manifest=manifest,
            media_type=images.OCI_MANIFEST if oci else images.DOCKER_MANIFEST,
            config=self.config, config_digest=images.sha256(self.config),
            layers=self.layers)


def write_layers(directory: str, tars: Sequence[bytes], start: int = 0
                 ) -> Tuple[List[images.Layer], List[str], List[str]]:
    """Writes NNN.tar.gz + NNN.sha256 (bare hex) for each tar; base first."""
    os.makedirs(directory, exist_ok=True)
    layers, digest_paths, layer_paths = [], [], []
    for i, tar in enumerate(tars, start):
        layer = images.layer_from_tar(tar)
        lpath = os.path.join(directory, '%03d.tar.gz' % i)
        dpath = os.path.join(directory, '%03d.sha256' % i)
        with open(lpath, 'wb') as f:
            f.write(layer.blob)
        with open(dpath, 'w') as f:
            f.write(layer.hex)
        layers.append(layer)
        digest_paths.append(dpath)
        layer_paths.append(lpath)
    return layers, digest_paths, layer_paths


def write_disk_image(directory: str, tars: Sequence[bytes],
                     config_extra: Optional[dict] = None,
                     base_diff_ids: Sequence[str] = (),
                     config: Optional[bytes] = None) -> DiskImage:
    """Writes config.json and the layer files of an image of TARS."""
    layers, digest_paths, layer_paths = write_layers(directory, tars)
    if config is None:
        config = config_bytes(list(base_diff_ids) + [l.diff_id for l in layers],
                              config_extra)
    config_path = os.path.join(directory, 'config.json')
    with open(config_path, 'wb') as f:
        f.write(config)
    return DiskImage(directory, config_path, config, layers, digest_paths,
                     layer_paths)


class ForeignLayerRegistry(reg.Registry):
    """A registry that accepts manifests naming foreign (URL) layers.

    distribution refuses any manifest with layer URLs unless its
    `validation.manifests.urls.allow` list is set.
    """

    def __init__(self):
        super().__init__(auth=None, tls=False)

    def _write_config(self) -> None:
        super()._write_config()
        with open(self.config_path, 'a') as f:
            f.write('validation:\n  manifests:\n    urls:\n      allow:\n'
                    "        - '^https?://'\n")


@pytest.fixture(scope='session')
def foreign_registry():
    """An anonymous registry that takes foreign layers with http(s) URLs."""
    r = ForeignLayerRegistry().start()
    yield r
    r.stop()


# Running the tools.

def published_digest(proc, name: str) -> str:
    """Checks a successful pusher/appender run; returns the printed digest."""
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines, (proc.stdout, proc.stderr)
    m = _PUBLISHED_RE.match(lines[-1])
    assert m, lines[-1]
    assert m.group('name') == name, (m.group('name'), name)
    assert proc.stdout.endswith('\n'), repr(proc.stdout)
    return m.group('digest')


def one_line_failure(proc, *needles, exit_code: int = 1) -> str:
    """A failure with one non-empty stderr line holding each needle.

    A needle may be a tuple of alternatives. WARNING lines (retries) may
    come before it.
    """
    assert proc.returncode == exit_code, (proc.returncode, proc.stdout, proc.stderr)
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = pars.error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        alternatives = needle if isinstance(needle, tuple) else (needle,)
        assert any(a in lines[0] for a in alternatives), (alternatives, lines[0])
    assert 'was published with digest' not in proc.stdout, proc.stdout
    return lines[0]


class ToolRunner:
    """Runs the push-side tools with the test's isolated environment."""

    def __init__(self, env: dict, tmp_path):
        self.env = env
        self.tmp_path = tmp_path
        self._count = 0

    def new_dir(self, prefix: str = 'd') -> str:
        self._count += 1
        path = str(self.tmp_path / ('%s%d' % (prefix, self._count)))
        os.makedirs(path)
        return path

    def pusher(self, name: str, *args: str, env: Optional[dict] = None,
               timeout: float = 180):
        return pars.run_tool('pusher', '--name', name, *args,
                             env=env or self.env, timeout=timeout)

    def push(self, name: str, *args: str, env: Optional[dict] = None) -> str:
        """Runs the pusher, expects success; returns the published digest."""
        return published_digest(self.pusher(name, *args, env=env), name)

    def digester(self, *args: str, output: Optional[str] = None,
                 env: Optional[dict] = None):
        """Runs the digester; `.digest_text` is the output file's text or None."""
        output = output or os.path.join(self.new_dir('digest'), 'out.digest')
        argv = list(args)
        if not any(a.startswith('--output-digest') for a in argv):
            argv = ['--output-digest', output] + argv
        proc = pars.run_tool('digester', *argv, env=env or self.env, timeout=120)
        proc.digest_text = None
        if os.path.exists(output):
            with open(output, 'rb') as f:
                proc.digest_text = f.read().decode()
        return proc

    def digest(self, *args: str) -> str:
        proc = self.digester(*args)
        assert proc.returncode == 0, proc.stderr
        assert 'Traceback' not in proc.stderr, proc.stderr
        assert re.fullmatch(r'sha256:[0-9a-f]{64}', proc.digest_text or ''), \
            repr(proc.digest_text)
        return proc.digest_text

    def appender(self, src: str, tarball: str, dst: str, *args: str,
                 env: Optional[dict] = None):
        return pars.run_tool('appender', '--src-image', src, '--tarball', tarball,
                             '--dst-image', dst, *args, env=env or self.env,
                             timeout=180)


@pytest.fixture
def tools(tool_env, tmp_path):
    """A ToolRunner for pusher/digester/appender runs."""
    return ToolRunner(tool_env, tmp_path)


# Reading the registry.

def tag_digest(registry, repo: str, ref: str) -> Optional[str]:
    """The registry's Docker-Content-Digest for REPO:REF, None if unknown."""
    status, headers, _ = images.Client(registry).request(
        'HEAD', repo, 'manifests/' + ref, headers={'Accept': images.ALL_MANIFESTS})
    if status == 404:
        return None
    assert status == 200, status
    return headers.get('Docker-Content-Digest')


def tags(registry, repo: str) -> List[str]:
    """Tags of REPO ([] when the repository does not exist)."""
    status, _, body = images.Client(registry).request('GET', repo, 'tags/list')
    if status == 404:
        return []
    assert status == 200, (status, body)
    return json.loads(body).get('tags') or []


def blob_exists(registry, repo: str, digest: str) -> bool:
    status, _, _ = images.Client(registry).request('HEAD', repo, 'blobs/' + digest)
    return status == 200


def repo_requests(registry, mark: int, repo: str) -> List[Tuple[str, str]]:
    """(method, path) of requests to /v2/REPO/ since MARK."""
    prefix = '/v2/%s/' % repo
    return [(m, p) for m, p in registry.requests_since(mark) if p.startswith(prefix)]


def uploads(requests: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """The blob-upload requests (POST/PATCH/PUT under blobs/uploads/)."""
    return [(m, p) for m, p in requests
            if m in ('POST', 'PATCH', 'PUT') and '/blobs/uploads/' in p]


def manifest_puts(requests: Sequence[Tuple[str, str]]) -> List[str]:
    return [p for m, p in requests if m == 'PUT' and '/manifests/' in p]


def uploaded_digests(requests: Sequence[Tuple[str, str]]) -> List[str]:
    """Digests whose upload was completed with a PUT `?digest=`."""
    out = []
    for m, p in requests:
        if m == 'PUT' and '/blobs/uploads/' in p:
            found = re.search(r'digest=(sha256(?::|%3A)[0-9a-f]{64})', p)
            if found:
                out.append(found.group(1).replace('%3A', ':'))
    return out


def mounts(requests: Sequence[Tuple[str, str]]) -> List[str]:
    """Digests of mount POSTs (`?mount=D&from=R`)."""
    out = []
    for m, p in requests:
        if m == 'POST' and 'mount=' in p:
            found = re.search(r'mount=(sha256(?::|%3A)[0-9a-f]{64})', p)
            if found:
                out.append(found.group(1).replace('%3A', ':'))
    return out


def pull_image(registry, repo: str, ref: str) -> Tuple[bytes, bytes, Dict[str, bytes]]:
    """(manifest, config, {layer digest: blob}) as the registry serves them."""
    client = images.Client(registry)
    manifest, _ = client.manifest(repo, ref)
    parsed = json.loads(manifest)
    config = client.blob(repo, parsed['config']['digest'])
    blobs = {l['digest']: client.blob(repo, l['digest']) for l in parsed['layers']
             if 'urls' not in l}
    return manifest, config, blobs


def save_tarball(registry, name: str, path: str, tag: str) -> str:
    """`skopeo copy docker://NAME docker-archive:PATH:TAG` (docker save format)."""
    images.skopeo('copy', '--src-tls-verify=false', *images.cred_args(registry, 'src'),
                  'docker://' + name, 'docker-archive:%s:%s' % (path, tag))
    return path


# A registry front that refuses monolithic uploads.

class NoMonolithicUpload:
    """A proxy in front of REGISTRY that refuses a PUT carrying blob data.

    Some registries only take blob data in PATCHes; this one answers such a
    PUT with 400 BLOB_UPLOAD_INVALID and forwards everything else unchanged.
    `requests` records (method, path, body length) of what reached it.
    """

    def __init__(self, registry, relative_location: bool = False,
                 min_chunk: int = 0):
        """RELATIVE_LOCATION: upload Locations lose their scheme and host.
        MIN_CHUNK: POSTs to uploads answer with that OCI-Chunk-Min-Length.
        """
        self.registry = registry
        self.relative_location = relative_location
        self.min_chunk = min_chunk
        self.requests: List[Tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return 'localhost:%d' % self.port

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if 'chunked' in (self.headers.get('Transfer-Encoding') or '').lower():
                    out = b''
                    while True:
                        size = int(self.rfile.readline().split(b';')[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get('Content-Length') or 0)
                return self.rfile.read(length) if length else b''

            def _reply(self, status: int, headers, body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ('content-length', 'transfer-encoding',
                                         'connection', 'keep-alive'):
                        self.send_header(k, v)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                if self.command != 'HEAD':
                    self.wfile.write(body)

            def _handle(self):
                body = self._body()
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, len(body)))
                if (self.command == 'PUT' and '/blobs/uploads/' in self.path
                        and body):
                    err = json.dumps({'errors': [{
                        'code': 'BLOB_UPLOAD_INVALID',
                        'message': 'blob data must come in PATCH requests'}]})
                    return self._reply(400, [('Content-Type', 'application/json')],
                                       err.encode())
                # Host is kept: the registry builds its Location URLs from
                # it, so later upload requests come back through the proxy.
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ('content-length', 'transfer-encoding',
                                                'connection')}
                conn = http.client.HTTPConnection('127.0.0.1', proxy.registry.port,
                                                  timeout=30)
                conn.request(self.command, self.path, body=body if body else None,
                             headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                reply = resp.getheaders()
                if proxy.relative_location:
                    reply = [(k, urllib.parse.urlsplit(v)._replace(
                        scheme='', netloc='').geturl())
                             if k.lower() == 'location' else (k, v)
                             for k, v in reply]
                if proxy.min_chunk and self.command == 'POST':
                    reply.append(('OCI-Chunk-Min-Length', str(proxy.min_chunk)))
                self._reply(resp.status, reply, data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler
