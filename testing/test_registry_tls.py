"""Registries with their own certificates, and insecure registries by name.

The CA of the TLS registries is made by the fixtures (testing/registry.py)
and is in no trust store: it is trusted only through a certs.d directory
under $CONTAINERREGISTRY_CERTS_D, the way docker and podman read
/etc/docker/certs.d. Insecure registries are named with
`--insecure-registry` or $CONTAINERREGISTRY_INSECURE_REGISTRIES and reached
as `127.0.0.1:PORT`, which the tools otherwise reach by verified https.
"""
import base64
import os
import shutil

import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_http
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import push_helpers as ph
from containerregistry.testing import registry as reg
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)
from containerregistry.transport import certs_d
from containerregistry.transport import insecure
from containerregistry.transport import pooled_http

INSECURE = 'CONTAINERREGISTRY_INSECURE_REGISTRIES'


@pytest.fixture(scope='module')
def mtls_registry():
    """An https registry that requires a client certificate (`clientcas`)."""
    r = reg.start_registry(mtls=True)
    yield r
    r.stop()


@pytest.fixture
def proxy(basic_registry):
    p = proxy_mod.start_proxy(basic_registry)
    yield p
    p.stop()


def _certs_dir(root, name: str, *files) -> str:
    """ROOT/NAME holding FILES, each (name in the directory, source path)."""
    directory = os.path.join(str(root), name)
    os.makedirs(directory, exist_ok=True)
    for entry, source in files:
        shutil.copy(source, os.path.join(directory, entry))
    return directory


def _with_certs_d(env: dict, root) -> dict:
    return dict(env, **{certs_d.ROOTS_VARIABLE: str(root)})


def _pushed(registry, repo_name, seed):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(seed)])
    return pushed, '%s/%s:t' % (registry.tls_host, pushed.repo)


# Certificates in certs.d.

def test_ca_in_the_registry_directory_is_trusted(tls_registry, repo_name,
                                                  pull, tool_env, tmp_path):
    pushed, name = _pushed(tls_registry, repo_name, 1401)
    root = tmp_path / 'certs.d'
    _certs_dir(root, tls_registry.tls_host, ('ca.crt', tls_registry.ca_path))
    pull.assert_pulled(pull(name, env=_with_certs_d(tool_env, root)), pushed)


def test_without_the_ca_the_line_says_verification_failed(
        tls_registry, repo_name, pull, tool_env, tmp_path):
    _, name = _pushed(tls_registry, repo_name, 1402)
    root = tmp_path / 'certs.d'
    root.mkdir()
    pull.assert_failed(pull(name, env=_with_certs_d(tool_env, root)),
                       'the certificate of %s could not be verified'
                       % tls_registry.tls_host,
                       '%s/%s/' % (root, tls_registry.tls_host))


@pytest.mark.parametrize('other', ['registry.test:{port}', '127.0.0.1',
                                   'localhost:{port}'])
def test_ca_of_another_registry_is_not_trusted(tls_registry, repo_name, pull,
                                              tool_env, tmp_path, other):
    _, name = _pushed(tls_registry, repo_name, 1403)
    root = tmp_path / 'certs.d'
    _certs_dir(root, other.format(port=tls_registry.port),
               ('ca.crt', tls_registry.ca_path))
    pull.assert_failed(pull(name, env=_with_certs_d(tool_env, root)),
                       'could not be verified')


def test_registry_cas_are_added_to_the_system_store(
        tls_registry, repo_name, pull, tool_env, tmp_path):
    """The system store (here SSL_CERT_FILE) still counts next to a
    registry's own CA file, which holds another CA."""
    pushed, name = _pushed(tls_registry, repo_name, 1404)
    root = tmp_path / 'certs.d'
    _certs_dir(root, tls_registry.tls_host,
               ('other.crt', _another_ca(tmp_path)))
    env = dict(_with_certs_d(tool_env, root),
               SSL_CERT_FILE=tls_registry.ca_path)
    pull.assert_pulled(pull(name, env=env), pushed)


