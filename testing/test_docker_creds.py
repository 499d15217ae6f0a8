"""Credential providers and Docker config.json resolution."""
import base64
import json
import os
import stat

import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_creds as v2_2_creds

NAME = docker_name.Tag('r.example.com/foo/bar:baz')

# A fake credential helper: logs each call and its stdin, then acts as
# $HELPER_MODE says.
_HELPER = r'''#!/bin/sh
echo "$1" >> "$HELPER_LOG/calls"
cat > "$HELPER_LOG/stdin"
case "$HELPER_MODE" in
  ok) printf '{"ServerURL":"x","Username":"user","Secret":"pass"}' ;;
  noisy) echo "warning: slow keychain" >&2
         printf '{"Username":"user","Secret":"pass"}' ;;
  notfound) echo "credentials not found in native keychain"; exit 1 ;;
  notfound_stderr) echo "credentials not found in native keychain" >&2
                   exit 1 ;;
  fail) echo '{"partial":' ; echo "keychain is locked" >&2; exit 3 ;;
  fail_stdout) echo "error getting credentials - err: exit status 1"
               exit 1 ;;
  garbage) echo 'hunter2 is not json' ;;
  leak) printf '{"Username":"u","Secret":"hunter2"}'; exit 1 ;;
  leak_stderr) echo "refresh of ghp_T0KEN1234 refused" >&2; exit 2 ;;
  numbers) printf '{"Username":1,"Secret":2}' ;;
  token) printf '{"Username":"<token>","Secret":"refresh-me"}' ;;
esac
'''


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def helper(tmp_path, monkeypatch):
    """Installs docker-credential-test on PATH; returns its log directory."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    script = bindir / 'docker-credential-test'
    script.write_text(_HELPER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / 'log'
    log.mkdir()
    monkeypatch.setenv('PATH', '%s%s%s' % (bindir, os.pathsep,
                                           os.environ.get('PATH', '')))
    monkeypatch.setenv('HELPER_LOG', str(log))
    monkeypatch.setenv('HELPER_MODE', 'ok')
    return log


def _calls(log) -> list[str]:
    path = log / 'calls'
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def keychain(tmp_path):
    """A fresh default keychain reading config.json from a temp dir."""
    cfgdir = tmp_path / 'cfg'
    cfgdir.mkdir()
    kc = docker_creds._DefaultKeychain()
    kc.setCustomConfigDir(str(cfgdir))

    def resolve(config, name=NAME):
        (cfgdir / 'config.json').write_text(json.dumps(config))
        return kc.Resolve(name)
    return resolve


def test_anonymous():
    assert docker_creds.Anonymous().Get() == ''


def test_basic_header():
    creds = docker_creds.Basic('user', 'pass')
    assert creds.Get() == 'Basic dXNlcjpwYXNz'
    assert creds.suffix == 'dXNlcjpwYXNz'
    assert (creds.username, creds.password) == ('user', 'pass')


def test_basic_utf8():
    assert docker_creds.Basic('üser', 'p:ss').Get() == (
        'Basic ' + base64.b64encode('üser:p:ss'.encode('utf8')).decode())


def test_bearer():
    creds = v2_2_creds.Bearer('abc.def')
    assert creds.Get() == 'Bearer abc.def'
    assert isinstance(creds, docker_creds.SchemeProvider)


def test_secrets_not_in_repr():
    providers = [
        docker_creds.Basic('user', 's3cret'),
        v2_2_creds.Bearer('s3cret'),
        docker_creds.IdentityToken('s3cret', 'user'),
        docker_creds.Helper('test', NAME),
    ]
    for p in providers:
        assert 's3cret' not in repr(p)
        assert 's3cret' not in str(p)
        assert 'czNjcmV0' not in repr(p)  # base64 fragment of s3cret
    assert repr(providers[0]) == "<Basic username='user'>"
    assert repr(providers[3]) == (
        '<Helper docker-credential-test for r.example.com>')


class _Token:
    def __init__(self, value):
        self.access_token = value


class _FakeOAuth2Creds:
    def __init__(self):
        self.calls = []

    def get_access_token(self, http=None):
        self.calls.append(http)
        return _Token('tok%d' % len(self.calls))


def test_oauth2_duck_typed():
    creds = _FakeOAuth2Creds()
    transport = object()
    provider = docker_creds.OAuth2(creds, transport)
    assert provider.username == '_token'
    # Loaded once, then refreshed: the second token is used.
    assert provider.Get() == 'Basic ' + _b64('_token:tok2')
    assert creds.calls == [transport, transport]


def test_helper_ok(helper):
    provider = docker_creds.Helper('test', NAME)
    assert provider.Get() == 'Basic dXNlcjpwYXNz'
    assert (helper / 'stdin').read_bytes() == b'https://r.example.com'
    assert _calls(helper) == ['get']


def test_helper_accepts_registry_string(helper):
    provider = docker_creds.Helper('test', 'localhost:5000')
    assert provider.Get() == 'Basic dXNlcjpwYXNz'
    assert (helper / 'stdin').read_bytes() == b'https://localhost:5000'


def test_helper_called_once_per_instance(helper):
    provider = docker_creds.Helper('test', NAME)
    assert provider.Get() == 'Basic dXNlcjpwYXNz'
    assert provider.Get() == 'Basic dXNlcjpwYXNz'
    assert provider.Get() == 'Basic dXNlcjpwYXNz'
    assert _calls(helper) == ['get']
    assert docker_creds.Helper('test', NAME).Get() == 'Basic dXNlcjpwYXNz'
    assert _calls(helper) == ['get', 'get']


def test_helper_stderr_kept_out_of_json(helper, monkeypatch):
    monkeypatch.setenv('HELPER_MODE', 'noisy')
    assert docker_creds.Helper('test', NAME).Get() == 'Basic dXNlcjpwYXNz'


@pytest.mark.parametrize('mode', ['notfound', 'notfound_stderr'])
def test_helper_not_found_is_anonymous(helper, monkeypatch, mode):
    monkeypatch.setenv('HELPER_MODE', mode)
    provider = docker_creds.Helper('test', NAME)
    assert provider.Get() == ''
    assert provider.Get() == ''
    assert _calls(helper) == ['get']


@pytest.mark.parametrize('mode,status,said', [
    ('fail', 3, 'keychain is locked'),
    ('fail_stdout', 1, 'error getting credentials'),
    ('leak', 1, 'hunter2'),
    ('leak_stderr', 2, 'ghp_T0KEN1234'),
])
def test_helper_failure_never_repeats_its_output(helper, monkeypatch, mode,
                                                 status, said):
    """Neither stderr nor stdout: either may hold a secret."""
    monkeypatch.setenv('HELPER_MODE', mode)
    with pytest.raises(docker_creds.HelperError) as e:
        docker_creds.Helper('test', NAME).Get()
    assert str(e.value) == (
        'Error fetching credential for test, exit status: %d '
        '(docker-credential-test failed; its output is not shown, as it may '
        'hold credentials)' % status)
    assert said not in str(e.value)


def test_helper_answering_numbers_is_invalid_output(helper, monkeypatch):
    monkeypatch.setenv('HELPER_MODE', 'numbers')
    with pytest.raises(docker_creds.HelperError,
                       match='Invalid output from docker-credential-test'):
        docker_creds.Helper('test', NAME).Get()


def test_helper_bad_output_not_quoted(helper, monkeypatch):
    monkeypatch.setenv('HELPER_MODE', 'garbage')
    with pytest.raises(docker_creds.HelperError) as e:
        docker_creds.Helper('test', NAME).Get()
    assert 'hunter2' not in str(e.value)
    assert str(e.value) == ('Invalid output from docker-credential-test: '
                            'expected JSON with Username and Secret')


def test_helper_identity_token(helper, monkeypatch):
    monkeypatch.setenv('HELPER_MODE', 'token')
    provider = docker_creds.Helper('test', NAME)
    assert provider.identity_token == 'refresh-me'
    assert provider.Get() == 'Basic ' + _b64('<token>:refresh-me')
    assert _calls(helper) == ['get']


def test_helper_missing_executable(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(docker_creds.HelperError) as e:
        docker_creds.Helper('nope', NAME).Get()
    assert str(e.value) == 'executable not found: docker-credential-nope'


def test_resolve_no_config_is_anonymous(tmp_path):
    kc = docker_creds._DefaultKeychain()
    kc.setCustomConfigDir(str(tmp_path))
    assert type(kc.Resolve(NAME)) is docker_creds.Anonymous


def test_resolve_bad_json_raises(tmp_path):
    (tmp_path / 'config.json').write_text('{"auths": ')
    kc = docker_creds._DefaultKeychain()
    kc.setCustomConfigDir(str(tmp_path))
    with pytest.raises(ValueError, match='Invalid JSON in Docker config '):
        kc.Resolve(NAME)


def test_resolve_auth_field(keychain):
    creds = keychain({'auths': {'r.example.com': {'auth': _b64('u:p:w')}}})
    assert type(creds) is docker_creds.Basic
    assert (creds.username, creds.password) == ('u', 'p:w')
    assert creds.Get() == 'Basic ' + _b64('u:p:w')


def test_resolve_username_password(keychain):
    creds = keychain({'auths': {'https://r.example.com': {
        'username': 'user', 'password': 'pass'}}})
    assert creds.Get() == 'Basic dXNlcjpwYXNz'


def test_resolve_other_registry_is_anonymous(keychain):
    creds = keychain({'auths': {'other.example.com': {'auth': _b64('u:p')}}})
    assert type(creds) is docker_creds.Anonymous


_SPELLINGS = [
    'r.example.com',
    'https://r.example.com',
    'http://r.example.com',
    'https://r.example.com/v1/',
    'http://r.example.com/v1/',
    'https://r.example.com/v2/',
    'http://r.example.com/v2/',
]


@pytest.mark.parametrize('index', range(len(_SPELLINGS)))
def test_resolve_auths_key_order(keychain, index):
    # Every spelling from `index` on is present; the first one must win.
    auths = {key: {'username': 'user%d' % i, 'password': 'p'}
             for i, key in enumerate(_SPELLINGS) if i >= index}
    # Insert in reverse so dict order cannot be what decides.
    creds = keychain({'auths': dict(reversed(list(auths.items())))})
    assert creds.username == 'user%d' % index


@pytest.mark.parametrize('index', range(len(_SPELLINGS)))
def test_resolve_cred_helpers_key_order(keychain, helper, index):
    helpers = {key: ('test' if i == index else 'wrong%d' % i)
               for i, key in enumerate(_SPELLINGS) if i >= index}
    creds = keychain({'credHelpers': dict(reversed(list(helpers.items())))})
    assert type(creds) is docker_creds.Helper
    assert creds.name == 'test'
    assert creds.Get() == 'Basic dXNlcjpwYXNz'


@pytest.mark.parametrize('hub', ['index.docker.io', 'docker.io',
                                 'registry-1.docker.io'])
def test_docker_hub_credentials_from_docker_login(keychain, hub):
    """`docker login` files Hub credentials under https://index.docker.io/v1/."""
    name = docker_name.Tag(hub + '/library/busybox:1', strict=False)
    creds = keychain({'auths': {'https://index.docker.io/v1/': {
        'auth': _b64('hubuser:hubpass')}}}, name)
    assert creds.Get() == 'Basic ' + _b64('hubuser:hubpass')
    other = docker_name.Tag('quay.io/library/busybox:1')
    assert type(keychain({'auths': {'https://index.docker.io/v1/': {
        'auth': _b64('hubuser:hubpass')}}}, other)) is docker_creds.Anonymous


