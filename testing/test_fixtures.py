"""The test fixtures checked with skopeo and plain HTTP only.

A failure here is a fixture bug, not a bug in the tools under test.
"""
import base64
import http.client
import json
import os
import ssl
import subprocess
import tarfile
import io
import urllib.error
import urllib.request

import pytest

from containerregistry.testing import images
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import registry as reg


def test_layers_are_deterministic():
    a = images.make_layer(7, 3000)
    assert a == images.make_layer(7, 3000)
    assert a != images.make_layer(8, 3000)
    assert images.gzip_bytes(a) == images.gzip_bytes(a)
    text = images.make_layer(7, 3000, kind='text')
    with tarfile.open(fileobj=io.BytesIO(text)) as tar:
        member = tar.getmember('layer-7/data.txt')
        assert member.mtime == images.LAYER_MTIME and member.uid == 0
        assert len(tar.extractfile(member).read()) == 3000
    files = images.make_layer(0, files={'etc/hello': b'hi\n'})
    with tarfile.open(fileobj=io.BytesIO(files)) as tar:
        assert tar.getnames() == ['etc', 'etc/hello']


@pytest.mark.parametrize('fmt,mime', [('docker', images.DOCKER_MANIFEST),
                                      ('oci', images.OCI_MANIFEST)])
def test_push_image_matches_skopeo(registry, repo_name, fmt, mime):
    tars = [images.make_layer(1), images.make_layer(2, kind='text')]
    pushed = images.push_image(registry, repo_name + ':v1', tars, fmt=fmt)
    assert pushed.media_type == mime
    raw = images.skopeo_inspect_raw(registry, pushed.by_tag)
    assert raw == pushed.manifest
    assert images.sha256(raw) == pushed.digest
    assert images.skopeo_inspect_raw(registry, pushed.by_digest) == raw
    config = images.skopeo_inspect_raw(registry, pushed.by_tag, config=True)
    assert config == pushed.config
    manifest = json.loads(raw)
    assert [l['digest'] for l in manifest['layers']] == [l.digest for l in pushed.layers]
    assert json.loads(config)['rootfs']['diff_ids'] == [images.sha256(t) for t in tars]
    status, headers, _ = images.Client(registry).request(
        'HEAD', pushed.repo, 'manifests/v1', headers={'Accept': mime})
    assert status == 200 and headers['Docker-Content-Digest'] == pushed.digest


@pytest.mark.parametrize('fmt,mime', [('docker', images.DOCKER_LIST),
                                      ('oci', images.OCI_INDEX)])
def test_push_index_matches_skopeo(registry, repo_name, fmt, mime, tmp_path):
    index = images.push_index(registry, repo_name + ':multi', fmt=fmt,
                              attestation=True)
    assert index.media_type == mime
    raw = images.skopeo_inspect_raw(registry, index.by_tag)
    assert raw == index.manifest and images.sha256(raw) == index.digest
    entries = json.loads(raw)['manifests']
    assert len(entries) == 2 * len(images.default_platforms())
    for child in index.children:
        assert images.skopeo_inspect_raw(registry, child.by_digest) == child.manifest
    atts = [e for e in entries if e['platform'] == {'architecture': 'unknown',
                                                    'os': 'unknown'}]
    assert [e['digest'] for e in atts] == index.attestations
    assert all(e['annotations']['vnd.docker.reference.type'] == 'attestation-manifest'
               for e in atts)
    arm = index.child(os='linux', architecture='arm', variant='v7')
    assert json.loads(arm.config)['variant'] == 'v7'
    blobs = images.skopeo_dir(registry, arm.by_digest, str(tmp_path / 'd'))
    for layer in arm.layers:
        assert blobs[layer.digest] == layer.blob


def _skopeo_inspect(host: str, name: str, creds=None, tls_verify=False):
    args = ['inspect', '--raw', '--tls-verify=%s' % str(tls_verify).lower()]
    if creds:
        args += ['--creds', '%s:%s' % creds]
    return images.skopeo(*args, 'docker://%s/%s' % (host, name), check=False)


def test_basic_registry_checks_credentials(basic_registry, repo_name):
    pushed = images.push_image(basic_registry, repo_name + ':t', [images.make_layer(3)])
    ok = _skopeo_inspect(basic_registry.host, repo_name + ':t', basic_registry.creds)
    assert ok.returncode == 0 and ok.stdout == pushed.manifest
    bad = _skopeo_inspect(basic_registry.host, repo_name + ':t', ('tester', 'wrong'))
    assert bad.returncode != 0 and b'unauthorized' in bad.stderr.lower()
    anon = _skopeo_inspect(basic_registry.host, repo_name + ':t')
    assert anon.returncode != 0


