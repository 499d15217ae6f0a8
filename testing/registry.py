"""Real registries for tests: the distribution `docker-registry` binary.

Each registry runs on 127.0.0.1 with a throwaway storage directory, so tests
exercise the protocol exactly as a client meets it in the wild. Variants:

- anonymous (`auth=None`): anyone may push and pull.
- `auth='basic'`: htpasswd (bcrypt) with `.username`/`.password`.
- `auth='token'`: a token server in this process issues RS256 JWTs whose
  `x5c` header chains to the registry's `rootcertbundle`. The right user
  gets every action asked for; anonymous callers get `pull` only on
  repositories under `public/` (PUBLIC_PREFIX) and nothing elsewhere; wrong
  credentials get 401.
- `tls=True`: self-signed CA and a server certificate for 127.0.0.1,
  localhost and PROXIED_NAME; `.ca_path` is the CA bundle and `.tls_host` the `127.0.0.1:PORT`
  name (clients pick https for it, while `localhost:PORT` means plain http).
- `mtls=True` (with `tls=True`): the registry also requires a client
  certificate signed by its own client CA (`http.tls.clientcas`); one such
  certificate is `.client_cert_path` with its key `.client_key_path`, both
  in `.client_cert_dir`.
"""
import atexit
import base64
import ctypes
import datetime
import http.server
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Dict, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGISTRY_BIN = '/usr/bin/docker-registry'
PUBLIC_PREFIX = 'public/'
TOKEN_SERVICE = 'test-registry'
TOKEN_ISSUER = 'test-token-issuer'

_RUNNING: List['Registry'] = []
_ACCESS_RE = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(subject: str, key, issuer_name: Optional[x509.Name] = None,
          issuer_key=None, ca: bool = False,
          sans: Optional[List[x509.GeneralName]] = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer_name or name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False,
                          decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans),
                                        critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