@pytest.mark.parametrize('hub', ['index.docker.io', 'docker.io'])
def test_helper_is_asked_for_docker_hubs_server_url(keychain, helper, hub):
    name = docker_name.Tag(hub + '/library/busybox:1', strict=False)
    creds = keychain({'credsStore': 'test'}, name)
    assert creds.Get() == 'Basic dXNlcjpwYXNz'
    assert (helper / 'stdin').read_bytes() == b'https://index.docker.io/v1/'


def test_resolve_cred_helpers_beat_creds_store(keychain, helper):
    creds = keychain({
        'credHelpers': {'r.example.com': 'test'},
        'credsStore': 'other',
        'auths': {'r.example.com': {'auth': _b64('a:b')}},
    })
    assert type(creds) is docker_creds.Helper
    assert creds.name == 'test'


def test_resolve_creds_store_shadows_auths(keychain, helper):
    creds = keychain({
        'credsStore': 'test',
        'auths': {'r.example.com': {'auth': _b64('a:b')}},
    })
    assert type(creds) is docker_creds.Helper
    assert creds.name == 'test'
    assert creds.Get() == 'Basic dXNlcjpwYXNz'
    assert (helper / 'stdin').read_bytes() == b'https://r.example.com'


def test_resolve_cred_helper_for_other_registry_ignored(keychain):
    creds = keychain({'credHelpers': {'gcr.io': 'gcloud'},
                      'auths': {'r.example.com': {'auth': _b64('a:b')}}})
    assert creds.Get() == 'Basic ' + _b64('a:b')


