"""Credentials for talking to a registry, and Docker config.json resolution.

A Provider's `Get()` returns the value of the Authorization header ('' for
anonymous). `DefaultKeychain.Resolve(name)` picks a Provider the way the
Docker CLI does: per-registry `credHelpers`, then the global `credsStore`
(which shadows `auths` entirely), then inline `auths` entries, then
anonymous. Providers never show secrets in `repr()`/`str()`.
"""
import abc
import base64
import binascii
import json
import logging
import os
import signal
import subprocess
import threading
import time
from typing import Any, List, Optional, Tuple

_USERNAME = '_token'
_MAGIC_NOT_FOUND_MESSAGE = 'credentials not found in native keychain'
# Docker's convention for a helper or config entry holding an identity
# (OAuth2 refresh) token instead of a password.
_IDENTITY_TOKEN_USERNAME = '<token>'
_CONFIG_FILE = 'config.json'

# Key spellings tried, in order, for `credHelpers` and `auths`.
_FORMATS = [
    '%s',
    'https://%s',
    'http://%s',
    'https://%s/v1/',
    'http://%s/v1/',
    'https://%s/v2/',
    'http://%s/v2/',
]

# Docker Hub answers to several names; `docker login` files its credentials
# under this server URL, and helpers are asked for it.
_HUB_SERVER = 'https://index.docker.io/v1/'
_HUB_REGISTRIES = ('index.docker.io', 'docker.io', 'registry-1.docker.io')


def _keys(registry: str) -> List[str]:
    """The config keys that may hold REGISTRY's credentials, in order."""
    keys = [form % registry for form in _FORMATS]
    if registry in _HUB_REGISTRIES and _HUB_SERVER not in keys:
        keys.append(_HUB_SERVER)
    return keys


def _server_url(registry: str) -> str:
    """What a credential helper is asked about for REGISTRY."""
    return _HUB_SERVER if registry in _HUB_REGISTRIES else 'https://' + registry


class ConfigError(ValueError):
    """A Docker config (or the directory given for it) that cannot be used."""


class Provider(metaclass=abc.ABCMeta):
    """Interface for credentials used with a registry."""

    @abc.abstractmethod
    def Get(self) -> str:
        """Returns a value suitable for the Authorization header."""

    def __repr__(self) -> str:
        return '<%s>' % type(self).__name__


class Anonymous(Provider):
    """No credentials: the Authorization header is omitted."""

    def Get(self) -> str:
        return ''


class SchemeProvider(Provider):
    """A credential of the form '<scheme> <suffix>'."""

    def __init__(self, scheme: str):
        self._scheme = scheme

    @property
    @abc.abstractmethod
    def suffix(self) -> str:
        """The payload that follows the scheme."""

    def Get(self) -> str:
        return '%s %s' % (self._scheme, self.suffix)


class Basic(SchemeProvider):
    """Username/password credentials (HTTP Basic)."""

    def __init__(self, username: str, password: str):
        super().__init__('Basic')
        self._username = username
        self._password = password

    @property
    def username(self) -> str:
        return self._username

    @property
    def password(self) -> str:
        return self._password

    @property
    def suffix(self) -> str:
        raw = self.username.encode('utf8') + b':' + self.password.encode('utf8')
        return base64.b64encode(raw).decode('utf8')

    def __repr__(self) -> str:
        return '<%s username=%r>' % (type(self).__name__, self._username)


class OAuth2(Basic):
    """Basic credentials whose password is a fresh OAuth2 access token.

    `creds` is duck-typed (oauth2client credentials or anything with
    `get_access_token(http=...)` returning an object with `access_token`),
    so oauth2client is not needed to import this module.
    """

    def __init__(self, creds: Any, transport: Any):
        super().__init__(_USERNAME, 'does not matter')
        self._creds = creds
        self._transport = transport

    @property
    def password(self) -> str:
        # oauth2client only loads a stored credential on the first call and
        # refreshes on the second; an unexpired token is returned from cache.
        self._creds.get_access_token(http=self._transport)
        return self._creds.get_access_token(http=self._transport).access_token