def _another_ca(tmp_path) -> str:
    path = str(tmp_path / 'another-ca.pem')
    key = reg._new_key()  # pylint: disable=protected-access
    with open(path, 'wb') as f:
        f.write(reg._pem(reg._cert('another CA', key, ca=True)))  # pylint: disable=protected-access
    return path


def test_a_ca_file_that_is_no_certificate_is_one_line(
        tls_registry, repo_name, pull, tool_env, tmp_path):
    _, name = _pushed(tls_registry, repo_name, 1405)
    root = tmp_path / 'certs.d'
    directory = _certs_dir(root, tls_registry.tls_host)
    with open(os.path.join(directory, 'ca.crt'), 'w') as f:
        f.write('not a certificate\n')
    pull.assert_failed(pull(name, env=_with_certs_d(tool_env, root)),
                       os.path.join(directory, 'ca.crt'),
                       'not a usable CA certificate')


def test_client_certificate_is_presented(mtls_registry, repo_name, pull,
                                         tool_env, tmp_path):
    pushed, name = _pushed(mtls_registry, repo_name, 1406)
    root = tmp_path / 'certs.d'
    _certs_dir(root, mtls_registry.tls_host,
               ('ca.crt', mtls_registry.ca_path),
               ('client.cert', mtls_registry.client_cert_path),
               ('client.key', mtls_registry.client_key_path))
    pull.assert_pulled(pull(name, env=_with_certs_d(tool_env, root)), pushed)


def test_without_a_client_certificate_the_registry_refuses(
        mtls_registry, repo_name, pull, tool_env, tmp_path):
    _, name = _pushed(mtls_registry, repo_name, 1407)
    root = tmp_path / 'certs.d'
    _certs_dir(root, mtls_registry.tls_host, ('ca.crt', mtls_registry.ca_path))
    pull.assert_failed(pull(name, env=_with_certs_d(tool_env, root)),
                       'refused the client certificate, or wanted one',
                       '%s/%s/' % (root, mtls_registry.tls_host))


def test_client_certificate_without_its_key_is_one_line(
        mtls_registry, repo_name, pull, tool_env, tmp_path):
    _, name = _pushed(mtls_registry, repo_name, 1408)
    root = tmp_path / 'certs.d'
    directory = _certs_dir(root, mtls_registry.tls_host,
                           ('ca.crt', mtls_registry.ca_path),
                           ('client.cert', mtls_registry.client_cert_path))
    pull.assert_failed(pull(name, env=_with_certs_d(tool_env, root)),
                       '%s has no key for its client certificate' % directory,
                       'client.key is missing')


def test_library_transport_picks_the_hosts_certificates(
        mtls_registry, tmp_path, monkeypatch):
    root = tmp_path / 'certs.d'
    _certs_dir(root, mtls_registry.tls_host,
               ('ca.crt', mtls_registry.ca_path),
               ('client.cert', mtls_registry.client_cert_path),
               ('client.key', mtls_registry.client_key_path))
    monkeypatch.setenv(certs_d.ROOTS_VARIABLE, str(root))
    resp, _ = pooled_http.Http().request(mtls_registry.url + '/v2/')
    assert resp.status == 200


def test_lookup_reads_both_roots_names_and_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv(certs_d.ROOTS_VARIABLE, str(tmp_path))
    assert certs_d.lookup('example.com', 443) is None
    with_port = _certs_dir(tmp_path, 'example.com:443')
    bare = _certs_dir(tmp_path, 'example.com')
    for path in (os.path.join(with_port, 'a.crt'),
                 os.path.join(bare, 'b.crt'), os.path.join(bare, 'c.cert'),
                 os.path.join(bare, 'c.key'), os.path.join(bare, 'README')):
        open(path, 'w').close()
    trust = certs_d.lookup('example.com', 443)
    assert trust.cafiles == (os.path.join(with_port, 'a.crt'),
                             os.path.join(bare, 'b.crt'))
    assert trust.client == (os.path.join(bare, 'c.cert'),
                            os.path.join(bare, 'c.key'))
    # Another port has its own directory only.
    assert certs_d.lookup('example.com', 5000) is None
    os.remove(os.path.join(bare, 'c.cert'))
    with pytest.raises(certs_d.CertsDirError, match='c.cert is missing'):
        certs_d.lookup('example.com', 443)


