"""Deterministic test images, pushed to a real registry with skopeo.

Layers are seeded tars (fixed mtimes, owners and modes) gzipped with a fixed
header, so the same arguments always give the same digests. Images are
written in skopeo's `dir:` format and copied with `skopeo copy --all
--preserve-digests`, keeping the manifest bytes as written (Docker schema 2,
OCI, Docker manifest list or OCI index). The returned
objects hold what the registry serves: manifest bytes and digests are read
back over HTTP after the push.
"""
import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Sequence

DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json'
DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip'
OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip'
OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
IN_TOTO = 'application/vnd.in-toto+json'
ALL_MANIFESTS = ','.join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

LAYER_MTIME = 1577836800  # 2020-01-01T00:00:00Z
CREATED = '2020-01-01T00:00:00Z'
_WORDS = ('alpha bravo charlie delta echo foxtrot golf hotel india juliet '
          'kilo lima mike november oscar papa quebec romeo sierra tango').split()


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def _payload(seed: int, size: int, kind: str) -> bytes:
    rng = random.Random(seed)
    if kind == 'random':
        return rng.randbytes(size)
    if kind == 'text':
        out = io.StringIO()
        while out.tell() < size:
            out.write(' '.join(rng.choice(_WORDS) for _ in range(8)) + '\n')
        return out.getvalue().encode()[:size]
    raise ValueError('unknown layer kind %r' % kind)


