"""Every expected failure is one clear line: bad manifests, configs, names,
credentials configs and trust settings, through the real tools."""
import dataclasses
import json
import shutil
import subprocess

import pytest

from containerregistry.testing import images
from containerregistry.testing import proxy as proxy_mod

_BLOB = 'sha256:' + 'a' * 64


@pytest.fixture
def proxy(registry):
    p = proxy_mod.start_proxy(registry)
    yield p
    p.stop()


def _served(proxy, registry, repo_name, body):
    """A name, through PROXY, whose manifest is BODY (served with the
    Content-Type of a real schema 2 manifest and a matching digest)."""
    pushed = images.push_image(registry, repo_name + ':v', [images.make_layer(910)])
    proxy.replace_manifest('v', body, consistent_digest=True)
    return '%s/%s:v' % (proxy.host, pushed.repo)


@pytest.mark.parametrize('body,needle', [
    ({'schemaVersion': 1, 'fsLayers': []}, 'has no "history" list'),
    ({'schemaVersion': 1, 'fsLayers': [{'blobSum': _BLOB}], 'history': []},
     'has 1 fsLayers but 0 history entries'),
    ({'schemaVersion': 1, 'fsLayers': [{'blobSum': _BLOB}],
      'history': [{'v1Compatibility': 'x'}]},
     'history[0].v1Compatibility is not valid JSON'),
    ({'schemaVersion': 1, 'fsLayers': [{'blobSum': _BLOB}], 'history': [7]},
     'history[0] has no v1Compatibility text'),
    ({'schemaVersion': 1, 'fsLayers': [], 'history': [],
      'mediaType': images.DOCKER_MANIFEST},
     'says it is %s, but its schemaVersion is 1' % images.DOCKER_MANIFEST),
])
def test_garbage_schema1_manifest(registry, proxy, repo_name, pull, body,
                                  needle):
    proc = pull(_served(proxy, registry, repo_name, json.dumps(body).encode()))
    line = pull.assert_failed(proc, needle)
    assert 'KeyError' not in line


@pytest.mark.parametrize('platform,needle', [
    ('linux/amd64', 'manifests[0].platform is not a JSON object: "linux/amd64"'),
    ({'os': 'linux', 'architecture': 64}, '"architecture" is not a string'),
    ({'os': 'linux', 'architecture': 'amd64', 'os.features': [1]},
     '"os.features" is not a list of strings'),
])
def test_bad_platform_in_an_index(registry, proxy, repo_name, pull, platform,
                                  needle):
    index = images.push_index(registry, repo_name + ':v', fmt='oci')
    body = json.loads(index.manifest)
    body['manifests'][0]['platform'] = platform
    proxy.replace_manifest('v', json.dumps(body).encode(),
                           consistent_digest=True)
    line = pull.assert_failed(pull('%s/%s:v' % (proxy.host, index.repo)),
                              needle)
    assert 'ValueError' not in line


def test_config_that_is_not_utf8(registry, repo_name, pull):
    built = images.build_image([images.make_layer(911)])
    config = built.config.replace(b'"created"', b'"cr\xffeated"')
    manifest = json.loads(built.manifest)
    manifest['config'].update(digest=images.sha256(config), size=len(config))
    pushed = images.push_built(registry, repo_name + ':v', dataclasses.replace(
        built, config=config, manifest=json.dumps(manifest).encode()))
    line = pull.assert_failed(pull(pushed.by_tag),
                              'config %s of %s is not UTF-8 text'
                              % (pushed.config_digest, pushed.by_tag))
    assert 'UnicodeDecodeError' not in line


@pytest.mark.parametrize('entry,field', [
    ({'username': 42, 'password': 'pw'}, 'username'),
    ({'username': 'u', 'password': ['pw']}, 'password'),
    ({'auth': 12345}, 'auth'),
    ({'identitytoken': {'t': 1}}, 'identitytoken'),
])
def test_docker_config_with_a_field_of_the_wrong_type(basic_registry, repo_name,
                                                      pull, tmp_path, entry,
                                                      field):
    cfg = tmp_path / 'cfg'
    cfg.mkdir()
    (cfg / 'config.json').write_text(json.dumps(
        {'auths': {basic_registry.host: entry}}))
    name = '%s/%s:t' % (basic_registry.host, repo_name)
    line = pull.assert_failed(pull(name, '--client-config-dir', str(cfg)),
                              '"%s" must be a string' % field)
    assert 'AttributeError' not in line and 'TypeError' not in line


@pytest.mark.parametrize('suffix', ['\n', '\r\n', '\nEVIL: injected'])
def test_name_with_a_newline_is_one_line(registry, repo_name, pull, suffix):
    proc = pull('%s/%s:t%s' % (registry.host, repo_name, suffix))
    line = pull.assert_failed(proc, 'Invalid tag')
    assert repr(suffix)[1:-1] in line


def _tls_name(tls_registry, repo_name):
    pushed = images.push_image(tls_registry, repo_name + ':t',
                               [images.make_layer(912)])
    return pushed, '%s/%s:t' % (tls_registry.tls_host, pushed.repo)


@pytest.mark.parametrize('variable,needle', [
    ('SSL_CERT_FILE', 'which is not a readable file'),
    ('SSL_CERT_DIR', 'which is not a directory'),
])
def test_trust_setting_that_names_nothing_is_an_error(
        tls_registry, repo_name, pull, tool_env, tmp_path, variable, needle):
    _, name = _tls_name(tls_registry, repo_name)
    missing = str(tmp_path / 'no-such-ca')
    env = dict(tool_env, **{variable: missing})
    pull.assert_failed(pull(name, env=env),
                       '%s names %s, %s' % (variable, missing, needle))


def test_ssl_cert_dir_of_hashed_certificates_is_trusted(
        tls_registry, repo_name, pull, tool_env, tmp_path):
    pushed, name = _tls_name(tls_registry, repo_name)
    cadir = tmp_path / 'cas'
    cadir.mkdir()
    shutil.copy(tls_registry.ca_path, cadir / 'private-ca.pem')
    subprocess.run(['openssl', 'rehash', str(cadir)], check=True,
                   capture_output=True)
    # Only the private CA: the default file is replaced by an empty one.
    empty = tmp_path / 'empty.pem'
    empty.write_text('')
    env = dict(tool_env, SSL_CERT_DIR=str(cadir), SSL_CERT_FILE=str(empty))
    pull.assert_pulled(pull(name, env=env), pushed)