def test_default_roots_are_dockers_and_containers(monkeypatch):
    monkeypatch.delenv(certs_d.ROOTS_VARIABLE, raising=False)
    assert certs_d.roots() == ('/etc/docker/certs.d', '/etc/containers/certs.d')


# Insecure registries.

def test_plain_http_registry_by_ip_needs_the_flag(registry, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(1410)])
    name = '%s/%s:t' % (registry.addr, pushed.repo)
    pull.assert_failed(pull(name), 'https://%s/v2/' % registry.addr,
                       'does not speak TLS', '--insecure-registry')
    pull.assert_pulled(pull(name, '--insecure-registry', registry.addr), pushed)


def test_insecure_registries_from_the_environment(registry, repo_name, pull,
                                                  tool_env):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(1411)])
    name = '%s/%s:t' % (registry.addr, pushed.repo)
    env = dict(tool_env, **{INSECURE: 'example.com, %s' % registry.addr})
    pull.assert_pulled(pull(name, env=env), pushed)


def test_only_the_registries_named_are_insecure(registry, tls_registry,
                                                repo_name, pull, tool_env):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(1412)])
    name = '%s/%s:t' % (registry.addr, pushed.repo)
    other = '127.0.0.1:%d' % tls_registry.port
    env = dict(tool_env, **{INSECURE: '127.0.0.1'})
    pull.assert_failed(pull(name, '--insecure-registry', other, env=env),
                       'https://%s/v2/' % registry.addr)


def test_insecure_tls_registry_is_not_verified(tls_registry, repo_name, pull):
    pushed, name = _pushed(tls_registry, repo_name, 1413)
    pull.assert_pulled(pull(name, '--insecure-registry', tls_registry.tls_host),
                       pushed)


def test_pusher_and_appender_reach_an_insecure_registry(registry, repo_name,
                                                        tools, tmp_path):
    disk = ph.write_disk_image(tools.new_dir('img'), [images.make_layer(1414)])
    name = '%s/%s:t' % (registry.addr, repo_name)
    flag = ('--insecure-registry', registry.addr)
    digest = tools.push(name, *disk.args(), *flag)
    assert ph.tag_digest(registry, repo_name, 't') == digest
    tarball = tmp_path / 'layer.tar'
    tarball.write_bytes(images.make_layer(1415))
    dst = '%s/%s:appended' % (registry.addr, repo_name)
    proc = tools.appender(name, str(tarball), dst, *flag)
    assert proc.returncode == 0, proc.stderr
    assert ph.tag_digest(registry, repo_name, 'appended') is not None