def make_layer(seed: int, size: int = 2048, kind: str = 'random',
               files: Optional[Dict[str, bytes]] = None) -> bytes:
    """An uncompressed tar, identical for identical arguments.

    Holds `layer-<seed>/data.bin` (SIZE bytes of seeded random data or
    text) unless FILES (path -> content) is given, plus their parent dirs.
    """
    if files is None:
        files = {'layer-%d/data.%s' % (seed, 'bin' if kind == 'random' else 'txt'):
                 _payload(seed, size, kind)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as tar:
        dirs = set()
        for path in sorted(files):
            parts = path.strip('/').split('/')[:-1]
            for i in range(1, len(parts) + 1):
                d = '/'.join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d + '/')
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = LAYER_MTIME
                    tar.addfile(info)
            info = tarfile.TarInfo(path.strip('/'))
            info.size = len(files[path])
            info.mode = 0o644
            info.mtime = LAYER_MTIME
            tar.addfile(info, io.BytesIO(files[path]))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: mtime 0, no file name."""
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclasses.dataclass
class Layer:
    tar: bytes
    blob: bytes
    digest: str
    diff_id: str
    media_type: str

    @property
    def hex(self) -> str:
        return self.digest.split(':', 1)[1]


def layer_from_tar(tar: bytes, fmt: str = 'docker', compressed: bool = True) -> Layer:
    """A layer blob; uncompressed (the tar itself) only exists in OCI."""
    if not compressed:
        if fmt != 'oci':
            raise ValueError('uncompressed layers need fmt="oci"')
        return Layer(tar=tar, blob=tar, digest=sha256(tar), diff_id=sha256(tar),
                     media_type=OCI_LAYER_TAR)
    blob = gzip_bytes(tar)
    return Layer(tar=tar, blob=blob, digest=sha256(blob), diff_id=sha256(tar),
                 media_type=DOCKER_LAYER if fmt == 'docker' else OCI_LAYER)


def _dumps(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=3).encode()


@dataclasses.dataclass
class Built:
    """An image manifest with its blobs, not yet pushed."""
    manifest: bytes
    media_type: str
    config: bytes
    layers: List[Layer]
    platform: Optional[dict] = None
    extra_blobs: Dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def blobs(self) -> Dict[str, bytes]:
        out = {sha256(self.config): self.config}
        out.update({l.digest: l.blob for l in self.layers})
        out.update(self.extra_blobs)
        return out


def build_image(layers: Sequence[bytes] = (), fmt: str = 'docker',
                platform: Optional[dict] = None,
                config_extra: Optional[dict] = None,
                compressed: bool = True) -> Built:
    """Builds a manifest + config over LAYERS (uncompressed tars, base first).

    With COMPRESSED false (OCI only) the layer blobs are the plain tars.
    """
    platform = dict(platform or {'os': 'linux', 'architecture': 'amd64'})
    lays = [layer_from_tar(t, fmt, compressed) for t in layers]
    config = {
        'architecture': platform.get('architecture', 'amd64'),
        'os': platform.get('os', 'linux'),
        'created': CREATED,
        'config': {'Env': ['PATH=/usr/bin:/bin'], 'Cmd': ['/bin/true']},
        'rootfs': {'type': 'layers', 'diff_ids': [l.diff_id for l in lays]},
        'history': [{'created': CREATED, 'created_by': 'layer %d' % i}
                    for i in range(len(lays))],
    }
    for key in ('variant', 'os.version', 'os.features'):
        if key in platform:
            config[key] = platform[key]
    config.update(config_extra or {})
    config_bytes = _dumps(config)
    manifest = {
        'schemaVersion': 2,
        'mediaType': DOCKER_MANIFEST if fmt == 'docker' else OCI_MANIFEST,
        'config': {'mediaType': DOCKER_CONFIG if fmt == 'docker' else OCI_CONFIG,
                   'size': len(config_bytes), 'digest': sha256(config_bytes)},
        'layers': [{'mediaType': l.media_type, 'size': len(l.blob),
                    'digest': l.digest} for l in lays],
    }
    return Built(manifest=_dumps(manifest), media_type=manifest['mediaType'],
                 config=config_bytes, layers=lays, platform=platform)


def build_attestation(subject: Built, seed: int) -> Built:
    """A buildx-style provenance manifest (always OCI) for SUBJECT."""
    statement = _dumps({'_type': 'https://in-toto.io/Statement/v0.1',
                        'predicateType': 'https://slsa.dev/provenance/v0.2',
                        'subject': [{'name': 'seed-%d' % seed,
                                     'digest': {'sha256': subject.digest.split(':')[1]}}],
                        'predicate': {'seed': seed}})
    config = _dumps({'architecture': 'unknown', 'os': 'unknown', 'config': {},
                     'rootfs': {'type': 'layers', 'diff_ids': [sha256(statement)]}})
    manifest = {
        'schemaVersion': 2,
        'mediaType': OCI_MANIFEST,
        'config': {'mediaType': OCI_CONFIG, 'size': len(config),
                   'digest': sha256(config)},
        'layers': [{'mediaType': IN_TOTO, 'size': len(statement),
                    'digest': sha256(statement),
                    'annotations': {'in-toto.io/predicate-type':
                                    'https://slsa.dev/provenance/v0.2'}}],
    }
    return Built(manifest=_dumps(manifest), media_type=OCI_MANIFEST,
                 config=config, layers=[],
                 platform={'os': 'unknown', 'architecture': 'unknown'},
                 extra_blobs={sha256(statement): statement})


def _platform_json(platform: dict) -> dict:
    order = ('architecture', 'os', 'os.version', 'os.features', 'variant', 'features')
    return {k: platform[k] for k in order if k in platform}


def build_list(children: Sequence[Built], fmt: str,
               attestations: Sequence[Built] = ()) -> bytes:
    """A Docker manifest list or OCI index over CHILDREN (+ attestations)."""
    entries = [{'mediaType': c.media_type, 'size': len(c.manifest),
                'digest': c.digest, 'platform': _platform_json(c.platform)}
               for c in children]
    for att, subject in zip(attestations, children):
        entries.append({'mediaType': att.media_type, 'size': len(att.manifest),
                        'digest': att.digest,
                        'annotations': {
                            'vnd.docker.reference.digest': subject.digest,
                            'vnd.docker.reference.type': 'attestation-manifest'},
                        'platform': {'architecture': 'unknown', 'os': 'unknown'}})
    return _dumps({'schemaVersion': 2,
                   'mediaType': DOCKER_LIST if fmt == 'docker' else OCI_INDEX,
                   'manifests': entries})


def write_dir(directory: str, top: bytes, images: Sequence[Built]) -> str:
    """Writes a skopeo `dir:` image: TOP as manifest.json, children by digest.

    Unlike an OCI layout, this keeps Docker manifests and lists byte for byte.
    """
    os.makedirs(directory, exist_ok=True)

    def put(name: str, data: bytes) -> None:
        with open(os.path.join(directory, name), 'wb') as f:
            f.write(data)

    for img in images:
        if img.manifest != top:
            put(img.digest.split(':')[1] + '.manifest.json', img.manifest)
        for digest, data in img.blobs().items():
            put(digest.split(':')[1], data)
    put('manifest.json', top)
    put('version', b'Directory Transport Version: 1.1\n')
    return directory


class Client:
    """Minimal registry HTTP client for reading back what was pushed."""

    def __init__(self, registry):
        self.registry = registry
        self._token: Dict[str, str] = {}

    def _auth(self, challenge: str, scope: str) -> Optional[str]:
        scheme, _, params = challenge.partition(' ')
        if scheme.lower() == 'basic':
            return self.registry.basic_auth_header()
        fields = dict(p.split('=', 1) for p in
                      (x.strip() for x in params.split(',')) if '=' in p)
        fields = {k: v.strip('"') for k, v in fields.items()}
        query = urllib.parse.urlencode({'scope': scope,
                                        'service': fields.get('service', '')})
        req = urllib.request.Request(fields['realm'] + '?' + query)
        if self.registry.username:
            req.add_header('Authorization', self.registry.basic_auth_header())
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.load(resp)
        return 'Bearer ' + (body.get('token') or body['access_token'])

    def request(self, method: str, repo: str, path: str, body: bytes = None,
                headers: Optional[dict] = None):
        """Returns (status, headers, body) for /v2/REPO/PATH."""
        url = '%s/v2/%s/%s' % (self.registry.url, repo, path)
        scope = 'repository:%s:pull,push' % repo
        for attempt in range(2):
            req = urllib.request.Request(url, data=body, method=method,
                                         headers=dict(headers or {}))
            if scope in self._token:
                req.add_header('Authorization', self._token[scope])
            try:
                with urllib.request.urlopen(req, timeout=20,
                                            context=self.registry.ssl_context()) as r:
                    return r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 0 and e.headers.get('WWW-Authenticate'):
                    self._token[scope] = self._auth(e.headers['WWW-Authenticate'], scope)
                    continue
                return e.code, e.headers, e.read()
        raise AssertionError('unreachable')

    def manifest(self, repo: str, ref: str, accept: str = ALL_MANIFESTS):
        status, headers, body = self.request('GET', repo, 'manifests/' + ref,
                                             headers={'Accept': accept})
        if status != 200:
            raise RuntimeError('GET manifest %s:%s -> %d %r' % (repo, ref, status, body))
        return body, headers.get('Content-Type')

    def blob(self, repo: str, digest: str) -> bytes:
        status, _, body = self.request('GET', repo, 'blobs/' + digest)
        if status != 200:
            raise RuntimeError('GET blob %s@%s -> %d' % (repo, digest, status))
        return body


@dataclasses.dataclass
class PushedImage:
    registry: object
    repo: str
    tag: Optional[str]
    digest: str
    manifest: bytes
    media_type: str
    config: bytes
    config_digest: str
    layers: List[Layer]
    platform: Optional[dict] = None

    @property
    def name(self) -> str:
        """`host/repo:tag` (or `@digest` when pushed without a tag)."""
        return self.by_tag if self.tag else self.by_digest

    @property
    def by_tag(self) -> str:
        return '%s/%s:%s' % (self.registry.host, self.repo, self.tag)

    @property
    def by_digest(self) -> str:
        return '%s/%s@%s' % (self.registry.host, self.repo, self.digest)


@dataclasses.dataclass
class PushedIndex:
    registry: object
    repo: str
    tag: str
    digest: str
    manifest: bytes
    media_type: str
    children: List[PushedImage]
    attestations: List[str]

    @property
    def name(self) -> str:
        return self.by_tag

    @property
    def by_tag(self) -> str:
        return '%s/%s:%s' % (self.registry.host, self.repo, self.tag)

    @property
    def by_digest(self) -> str:
        return '%s/%s@%s' % (self.registry.host, self.repo, self.digest)

    def child(self, **platform) -> PushedImage:
        """The child whose platform equals PLATFORM (keys with `_` for `.`)."""
        want = {k.replace('_', '.'): v for k, v in platform.items()}
        found = [c for c in self.children if c.platform == want]
        if len(found) != 1:
            raise KeyError('%d children with platform %r' % (len(found), want))
        return found[0]


def skopeo_env() -> dict:
    """skopeo's environment, without the machine's own auth files."""
    env = dict(os.environ)
    home = tempfile.mkdtemp(prefix='cr-skopeo-home-')
    env['HOME'] = home
    env.pop('XDG_RUNTIME_DIR', None)
    env.pop('REGISTRY_AUTH_FILE', None)
    env.pop('DOCKER_CONFIG', None)
    return env


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = skopeo_env()
    try:
        proc = subprocess.run(['skopeo', '--insecure-policy'] + list(args),
                              capture_output=True, env=env, timeout=120)
    finally:
        shutil.rmtree(env['HOME'], ignore_errors=True)
    if check and proc.returncode != 0:
        raise RuntimeError('skopeo %s failed: %s' % (' '.join(args),
                                                    proc.stderr.decode(errors='replace')))
    return proc


def cred_args(registry, flag: str) -> List[str]:
    """`--FLAG-creds user:pass` or `--FLAG-no-creds` for REGISTRY."""
    if registry.username:
        return ['--%s' % '-'.join(filter(None, [flag, 'creds'])),
                '%s:%s' % (registry.username, registry.password)]
    return []


def _docker_ref(registry, repo: str, ref: str) -> str:
    sep = '@' if ref.startswith('sha256:') else ':'
    return 'docker://%s/%s%s%s' % (registry.push_host, repo, sep, ref)


def _copy_dir(registry, directory: str, repo: str, tag: str) -> None:
    certs = (['--dest-cert-dir', registry.client_cert_dir]
             if getattr(registry, 'mtls', False) else [])
    skopeo('copy', '--all', '--preserve-digests', '--dest-tls-verify=false',
           *cred_args(registry, 'dest'), *certs, 'dir:' + directory,
           _docker_ref(registry, repo, tag))


def _read_back(registry, repo: str, built: Built, tag: Optional[str]) -> PushedImage:
    client = Client(registry)
    body, ctype = client.manifest(repo, built.digest)
    if body != built.manifest:
        raise RuntimeError('registry serves other manifest bytes for %s' % built.digest)
    if tag is not None:
        tbody, _ = client.manifest(repo, tag)
        if tbody != body:
            raise RuntimeError('tag %s does not point at the pushed manifest' % tag)
    manifest = json.loads(body)
    config = client.blob(repo, manifest['config']['digest'])
    return PushedImage(registry=registry, repo=repo, tag=tag, digest=sha256(body),
                       manifest=body, media_type=ctype, config=config,
                       config_digest=sha256(config), layers=built.layers,
                       platform=built.platform)


def _split(ref: str):
    repo, _, tag = ref.rpartition(':')
    if not repo:
        raise ValueError('want repo:tag, got %r' % ref)
    return repo, tag


def push_built(registry, ref: str, built: Built) -> PushedImage:
    """Pushes a built image as `repo:tag` and reads it back."""
    repo, tag = _split(ref)
    with tempfile.TemporaryDirectory(prefix='cr-push-') as d:
        _copy_dir(registry, write_dir(d, built.manifest, [built]), repo, tag)
    return _read_back(registry, repo, built, tag)


def push_image(registry, ref: str, layers: Sequence[bytes] = (), fmt: str = 'docker',
               platform: Optional[dict] = None,
               config_extra: Optional[dict] = None) -> PushedImage:
    """Pushes an image of LAYERS (uncompressed tars, base first) as REF=`repo:tag`.

    FMT 'docker' gives a Docker schema 2 manifest, 'oci' an OCI manifest.
    """
    return push_built(registry, ref, build_image(layers, fmt, platform, config_extra))


def default_platforms() -> List[dict]:
    """One of each platform kind a resolver has to tell apart."""
    return [
        {'os': 'linux', 'architecture': 'amd64'},
        {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'},
        {'os': 'linux', 'architecture': 'arm', 'variant': 'v7'},
        {'os': 'linux', 'architecture': 'arm', 'variant': 'v6'},
        {'os': 'linux', 'architecture': 'ppc64le'},
        {'os': 'windows', 'architecture': 'amd64', 'os.version': '10.0.17763.1234'},
        {'os': 'windows', 'architecture': 'amd64', 'os.version': '10.0.20348.2',
         'os.features': ['win32k']},
        {'os': 'linux', 'architecture': '386', 'features': ['sse4']},
    ]


def push_index(registry, ref: str, platforms: Optional[Sequence[dict]] = None,
               fmt: str = 'docker', attestation: bool = False, seed: int = 0,
               layers_per_child: int = 1) -> PushedIndex:
    """Pushes a Docker manifest list (FMT 'docker') or OCI index ('oci').

    Each platform gets its own image with seeded layers; with ATTESTATION
    every child also gets a buildx-style `unknown/unknown` attestation entry.
    """
    repo, tag = _split(ref)
    platforms = list(platforms if platforms is not None else default_platforms())
    children = []
    for i, plat in enumerate(platforms):
        tars = [make_layer(seed * 1000 + i * 10 + j, 512 + 64 * i)
                for j in range(layers_per_child)]
        children.append(build_image(tars, fmt, plat))
    atts = [build_attestation(c, seed * 1000 + i)
            for i, c in enumerate(children)] if attestation else []
    top = build_list(children, fmt, atts)
    with tempfile.TemporaryDirectory(prefix='cr-push-') as d:
        _copy_dir(registry, write_dir(d, top, children + atts), repo, tag)
    client = Client(registry)
    body, ctype = client.manifest(repo, tag)
    if body != top:
        raise RuntimeError('registry serves other list bytes than pushed')
    pushed = [_read_back(registry, repo, c, None) for c in children]
    return PushedIndex(registry=registry, repo=repo, tag=tag, digest=sha256(body),
                       manifest=body, media_type=ctype, children=pushed,
                       attestations=[a.digest for a in atts])


def push_list_bytes(registry, ref: str, top: bytes, children: Sequence[Built]) -> str:
    """Pushes list/index bytes TOP (as written) with CHILDREN; returns its digest."""
    repo, tag = _split(ref)
    with tempfile.TemporaryDirectory(prefix='cr-push-') as d:
        _copy_dir(registry, write_dir(d, top, children), repo, tag)
    body, _ = Client(registry).manifest(repo, tag)
    if body != top:
        raise RuntimeError('registry serves other list bytes than pushed')
    return sha256(body)


def read_back(registry, repo: str, built: Built) -> PushedImage:
    """The PushedImage of BUILT, already pushed to REPO (no tag)."""
    return _read_back(registry, repo, built, None)


def put_manifest(registry, repo: str, ref: str, body: bytes, media_type: str) -> str:
    """PUTs a manifest as is; returns the digest the registry reports."""
    status, headers, resp = Client(registry).request(
        'PUT', repo, 'manifests/' + ref, body=body,
        headers={'Content-Type': media_type})
    if status not in (200, 201, 202):
        raise RuntimeError('PUT manifest -> %d %r' % (status, resp))
    return headers.get('Docker-Content-Digest')


def skopeo_dir(registry, name: str, directory: str,
               platform: Optional[dict] = None) -> Dict[str, bytes]:
    """`skopeo copy docker://NAME dir:DIRECTORY`; returns {digest: bytes} of blobs.

    For a list skopeo picks the child for PLATFORM (keys os, architecture,
    variant), linux/amd64 by default.
    """
    platform = platform or {'os': 'linux', 'architecture': 'amd64'}
    overrides = ['--override-os', platform['os'],
                 '--override-arch', platform['architecture']]
    if platform.get('variant'):
        overrides += ['--override-variant', platform['variant']]
    skopeo(*overrides, 'copy', '--src-tls-verify=false', *cred_args(registry, 'src'),
           'docker://' + name, 'dir:' + directory)
    out = {}
    for entry in os.listdir(directory):
        if len(entry) == 64 and all(c in '0123456789abcdef' for c in entry):
            with open(os.path.join(directory, entry), 'rb') as f:
                out['sha256:' + entry] = f.read()
    return out


def skopeo_inspect_raw(registry, name: str, config: bool = False) -> bytes:
    args = ['inspect', '--raw', '--tls-verify=false', *cred_args(registry, '')]
    if config:
        args.insert(1, '--config')
    return skopeo(*args, 'docker://' + name).stdout