def test_resolve_empty_entry_is_skipped(keychain):
    # Docker Desktop writes `{}` entries; they are not errors.
    creds = keychain({'auths': {'https://index.docker.io/v1/': {}}},
                     name=docker_name.Tag('index.docker.io/library/x:y'))
    assert type(creds) is docker_creds.Anonymous


def test_resolve_empty_entry_falls_through_to_next_spelling(keychain):
    creds = keychain({'auths': {
        'https://r.example.com': {},
        'https://r.example.com/v2/': {'auth': _b64('a:b')},
    }})
    assert creds.Get() == 'Basic ' + _b64('a:b')


def test_resolve_identity_token(keychain):
    creds = keychain({'auths': {'r.example.com': {
        'auth': _b64('00000000-0000-0000-0000-000000000000:'),
        'identitytoken': 'refresh-token-value'}}})
    assert type(creds) is docker_creds.IdentityToken
    assert creds.identity_token == 'refresh-token-value'
    assert creds.username == ''
    assert creds.Get() == ''


def test_resolve_identity_token_with_username(keychain):
    creds = keychain({'auths': {'r.example.com': {
        'username': 'me', 'identitytoken': 'tok'}}})
    assert type(creds) is docker_creds.IdentityToken
    assert (creds.username, creds.identity_token) == ('me', 'tok')