def test_docker_puller_and_pusher_take_the_flag(registry, repo_name,
                                                tmp_path, tool_env):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(1418)])
    flag = ('--insecure-registry', registry.addr)
    tarball = str(tmp_path / 'image.tar')
    proc = pars.run_tool('docker_puller', '--name', '%s/%s:t' % (
        registry.addr, pushed.repo), '--tarball', tarball, *flag,
                         env=tool_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = pars.run_tool('docker_pusher', '--name', '%s/%s:again' % (
        registry.addr, pushed.repo), '--tarball', tarball, *flag,
                         env=tool_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    digest = ph.tag_digest(registry, pushed.repo, 'again')
    assert proc.stdout.endswith('was published with digest: %s\n' % digest)


def test_insecure_token_registry_by_ip(token_registry, repo_name, pull,
                                       tmp_path):
    """Over plain http, the token realm on loopback may have the
    credentials configured for the registry's name."""
    pushed = images.push_image(token_registry, repo_name + ':t',
                               [images.make_layer(1419)])
    addr = token_registry.addr
    config = reg.docker_config(str(tmp_path / 'cfg'), {
        addr: token_registry.creds})
    pull.assert_pulled(pull('%s/%s:t' % (addr, pushed.repo),
                            '--client-config-dir', config,
                            '--insecure-registry', addr), pushed)


@pytest.mark.parametrize('value', ['http://host:5000', 'host/path', 'host:',
                                   'user@host', ''])
def test_a_bad_insecure_registry_name_is_refused(pull, tool_env, value):
    proc = pull('localhost:1/a:b', '--insecure-registry', value)
    assert proc.returncode == 2, proc.stderr
    assert 'is not a registry HOST[:PORT]' in proc.stderr
    env = dict(tool_env, **{INSECURE: 'example.com,' + value})
    if value:
        pull.assert_failed(pull('localhost:1/ab:c', env=env), INSECURE,
                           'is not a registry HOST[:PORT]')


def _basic(username: str, password: str) -> str:
    raw = ('%s:%s' % (username, password)).encode()
    return 'Basic ' + base64.b64encode(raw).decode()


def _authorizations(proxy):
    sent = [{k.lower(): v for k, v in h.items()} for _, _, h in proxy.requests]
    return [h['authorization'] for h in sent if 'authorization' in h]


def test_insecure_registry_gets_only_its_own_credentials(
        basic_registry, proxy, repo_name, pull, tool_env, tmp_path):
    """The proxy in front of the basic-auth registry speaks plain http on
    127.0.0.1:PORT; credentials configured for another name of it are not
    sent, those configured for it are."""
    pushed = images.push_image(basic_registry, repo_name + ':t',
                               [images.make_layer(1416)])
    name = '127.0.0.1:%d/%s:t' % (proxy.port, pushed.repo)
    flag = ('--insecure-registry', '127.0.0.1:%d' % proxy.port)
    elsewhere = reg.docker_config(str(tmp_path / 'elsewhere'), {
        'localhost:%d' % proxy.port: basic_registry.creds})
    pull.assert_failed(pull(name, '--client-config-dir', elsewhere, *flag),
                       ('401', 'UNAUTHORIZED', 'unauthorized', 'denied'))
    assert not _authorizations(proxy)
    own = reg.docker_config(str(tmp_path / 'own'), {
        '127.0.0.1:%d' % proxy.port: basic_registry.creds})
    pull.assert_pulled(pull(name, '--client-config-dir', own, *flag), pushed)
    assert set(_authorizations(proxy)) == {_basic(*basic_registry.creds)}


def test_library_callers_name_insecure_registries(registry, repo_name):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(1417)])
    name = docker_name.Tag('%s/%s:t' % (registry.addr, pushed.repo))
    transport = pooled_http.Http(insecure_registries=[registry.addr])
    assert transport.insecure_registries == frozenset([registry.addr])
    session = docker_http.Transport(name, docker_creds.Anonymous(), transport,
                                    docker_http.PULL)
    assert session.base_url() == 'http://' + registry.addr


def test_names_are_matched_as_docker_matches_them():
    assert insecure.normalize('Example.COM:5000') == 'example.com:5000'
    assert insecure.normalize('[::1]:5000') == '[::1]:5000'
    names = frozenset(['example.com', 'other.com:5000'])
    assert insecure.listed(names, 'example.com', 443, 443)
    assert insecure.listed(names, 'example.com', 80, 80)
    assert not insecure.listed(names, 'example.com', 5000, 443)
    assert insecure.listed(names, 'other.com', 5000, 443)
    assert not insecure.listed(names, 'other.com', 443, 443)