class IdentityToken(Provider):
    """An `identitytoken` from config.json (e.g. written by `az acr login`).

    The token is an OAuth2 refresh token: the registry client exchanges it
    at the token realm with `grant_type=refresh_token`. It cannot be sent as
    an Authorization header itself, so `Get()` returns '' (anonymous) for
    clients that do not know about it.
    """

    def __init__(self, identity_token: str, username: str = ''):
        self._identity_token = identity_token
        self._username = username

    @property
    def identity_token(self) -> str:
        return self._identity_token

    @property
    def username(self) -> str:
        return self._username

    def Get(self) -> str:
        return ''

    def __repr__(self) -> str:
        return '<IdentityToken username=%r>' % self._username


class HelperError(Exception):
    """A docker-credential-* helper is missing, failed or returned garbage."""


HELPER_TIMEOUT_VARIABLE = 'CONTAINERREGISTRY_HELPER_TIMEOUT'
HELPER_TIMEOUT = 60.0
# How long a helper that has exited may leave its output open (a child it
# started holding it) before that child is killed.
_OUTPUT_GRACE = 1.0


def _helper_timeout() -> float:
    text = os.environ.get(HELPER_TIMEOUT_VARIABLE, '').strip()
    try:
        value = float(text) if text else HELPER_TIMEOUT
    except ValueError:
        value = float('nan')
    if not 0 < value < float('inf'):
        raise HelperError('%s must be a positive number of seconds, not %r'
                          % (HELPER_TIMEOUT_VARIABLE, text))
    return value


# When helpers must have answered (monotonic), whatever their timeout: the
# end of a tool's run (its --timeout).
_helpers_end: Optional[float] = None


def set_helper_deadline(seconds: Optional[float]) -> None:
    """Helpers started from now on are killed SECONDS from now at the
    latest (None: only their own timeout applies)."""
    global _helpers_end
    _helpers_end = None if seconds is None else time.monotonic() + seconds


