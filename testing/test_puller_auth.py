"""puller credentials (config.json, credential helpers), token auth and TLS."""
import base64
import os

import pytest

from containerregistry.testing import images
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import registry as reg

UNAUTHORIZED = ('401', 'UNAUTHORIZED', 'unauthorized')


def _image(registry, repo_name, seed):
    return images.push_image(registry, repo_name + ':t', [images.make_layer(seed),
                                                          images.make_layer(seed + 1)])


def _config_dir(tmp_path, registry, user=None, password=None, name='cfg'):
    user = user or registry.username
    password = password or registry.password
    return reg.docker_config(str(tmp_path / name), auths={registry.host: (user, password)})


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_client_config_dir(request, kind, repo_name, pull, tmp_path):
    registry = request.getfixturevalue(kind + '_registry')
    pushed = _image(registry, repo_name, 300)
    cfg = _config_dir(tmp_path, registry)
    pull.assert_pulled(pull(pushed.by_tag, '--client-config-dir', cfg), pushed)


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_credentials_asked_after_an_anonymous_ping(request, kind, repo_name, pull,
                                                   tmp_path):
    """`/v2/` open to all, the repository not: the 401's challenge is taken
    up and the request sent again with credentials."""
    registry = request.getfixturevalue(kind + '_registry')
    pushed = _image(registry, repo_name, 350)
    p = proxy_mod.start_proxy(registry)
    try:
        p.anonymous_ping()
        name = '%s/%s:t' % (p.host, pushed.repo)
        pull.assert_failed(pull(name), 'Error pulling and saving image', UNAUTHORIZED)
        cfg = reg.docker_config(str(tmp_path / 'cfg'), auths={p.host: registry.creds})
        del p.requests[:]
        pull.assert_pulled(pull(name, '--client-config-dir', cfg), pushed)
        manifests = [h for m, path, h in p.requests if '/manifests/' in path]
        has_auth = [any(k.lower() == 'authorization' for k in h) for h in manifests]
        assert has_auth[:2] == [False, True]
    finally:
        p.stop()


def test_docker_config_env(basic_registry, repo_name, pull, tmp_path, tool_env):
    pushed = _image(basic_registry, repo_name, 310)
    env = dict(tool_env, DOCKER_CONFIG=_config_dir(tmp_path, basic_registry))
    pull.assert_pulled(pull(pushed.by_tag, env=env), pushed)


def test_home_docker_config(basic_registry, repo_name, pull, tool_env):
    pushed = _image(basic_registry, repo_name, 320)
    env = dict(tool_env)
    del env['DOCKER_CONFIG']
    reg.docker_config(os.path.join(env['HOME'], '.docker'),
                      auths={basic_registry.host: basic_registry.creds})
    pull.assert_pulled(pull(pushed.by_tag, env=env), pushed)


def test_client_config_dir_wins_over_docker_config(basic_registry, repo_name, pull,
                                                   tmp_path, tool_env):
    pushed = _image(basic_registry, repo_name, 330)
    wrong = _config_dir(tmp_path, basic_registry, password='wrong', name='wrong')
    env = dict(tool_env, DOCKER_CONFIG=wrong)
    good = _config_dir(tmp_path, basic_registry, name='good')
    pull.assert_pulled(pull(pushed.by_tag, '--client-config-dir', good, env=env), pushed)


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_credential_helper(request, kind, repo_name, pull, tmp_path, tool_env):
    registry = request.getfixturevalue(kind + '_registry')
    pushed = _image(registry, repo_name, 340)
    bindir = str(tmp_path / 'bin')
    reg.credential_helper(bindir, 'crtest', registry.username, registry.password)
    cfg = reg.docker_config(str(tmp_path / 'cfg'), cred_helpers={registry.host: 'crtest'})
    env = dict(tool_env, PATH=bindir + os.pathsep + tool_env.get('PATH', ''))
    pull.assert_pulled(pull(pushed.by_tag, '--client-config-dir', cfg, env=env), pushed)
    with open(os.path.join(bindir, 'crtest.calls')) as f:
        assert registry.host in f.read()


def test_credential_helper_missing(basic_registry, repo_name, pull, tmp_path):
    pushed = _image(basic_registry, repo_name, 345)
    cfg = reg.docker_config(str(tmp_path / 'cfg'),
                            cred_helpers={basic_registry.host: 'nosuchhelper'})
    proc = pull(pushed.by_tag, '--client-config-dir', cfg)
    pull.assert_failed(proc, 'docker-credential-nosuchhelper')


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_no_credentials(request, kind, repo_name, pull):
    registry = request.getfixturevalue(kind + '_registry')
    pushed = _image(registry, repo_name, 350)
    pull.assert_failed(pull(pushed.by_tag), UNAUTHORIZED)


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_wrong_password(request, kind, repo_name, pull, tmp_path):
    registry = request.getfixturevalue(kind + '_registry')
    pushed = _image(registry, repo_name, 360)
    cfg = _config_dir(tmp_path, registry, password='not-the-password')
    line = pull.assert_failed(pull(pushed.by_tag, '--client-config-dir', cfg),
                              UNAUTHORIZED)
    assert 'not-the-password' not in line


def test_token_anonymous_public_repo(token_registry, repo_name, pull):
    public = reg.PUBLIC_PREFIX + repo_name.split('/', 1)[1]
    pushed = _image(token_registry, public, 370)
    pull.assert_pulled(pull(pushed.by_tag), pushed)
    assert any('scope=repository%3A' + public.replace('/', '%2F') in r['path']
               or 'scope=repository:' + public in r['path']
               for r in token_registry.token_server.requests)