def test_token_registry_checks_credentials(token_registry, repo_name):
    pushed = images.push_image(token_registry, repo_name + ':t', [images.make_layer(4)])
    ok = _skopeo_inspect(token_registry.host, repo_name + ':t', token_registry.creds)
    assert ok.returncode == 0 and ok.stdout == pushed.manifest
    bad = _skopeo_inspect(token_registry.host, repo_name + ':t', ('tester', 'wrong'))
    assert bad.returncode != 0
    anon = _skopeo_inspect(token_registry.host, repo_name + ':t')
    assert anon.returncode != 0
    # Anonymous callers may pull under public/ but not push there.
    public = reg.PUBLIC_PREFIX + repo_name.split('/', 1)[1]
    images.push_image(token_registry, public + ':t', [images.make_layer(5)])
    assert _skopeo_inspect(token_registry.host, public + ':t').returncode == 0
    anon_reg = reg.Registry(None, False)
    anon_reg.port = token_registry.port
    with pytest.raises(RuntimeError):
        images.push_image(anon_reg, public + ':other', [images.make_layer(6)])
    token = token_registry.token_server
    assert any('scope=repository' in r['path'] for r in token.requests)


def test_tls_registry_verifies(tls_registry, repo_name):
    pushed = images.push_image(tls_registry, repo_name + ':t', [images.make_layer(9)])
    url = '%s/v2/%s/manifests/t' % (tls_registry.url, repo_name)
    req = urllib.request.Request(url, headers={'Accept': images.DOCKER_MANIFEST})
    ctx = ssl.create_default_context(cafile=tls_registry.ca_path)
    with urllib.request.urlopen(req, context=ctx) as resp:
        assert resp.read() == pushed.manifest
    with pytest.raises(urllib.error.URLError) as e:
        urllib.request.urlopen(req, context=ssl.create_default_context())
    assert 'CERTIFICATE_VERIFY_FAILED' in str(e.value)


def test_access_log_lists_blob_gets(registry, repo_name, tmp_path):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(10)])
    mark = registry.mark()
    images.skopeo_dir(registry, pushed.by_tag, str(tmp_path / 'd'))
    gets = registry.blob_gets(mark)
    assert '/v2/%s/blobs/%s' % (repo_name, pushed.layers[0].digest) in gets
    assert ('GET', '/v2/%s/manifests/t' % repo_name) in registry.requests_since(mark)


def _get(host: str, path: str, headers=None):
    h, port = host.rsplit(':', 1)
    conn = http.client.HTTPConnection(h, int(port), timeout=10)
    conn.request('GET', path, headers=headers or {})
    resp = conn.getresponse()
    try:
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_proxy_faults(basic_registry, repo_name):
    pushed = images.push_image(basic_registry, repo_name + ':t',
                               [images.make_layer(11, 4000)])
    layer = pushed.layers[0]
    p = proxy_mod.start_proxy(basic_registry)
    try:
        auth = {'Authorization': basic_registry.basic_auth_header()}
        path = '/v2/%s/blobs/%s' % (repo_name, layer.digest)
        status, _, body = _get(p.host.replace('localhost', '127.0.0.1'), path, auth)
        assert status == 200 and body == layer.blob
        p.corrupt_blob(layer.digest)
        status, _, body = _get(p.host, path, auth)
        assert status == 200 and len(body) == len(layer.blob) and body != layer.blob
        fake = b'{"schemaVersion": 2}'
        p.replace_manifest(pushed.digest, fake)
        status, _, body = _get(p.host, '/v2/%s/manifests/%s' % (repo_name, pushed.digest),
                               auth)
        assert status == 200 and body == fake
        p.redirect_blobs()
        status, headers, _ = _get(p.host, path, auth)
        assert status == 307 and headers['Location'].startswith('http://127.0.0.1:')
        status, _, body = _get(p.origin_host, path)
        assert status == 200 and body == layer.blob
        assert 'Authorization' not in p.origin_requests[-1][2]
        p.redirect_blobs(False)
        p.drop_blob(layer.digest, after=10)
        with pytest.raises(http.client.IncompleteRead):
            _get(p.host, path, auth)
        assert p.count('GET', '/blobs/') == 4
    finally:
        p.stop()


def test_credential_helper_script(tmp_path):
    path = reg.credential_helper(str(tmp_path), 'fixture', 'alice', "s3cr'et")
    out = subprocess.run([path, 'get'], input='localhost:5000', capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == {'Username': 'alice', 'Secret': "s3cr'et"}
    assert (tmp_path / 'fixture.calls').read_text() == 'localhost:5000\n'
    cfg = reg.docker_config(str(tmp_path / 'cfg'), auths={'localhost:1': ('u', 'p')},
                            cred_helpers={'localhost:2': 'fixture'})
    data = json.load(open(os.path.join(cfg, 'config.json')))
    assert base64.b64decode(data['auths']['localhost:1']['auth']) == b'u:p'
    assert data['credHelpers'] == {'localhost:2': 'fixture'}