def _kill_group(proc: subprocess.Popen) -> None:
    """Kills PROC and whatever it started (they share its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _drain(proc: subprocess.Popen) -> Optional[Tuple[bytes, bytes]]:
    """What PROC wrote, once its process group was killed; None when a
    process that left the group (`setsid`) still holds the output after
    _OUTPUT_GRACE: it is not waited for."""
    try:
        return proc.communicate(timeout=_OUTPUT_GRACE)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        try:
            proc.wait(_OUTPUT_GRACE)  # killed, or exited, by now
        except subprocess.TimeoutExpired:
            pass  # beyond our signals (setuid): left to the system
        return None


def _run_helper(bin_name: str, request: bytes) -> Tuple[int, bytes, bytes]:
    """Runs `BIN_NAME get` with REQUEST on stdin: (status, stdout, stderr).

    The helper runs in a process group of its own. If it has not finished
    within the helper timeout, the group is killed and HelperError names
    the helper; if it has exited but a child still holds its output open,
    the child is killed and what the helper wrote is used. A child that
    left the group is not waited for either.
    """
    start = time.monotonic()
    end = start + _helper_timeout()
    if _helpers_end is not None:
        end = min(end, _helpers_end)
    try:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [bin_name, 'get'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        raise HelperError('executable not found: ' + bin_name) from None
    exited_at = None
    pending: Optional[bytes] = request
    try:
        while True:
            try:
                # Input goes with the first call only.
                out, err = proc.communicate(pending, timeout=0.1)
                return proc.returncode, out, err
            except subprocess.TimeoutExpired:
                pending = None
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= _OUTPUT_GRACE:
                logging.warning('%s exited but left a process holding its '
                                'output; killing it', bin_name)
                _kill_group(proc)
                drained = _drain(proc)
                if drained is None:
                    raise HelperError(
                        '%s exited, but a process it started outside its '
                        'process group still holds its output' % bin_name)
                return (proc.returncode,) + drained
            if now >= end:
                _kill_group(proc)
                _drain(proc)
                raise HelperError(
                    '%s did not answer within %.0fs; it and the processes '
                    'it started were killed (%s or --timeout set the limit)'
                    % (bin_name, end - start, HELPER_TIMEOUT_VARIABLE))
    except BaseException:
        _kill_group(proc)
        raise


class Helper(Basic):
    """Credentials from `docker-credential-<name> get`.

    The helper runs at most once per instance (the first `Get()`); the
    result, including 'not found' (anonymous), is cached. Its stdout is
    parsed as JSON and its stderr is kept apart for error messages. It
    gets HELPER_TIMEOUT seconds ($CONTAINERREGISTRY_HELPER_TIMEOUT), then
    it and its children are killed.
    """

    def __init__(self, name: str, registry: Any):
        super().__init__('does not matter', 'does not matter')
        self._name = name
        # A docker_name object, or a plain registry host.
        self._registry = getattr(registry, 'registry', registry)
        self._lock = threading.Lock()
        self._header: str | None = None
        self._identity_token: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def identity_token(self) -> str | None:
        """The helper's secret when it reported the '<token>' username."""
        self.Get()
        return self._identity_token

    def Get(self) -> str:
        with self._lock:
            if self._header is None:
                self._header = self._fetch()
            return self._header

    def _fetch(self) -> str:
        bin_name = 'docker-credential-%s' % self._name
        logging.info('Invoking %r to obtain Docker credentials.', bin_name)
        # Some helpers require a scheme (rules_docker#111).
        returncode, out, err = _run_helper(
            bin_name, _server_url(self._registry).encode('utf-8'))

        stdout = out.decode('utf-8', 'replace').strip()
        stderr = err.decode('utf-8', 'replace').strip()
        if _MAGIC_NOT_FOUND_MESSAGE in (stdout, stderr):
            logging.info('Credentials not found, falling back to anonymous.')
            return Anonymous().Get()

        if returncode != 0:
            # Its output is not repeated: no filter can tell a message from
            # a secret (a helper may echo what it read or fetched).
            raise HelperError(
                'Error fetching credential for %s, exit status: %d (%s failed; '
                'its output is not shown, as it may hold credentials)'
                % (self._name, returncode, bin_name))

        try:
            blob = json.loads(stdout)
            username = blob['Username']
            secret = blob['Secret']
            if not isinstance(username, str) or not isinstance(secret, str):
                raise TypeError('not strings')
        except (ValueError, KeyError, TypeError):
            # The output may hold secrets, so it is not quoted.
            raise HelperError(
                'Invalid output from %s: expected JSON with Username and '
                'Secret' % bin_name) from None
        logging.info('Successfully obtained Docker credentials.')
        if username == _IDENTITY_TOKEN_USERNAME:
            self._identity_token = secret
        return Basic(username, secret).Get()

    def __repr__(self) -> str:
        return '<Helper docker-credential-%s for %s>' % (self._name,
                                                        self._registry)


class Keychain(metaclass=abc.ABCMeta):
    """Interface for resolving an image name to credentials."""

    @abc.abstractmethod
    def Resolve(self, name: Any) -> Provider:
        """Returns a Provider for `name`'s registry (`name.registry`)."""


def _GetUserHomeDir() -> str:
    if os.name == 'nt':
        # Docker keeps its config under %USERPROFILE%, not %HOME%.
        return os.path.expandvars('%USERPROFILE%')
    return os.path.expanduser('~')


def _GetConfigDirectory() -> str:
    """$DOCKER_CONFIG if set, else ~/.docker (as the Docker CLI does)."""
    env = os.environ.get('DOCKER_CONFIG')
    if env:
        return env
    return os.path.join(_GetUserHomeDir(), '.docker')


def _BasicFromAuth(auth: str, key: str) -> Basic:
    """Decodes an `auth` field: base64 of 'user:pass'."""
    try:
        decoded = base64.b64decode(auth).decode('utf8')
    except (binascii.Error, ValueError):
        raise ConfigError('Invalid "auth" value in Docker config entry %r: '
                         'not base64' % key) from None
    if ':' not in decoded:
        raise ConfigError('Invalid "auth" value in Docker config entry %r: '
                         'expected base64 of user:password' % key)
    username, password = decoded.split(':', 1)
    return Basic(username, password)