def test_resolve_registry_token_unsupported(keychain):
    with pytest.raises(ValueError) as e:
        keychain({'auths': {'r.example.com': {'registrytoken': 'secret'}}})
    assert 'registrytoken is not supported' in str(e.value)
    assert 'secret' not in str(e.value)


def test_resolve_bad_auth(keychain):
    with pytest.raises(ValueError) as e:
        keychain({'auths': {'r.example.com': {'auth': _b64('nocolon')}}})
    assert str(e.value) == (
        "Invalid \"auth\" value in Docker config entry 'r.example.com': "
        "expected base64 of user:password")


def test_default_keychain_is_singleton_instance():
    assert isinstance(docker_creds.DefaultKeychain, docker_creds.Keychain)
    from containerregistry.client import docker_creds as again
    assert again.DefaultKeychain is docker_creds.DefaultKeychain


def test_set_custom_config_dir_rejects_non_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(docker_creds.DefaultKeychain, '_config_dir', None)
    missing = str(tmp_path / 'missing')
    with pytest.raises(Exception) as e:
        docker_creds.DefaultKeychain.setCustomConfigDir(missing)
    assert str(e.value) == ('Attempting to override docker configuration '
                            'directory to invalid directory: ' + missing)


def test_config_dir_custom_beats_env(tmp_path, monkeypatch):
    custom = tmp_path / 'custom'
    env = tmp_path / 'env'
    custom.mkdir()
    env.mkdir()
    (custom / 'config.json').write_text(json.dumps(
        {'auths': {'r.example.com': {'auth': _b64('custom:x')}}}))
    (env / 'config.json').write_text(json.dumps(
        {'auths': {'r.example.com': {'auth': _b64('env:x')}}}))
    monkeypatch.setenv('DOCKER_CONFIG', str(env))
    monkeypatch.setattr(docker_creds.DefaultKeychain, '_config_dir', None)
    assert docker_creds.DefaultKeychain.Resolve(NAME).username == 'env'
    docker_creds.DefaultKeychain.setCustomConfigDir(str(custom))
    assert docker_creds.DefaultKeychain.Resolve(NAME).username == 'custom'


def test_config_dir_home_fallback(tmp_path, monkeypatch):
    (tmp_path / '.docker').mkdir()
    (tmp_path / '.docker' / 'config.json').write_text(json.dumps(
        {'auths': {'r.example.com': {'auth': _b64('home:x')}}}))
    monkeypatch.delenv('DOCKER_CONFIG', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    kc = docker_creds._DefaultKeychain()
    assert kc.Resolve(NAME).username == 'home'


@pytest.mark.parametrize('config, key', [
    ({'credHelpers': 'x'}, 'credHelpers'),
    ({'auths': ['r.example.com']}, 'auths'),
    ({'credsStore': {'a': 1}}, 'credsStore'),
])
def test_resolve_config_of_the_wrong_shape(keychain, config, key):
    with pytest.raises(ValueError, match='Invalid Docker config .*: "%s" must be'
                       % key):
        keychain(config)