@pytest.mark.parametrize('kind', ['basic', 'token'])
@pytest.mark.parametrize('level', ['DEBUG', '0'])
def test_password_not_logged(request, kind, level, repo_name, pull, tmp_path):
    registry = request.getfixturevalue(kind + '_registry')
    pushed = _image(registry, repo_name, 380)
    cfg = _config_dir(tmp_path, registry)
    proc = pull(pushed.by_tag, '--client-config-dir', cfg, '--stderrthreshold', level)
    pull.assert_pulled(proc, pushed)
    basic = base64.b64encode(('%s:%s' % registry.creds).encode()).decode()
    for secret in (registry.password, basic):
        assert secret not in proc.stderr
        assert secret not in proc.stdout
    assert proc.stderr.strip(), 'expected debug output at level %s' % level


def test_password_not_logged_on_failure(basic_registry, repo_name, pull, tmp_path):
    cfg = _config_dir(tmp_path, basic_registry)
    proc = pull('%s/%s:missing' % (basic_registry.host, repo_name),
                '--client-config-dir', cfg, '--stderrthreshold', 'DEBUG')
    assert proc.returncode == 1
    assert basic_registry.password not in proc.stderr
    assert 'MANIFEST_UNKNOWN' in proc.stderr


def _tls_name(tls_registry, pushed):
    return '%s/%s:%s' % (tls_registry.tls_host, pushed.repo, pushed.tag)


def test_tls_with_ca(tls_registry, repo_name, pull, tool_env):
    pushed = _image(tls_registry, repo_name, 390)
    env = dict(tool_env, SSL_CERT_FILE=tls_registry.ca_path)
    proc = pull(_tls_name(tls_registry, pushed), env=env)
    pull.assert_pulled(proc, pushed)


def test_tls_verified_by_default(tls_registry, repo_name, pull):
    pushed = _image(tls_registry, repo_name, 395)
    line = pull.assert_failed(pull(_tls_name(tls_registry, pushed)))
    assert 'certificate' in line.lower()


def test_https_registry_with_a_plain_http_token_realm(repo_name, pull, tmp_path,
                                                      tool_env):
    """Credentials never go to a plain-http realm of an https registry: the
    pull fails in one line, while anonymous pulls of public repositories
    (no credentials to send) still work."""
    registry = reg.start_registry(auth='token', tls=True)
    try:
        public = reg.PUBLIC_PREFIX + repo_name.split('/', 1)[1]
        pushed = images.push_image(registry, public + ':t', [images.make_layer(351)])
        env = dict(tool_env, SSL_CERT_FILE=registry.ca_path)
        name = '%s/%s:t' % (registry.tls_host, public)
        cfg = reg.docker_config(str(tmp_path / 'cfg'),
                                auths={registry.tls_host: registry.creds})
        line = pull.assert_failed(pull(name, '--client-config-dir', cfg, env=env),
                                  'Refusing to send credentials',
                                  'plain-http token realm http://')
        assert registry.password not in line
        pull.assert_pulled(pull(name, env=env), pushed)
    finally:
        registry.stop()


def _realm_elsewhere(token_registry, realm, repo_name):
    """A proxy before TOKEN_REGISTRY whose challenges name REALM, and an
    image there."""
    pushed = _image(token_registry, repo_name, 360)
    p = proxy_mod.start_proxy(token_registry)
    p.rewrite_realm(realm)
    return p, pushed


def test_credentials_never_go_in_clear_to_a_realm_on_the_network(
        token_registry, repo_name, pull, tmp_path):
    """A plain-http registry whose realm is a plain-http host out on the
    network: refused before any connection (the realm's name resolves to
    nothing, so an attempt would fail on the name instead)."""
    p, pushed = _realm_elsewhere(
        token_registry, 'http://token.invalid:%d/token'
        % token_registry.token_server.port, repo_name)
    try:
        cfg = reg.docker_config(str(tmp_path / 'cfg'),
                                auths={p.host: token_registry.creds})
        asked = len(token_registry.token_server.requests)
        line = pull.assert_failed(
            pull('%s/%s:t' % (p.host, pushed.repo), '--client-config-dir', cfg),
            'Refusing to send credentials for %s' % p.host,
            'plain-http token realm http://token.invalid',
            'another host, and not loopback')
        assert token_registry.password not in line
        assert len(token_registry.token_server.requests) == asked
    finally:
        p.stop()


def test_credentials_never_go_in_clear_through_an_http_proxy(
        token_registry, repo_name, pull, tmp_path, tool_env):
    """The registry's own host, but reached through http_proxy: that
    crosses a network too."""
    from containerregistry.testing import forward_proxy
    name = 'registry.local'
    p, pushed = _realm_elsewhere(
        token_registry, 'http://%s:%d/token' % (
            name, token_registry.token_server.port), repo_name)
    forward = forward_proxy.ForwardProxy({name: '127.0.0.1'})
    try:
        registry_host = '%s:%d' % (name, p.port)
        cfg = reg.docker_config(str(tmp_path / 'cfg'),
                                auths={registry_host: token_registry.creds})
        env = dict(tool_env, http_proxy=forward.url())
        line = pull.assert_failed(
            pull('%s/%s:t' % (registry_host, pushed.repo),
                 '--client-config-dir', cfg, env=env),
            'Refusing to send credentials for %s' % registry_host,
            'reached through the proxy 127.0.0.1:%d' % forward.port)
        assert token_registry.password not in line
        # The ping went through the proxy; nothing went to the realm.
        assert [seen for seen, _ in forward.seen] == [
            'GET http://%s/v2/ HTTP/1.1' % registry_host]
    finally:
        forward.stop()
        p.stop()