def _FromAuthEntry(key: str, entry: Any) -> Provider | None:
    """A Provider for one `auths` entry, or None when it holds nothing usable.

    Docker Desktop writes empty `{}` entries (its credentials live in the
    credsStore); those are skipped rather than treated as errors.
    """
    if not isinstance(entry, dict):
        raise ConfigError('Invalid entry %r in "auths" section of Docker '
                         'config: expected an object' % key)
    for field in ('identitytoken', 'auth', 'username', 'password'):
        if entry.get(field) is not None and not isinstance(entry[field], str):
            raise ConfigError('Invalid entry %r in "auths" section of Docker '
                             'config: "%s" must be a string' % (key, field))
    # Like the Docker CLI, an identity token wins over an inline password
    # (`az acr login` writes a placeholder `auth` next to it).
    if entry.get('identitytoken'):
        return IdentityToken(entry['identitytoken'], entry.get('username', ''))
    if entry.get('auth'):
        return _BasicFromAuth(entry['auth'], key)
    if 'username' in entry and 'password' in entry:
        return Basic(entry['username'], entry['password'])
    if entry.get('registrytoken'):
        raise ConfigError('Unsupported entry %r in "auths" section of Docker '
                         'config: registrytoken is not supported' % key)
    return None


class _DefaultKeychain(Keychain):
    """Docker CLI credential resolution from config.json."""

    def __init__(self) -> None:
        self._config_dir: str | None = None
        self._config_file = _CONFIG_FILE

    def setCustomConfigDir(self, config_dir: str) -> None:
        """Reads config.json from `config_dir` instead of the default."""
        if not os.path.isdir(config_dir):
            raise ConfigError('Attempting to override docker configuration '
                            'directory to invalid directory: {}'.format(
                                config_dir))
        self._config_dir = config_dir

    def _config_path(self) -> str:
        if self._config_dir is not None:
            return os.path.join(self._config_dir, self._config_file)
        return os.path.join(_GetConfigDirectory(), self._config_file)

    def Resolve(self, name: Any) -> Provider:
        logging.info('Loading Docker credentials for repository %r', str(name))
        config_file = self._config_path()
        try:
            with open(config_file, 'r', encoding='utf8') as reader:
                text = reader.read()
        except OSError:
            # No (readable) config: anonymous, as the Docker CLI does.
            return Anonymous()
        try:
            cfg = json.loads(text)
        except ValueError as e:
            raise ConfigError('Invalid JSON in Docker config %s: %s'
                             % (config_file, e)) from None
        if not isinstance(cfg, dict):
            raise ConfigError('Invalid Docker config %s: expected an object'
                             % config_file)

        for key in ('credHelpers', 'auths'):
            if not isinstance(cfg.get(key) or {}, dict):
                raise ConfigError('Invalid Docker config %s: "%s" must be an '
                                 'object' % (config_file, key))
        if not isinstance(cfg.get('credsStore') or '', str):
            raise ConfigError('Invalid Docker config %s: "credsStore" must be '
                             'a string' % config_file)

        registry = name.registry
        # Per-registry credential helpers take precedence.
        cred_helpers = cfg.get('credHelpers') or {}
        for key in _keys(registry):
            helper = cred_helpers.get(key)
            if helper and not isinstance(helper, str):
                raise ConfigError('Invalid Docker config %s: "credHelpers" '
                                 'entry %r must be a string'
                                 % (config_file, key))
            if helper:
                return Helper(helper, name)

        # Then the global credential store, which shadows 'auths' entirely.
        if cfg.get('credsStore'):
            return Helper(cfg['credsStore'], name)

        # Lastly, inline entries in 'auths'.
        auths = cfg.get('auths') or {}
        for key in _keys(registry):
            if key in auths:
                provider = _FromAuthEntry(key, auths[key])
                if provider is not None:
                    return provider

        return Anonymous()


# A module-level singleton, as callers expect (`DefaultKeychain.Resolve`).
DefaultKeychain = _DefaultKeychain()