class TokenServer:
    """Issues registry bearer tokens the way a Docker token service does."""

    def __init__(self, workdir: str, username: str, password: str):
        self.username = username
        self.password = password
        self.requests: List[dict] = []
        ca_key = _new_key()
        self._ca = _cert('test token CA', ca_key, ca=True)
        self._key = _new_key()
        leaf = _cert('test token signer', self._key,
                     issuer_name=self._ca.subject, issuer_key=ca_key)
        self._x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER))
                     .decode() for c in (leaf, self._ca)]
        self.rootcert_path = os.path.join(workdir, 'token-root.pem')
        with open(self.rootcert_path, 'wb') as f:
            f.write(_pem(self._ca))
        self._httpd = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.realm = 'http://127.0.0.1:%d/token' % self.port
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _grant(self, user: Optional[str], scopes: List[str]) -> List[dict]:
        access = []
        for scope in scopes:
            parts = scope.split(':')
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ':'.join(parts[1:-1]), parts[-1]
            wanted = [a for a in actions.split(',') if a]
            if user == self.username:
                granted = wanted
            elif kind == 'repository' and name.startswith(PUBLIC_PREFIX):
                granted = [a for a in wanted if a == 'pull']
            else:
                granted = []
            access.append({'type': kind, 'name': name, 'actions': granted})
        return access

    def token(self, user: Optional[str], scopes: List[str]) -> str:
        now = int(time.time())
        header = {'typ': 'JWT', 'alg': 'RS256', 'x5c': self._x5c}
        claims = {'iss': TOKEN_ISSUER, 'sub': user or '', 'aud': TOKEN_SERVICE,
                  'exp': now + 600, 'nbf': now - 60, 'iat': now - 60,
                  'jti': uuid.uuid4().hex, 'access': self._grant(user, scopes)}
        signing_input = (_b64url(json.dumps(header).encode()) + '.' +
                         _b64url(json.dumps(claims).encode()))
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(),
                             hashes.SHA256())
        return signing_input + '.' + _b64url(sig)

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                auth = self.headers.get('Authorization')
                server.requests.append({'path': self.path,
                                        'headers': dict(self.headers.items())})
                user = None
                if auth:
                    scheme, _, value = auth.partition(' ')
                    if scheme.lower() != 'basic' or not value:
                        return self._deny()
                    try:
                        u, _, p = base64.b64decode(value).decode().partition(':')
                    except (ValueError, UnicodeDecodeError):
                        return self._deny()
                    if (u, p) != (server.username, server.password):
                        return self._deny()
                    user = u
                scopes = []
                for s in query.get('scope', []):
                    scopes.extend(s.split(' '))
                tok = server.token(user, scopes)
                body = json.dumps({'token': tok, 'access_token': tok,
                                   'expires_in': 600}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _deny(self):
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                self.send_response(401)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


# A name the TLS certificate also holds, for clients reaching the registry
# through a test proxy (testing/forward_proxy.py maps it to 127.0.0.1).
PROXIED_NAME = 'registry.test'

class Registry:
    """A running `docker-registry serve` process and how to reach it."""

    def __init__(self, auth: Optional[str], tls: bool,
                 extra_config: Optional[dict] = None, parent: Optional[str] = None,
                 mtls: bool = False):
        self.auth = auth
        self.tls = tls or mtls
        self.mtls = mtls
        self.client_cert_path: Optional[str] = None
        self.client_key_path: Optional[str] = None
        self.extra_config = dict(extra_config or {})
        self.parent = parent
        self.workdir = ''
        self.username: Optional[str] = None
        self.password: Optional[str] = None
        self.ca_path: Optional[str] = None
        self.token_server: Optional[TokenServer] = None
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0

    @property
    def host(self) -> str:
        """The name image references use: clients speak plain http to it."""
        return 'localhost:%d' % self.port

    @property
    def addr(self) -> str:
        return '127.0.0.1:%d' % self.port

    @property
    def tls_host(self) -> str:
        """The https name of a TLS registry (certificate covers 127.0.0.1)."""
        return '127.0.0.1:%d' % self.port

    @property
    def push_host(self) -> str:
        """The host name skopeo pushes to."""
        return self.tls_host if self.tls else self.host

    @property
    def url(self) -> str:
        return '%s://%s' % ('https' if self.tls else 'http', self.addr)

    @property
    def creds(self) -> Optional[Tuple[str, str]]:
        if self.username is None:
            return None
        return (self.username, self.password)

    def basic_auth_header(self) -> str:
        raw = '%s:%s' % (self.username, self.password)
        return 'Basic ' + base64.b64encode(raw.encode()).decode()

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_path)
        if self.mtls:
            context.load_cert_chain(self.client_cert_path, self.client_key_path)
        return context

    def _write_config(self) -> None:
        lines = [
            'version: 0.1',
            'log:',
            '  level: info',
            '  formatter: text',
            '  accesslog:',
            '    disabled: false',
            'storage:',
            '  filesystem:',
            '    rootdirectory: %s' % self.storage,
            '  delete:',
            '    enabled: true',
            '  maintenance:',
            '    uploadpurging:',
            '      enabled: false',
            'http:',
            '  addr: 127.0.0.1:%d' % self.port,
            '  secret: %s' % uuid.uuid4().hex,
        ]
        if self.tls:
            lines += ['  tls:',
                      '    certificate: %s' % os.path.join(self.workdir, 'server.pem'),
                      '    key: %s' % os.path.join(self.workdir, 'server.key')]
        if self.mtls:
            lines += ['    clientcas:',
                      '      - %s' % os.path.join(self.workdir, 'client-ca.pem')]
        if self.auth == 'basic':
            lines += ['auth:', '  htpasswd:', '    realm: basic-realm',
                      '    path: %s' % os.path.join(self.workdir, 'htpasswd')]
        elif self.auth == 'token':
            ts = self.token_server
            lines += ['auth:', '  token:',
                      '    realm: %s' % ts.realm,
                      '    service: %s' % TOKEN_SERVICE,
                      '    issuer: %s' % TOKEN_ISSUER,
                      '    rootcertbundle: %s' % ts.rootcert_path]
        # Extra top-level sections, as JSON (which YAML reads as flow style).
        lines += ['%s: %s' % (key, json.dumps(value))
                  for key, value in self.extra_config.items()]
        with open(self.config_path, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def _setup_auth_and_tls(self) -> None:
        if self.auth is not None:
            self.username = 'tester'
            self.password = 'pw-' + uuid.uuid4().hex[:16]
        if self.auth == 'basic':
            out = subprocess.run(['htpasswd', '-Bbn', self.username,
                                  self.password], check=True,
                                 capture_output=True, text=True).stdout
            with open(os.path.join(self.workdir, 'htpasswd'), 'w') as f:
                f.write(out.strip() + '\n')
        elif self.auth == 'token':
            self.token_server = TokenServer(self.workdir, self.username,
                                            self.password)
        elif self.auth is not None:
            raise ValueError('unknown auth kind %r' % self.auth)
        if self.tls:
            ca_key = _new_key()
            ca = _cert('test registry CA', ca_key, ca=True)
            key = _new_key()
            server = _cert('localhost', key, issuer_name=ca.subject,
                           issuer_key=ca_key,
                           sans=[x509.DNSName('localhost'), x509.DNSName(PROXIED_NAME),
                                 x509.IPAddress(ipaddress.ip_address('127.0.0.1'))])
            self.ca_path = os.path.join(self.workdir, 'ca.pem')
            with open(self.ca_path, 'wb') as f:
                f.write(_pem(ca))
            with open(os.path.join(self.workdir, 'server.pem'), 'wb') as f:
                f.write(_pem(server) + _pem(ca))
            with open(os.path.join(self.workdir, 'server.key'), 'wb') as f:
                f.write(_key_pem(key))
        if self.mtls:
            self._make_client_certificate()

    @property
    def client_cert_dir(self) -> str:
        """The client certificate and key, as skopeo's --cert-dir reads them."""
        return os.path.join(self.workdir, 'client')

    def _make_client_certificate(self) -> None:
        """A client CA for `clientcas`, and one certificate it signed."""
        ca_key = _new_key()
        ca = _cert('test client CA', ca_key, ca=True)
        key = _new_key()
        client = _cert('test client', key, issuer_name=ca.subject,
                       issuer_key=ca_key)
        with open(os.path.join(self.workdir, 'client-ca.pem'), 'wb') as f:
            f.write(_pem(ca))
        os.makedirs(self.client_cert_dir)
        self.client_cert_path = os.path.join(self.client_cert_dir, 'client.cert')
        self.client_key_path = os.path.join(self.client_cert_dir, 'client.key')
        with open(self.client_cert_path, 'wb') as f:
            f.write(_pem(client))
        with open(self.client_key_path, 'wb') as f:
            f.write(_key_pem(key))

    def _answers(self) -> bool:
        req = urllib.request.Request(self.url + '/v2/')
        try:
            urllib.request.urlopen(req, timeout=2, context=self.ssl_context())
        except urllib.error.HTTPError as e:
            return e.code == 401
        except (OSError, ssl.SSLError):
            return False
        return True

    @property
    def storage(self) -> str:
        return os.path.join(self.workdir, 'storage')

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, 'registry.log')

    @property
    def config_path(self) -> str:
        return os.path.join(self.workdir, 'config.yml')

    def start(self) -> 'Registry':
        self.workdir = tempfile.mkdtemp(prefix='cr-registry-', dir=self.parent)
        self._setup_auth_and_tls()
        for _ in range(5):
            self.port = free_port()
            self._write_config()
            log = open(self.log_path, 'ab')
            self.proc = subprocess.Popen([REGISTRY_BIN, 'serve', self.config_path],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
            log.close()
            deadline = time.time() + 15
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._answers():
                    _RUNNING.append(self)
                    return self
                time.sleep(0.05)
            self._kill()
        log = self.log_text()[-3000:]
        self.stop()
        raise RuntimeError('docker-registry did not start:\n' + log)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        """Kills the registry and token server and removes their files."""
        self._kill()
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def requests(self) -> List[Tuple[str, str]]:
        """(method, path) of every request in the access log, oldest first.

        The registry writes an access-log line once a response is complete,
        so call this after the client has finished.
        """
        return [(m.group(1), m.group(2))
                for m in _ACCESS_RE.finditer(self.log_text())]

    def mark(self) -> int:
        """A position in the access log; see requests_since."""
        return len(self.requests())

    def requests_since(self, mark: int) -> List[Tuple[str, str]]:
        return self.requests()[mark:]

    def blob_gets(self, mark: int = 0) -> List[str]:
        """Paths of blob GETs since MARK."""
        return [p for m, p in self.requests_since(mark)
                if m == 'GET' and '/blobs/sha256:' in p]


def start_registry(auth: Optional[str] = None, tls: bool = False,
                   extra_config: Optional[dict] = None,
                   parent: Optional[str] = None, mtls: bool = False) -> Registry:
    """Starts a registry (see the module docstring); `.stop()` ends it.

    EXTRA_CONFIG adds top-level sections to its config.yml (e.g.
    `{'compatibility': {'schema1': {'enabled': True}}}`). PARENT is where its
    working directory and storage go (default: the temporary directory).
    """
    return Registry(auth, tls, extra_config, parent, mtls).start()


def stop_all() -> None:
    """Stops every registry this process started."""
    for reg in list(_RUNNING):
        reg.stop()


atexit.register(stop_all)


def docker_config(directory: str, auths: Optional[Dict[str, Tuple[str, str]]] = None,
                  cred_helpers: Optional[Dict[str, str]] = None) -> str:
    """Writes DIRECTORY/config.json the way `docker login` does; returns DIRECTORY."""
    os.makedirs(directory, exist_ok=True)
    cfg: dict = {}
    if auths:
        cfg['auths'] = {
            host: {'auth': base64.b64encode(('%s:%s' % up).encode()).decode()}
            for host, up in auths.items()}
    if cred_helpers:
        cfg['credHelpers'] = dict(cred_helpers)
    with open(os.path.join(directory, 'config.json'), 'w') as f:
        json.dump(cfg, f)
    return directory


def credential_helper(bindir: str, name: str, username: str, secret: str) -> str:
    """Writes an executable `docker-credential-NAME` into BINDIR.

    For `get` it answers USERNAME/SECRET as JSON and appends the server URL
    it was asked about to BINDIR/NAME.calls, so tests can see it ran.
    """
    os.makedirs(bindir, exist_ok=True)
    path = os.path.join(bindir, 'docker-credential-' + name)
    calls = os.path.join(bindir, name + '.calls')
    answer = json.dumps({'Username': username, 'Secret': secret})
    script = ('#!/bin/sh\n'
              'if [ "$1" != get ]; then echo "unsupported: $1" >&2; exit 1; fi\n'
              'url=$(cat)\n'
              'printf "%%s\\n" "$url" >> %s\n'
              'printf "%%s" %s\n' % (_sh_quote(calls), _sh_quote(answer)))
    with open(path, 'w') as f:
        f.write(script)
    os.chmod(path, 0o755)
    return path


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"
