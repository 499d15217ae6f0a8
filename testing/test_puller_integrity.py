"""puller behind a tampering proxy: verification, dropped connections, redirects."""
import glob
import json
import os
import signal
import time

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import push_helpers as ph
from containerregistry.testing import registry as reg
from containerregistry.testing.push_helpers import foreign_registry  # noqa: F401 (fixture)


@pytest.fixture
def proxy(registry):
    p = proxy_mod.start_proxy(registry)
    yield p
    p.stop()


def _via(proxy, pushed, by_digest=False):
    ref = '@' + pushed.digest if by_digest else ':' + pushed.tag
    return '%s/%s%s' % (proxy.host, pushed.repo, ref)


def test_through_proxy_untampered(registry, proxy, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(400)])
    pull.assert_pulled(pull(_via(proxy, pushed)), pushed)
    assert proxy.count('GET', '/blobs/' + pushed.layers[0].digest) == 1


@pytest.mark.parametrize('which', [0, 2])
def test_corrupted_layer(registry, proxy, repo_name, pull, which):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(410 + i) for i in range(3)])
    bad = pushed.layers[which].digest
    proxy.corrupt_blob(bad)
    line = pull.assert_failed(pull(_via(proxy, pushed)))
    assert 'digest mismatch' in line.lower(), line
    assert bad in line


def test_corrupted_config(registry, proxy, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(420)])
    proxy.corrupt_blob(pushed.config_digest)
    line = pull.assert_failed(pull(_via(proxy, pushed)))
    assert 'digest mismatch' in line.lower() and pushed.config_digest in line, line


@pytest.mark.parametrize('fmt', ['docker', 'oci'])
def test_tampered_manifest_by_digest(registry, proxy, repo_name, pull, fmt):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(430)],
                               fmt=fmt)
    other = images.push_image(registry, repo_name + ':other', [images.make_layer(431)],
                              fmt=fmt)
    proxy.replace_manifest(pushed.digest, other.manifest)
    line = pull.assert_failed(pull(_via(proxy, pushed, by_digest=True)))
    assert 'digest mismatch' in line.lower(), line


@pytest.mark.parametrize('fmt', ['fast', 'oci'])
def test_failed_pull_removes_the_directory_it_made(registry, proxy, repo_name,
                                                   pull, tmp_path, fmt):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(435)])
    proxy.corrupt_blob(pushed.layers[0].digest)
    made = str(tmp_path / 'made-by-the-pull')
    pull.assert_failed(pull(_via(proxy, pushed), '--format', fmt, directory=made),
                       'digest mismatch')
    assert not os.path.lexists(made)
    kept = pull.new_dir()
    os.makedirs(kept)
    pull.assert_failed(pull(_via(proxy, pushed), '--format', fmt, directory=kept),
                       'digest mismatch')
    assert os.path.isdir(kept)


def test_a_failing_layer_ends_the_pull_without_waiting_for_the_rest(
        registry, proxy, repo_name, pull):
    """The puller fetches 8 layers at a time. With 7 of them stuck on the
    network and the 8th damaged, the pull fails on the damaged one within
    the helper's grace (10 s), long before the stuck reads would time out
    (30 s without progress), and the 4 layers not started are never asked
    for."""
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(470 + i) for i in range(12)])
    digests = [layer.digest for layer in pushed.layers]
    for digest in digests[:7]:
        proxy.stall_blob(digest, after=16)
    proxy.corrupt_blob(digests[7])
    start = time.monotonic()
    line = pull.assert_failed(pull(_via(proxy, pushed)), 'digest mismatch')
    assert time.monotonic() - start < 25
    assert digests[7] in line, line
    assert [proxy.count('GET', '/blobs/' + d) for d in digests[8:]] == [0] * 4


def test_a_failing_layer_stops_the_downloads_running(registry, proxy,
                                                     repo_name, pull):
    """A download still running when another layer fails stops at its next
    chunk (1 MiB): the pull fails in seconds, not once the slow layer is in
    (21 s at 400 kB/s) nor after the 10 s grace."""
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(490, 8 << 20),
                                images.make_layer(491)])
    slow, damaged = (layer.digest for layer in pushed.layers)
    proxy.trickle('GET', '/blobs/' + slow, rate=400_000)
    proxy.corrupt_blob(damaged)
    start = time.monotonic()
    line = pull.assert_failed(pull(_via(proxy, pushed)), 'digest mismatch')
    assert time.monotonic() - start < 8
    assert damaged in line, line


def _lying_manifest(proxy, pushed, change) -> None:
    """Serve PUSHED's manifest changed by CHANGE, with a matching digest."""
    manifest = json.loads(pushed.manifest)
    change(manifest)
    proxy.replace_manifest(pushed.tag, json.dumps(manifest).encode(),
                           consistent_digest=True)


@pytest.mark.parametrize('fmt', ['fast', 'oci'])
def test_digest_that_is_a_path_is_refused(registry, proxy, repo_name, pull,
                                          tmp_path, fmt):
    """Digests become URL paths and file names (OCI layout, cache)."""
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(432)])
    target = tmp_path / 'escaped'
    evil = 'sha256:' + '../' * 16 + str(target).lstrip('/')
    _lying_manifest(proxy, pushed, lambda m: m['layers'][0].update(digest=evil))
    cache = str(tmp_path / 'cache')
    line = pull.assert_failed(pull(_via(proxy, pushed), '--cache', cache,
                                   '--format', fmt))
    assert 'invalid digest' in line and 'layers[0]' in line, line
    assert glob.glob(str(tmp_path / '**' / '*escaped*'), recursive=True) == []
    assert proxy.count('GET', '/blobs/') == 0


@pytest.mark.parametrize('change, needle', [
    (lambda m: m.update(layers=5), 'has no "layers" list'),
    (lambda m: m.pop('config'), 'config is not a JSON object'),
    (lambda m: m['layers'][0].update(size='12'), "layers[0] has a bad size: '12'"),
    (lambda m: m['layers'][0].update(digest='sha512:' + 'ab' * 64),
     'unsupported digest algorithm: sha512:'),
    (lambda m: m['layers'].append('sha256:' + 'ab' * 32),
     'layers[1] is not a JSON object'),
], ids=['layers', 'config', 'size', 'sha512', 'entry'])
def test_malformed_manifest_is_one_clear_line(registry, proxy, repo_name, pull,
                                              change, needle):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(433)])
    _lying_manifest(proxy, pushed, change)
    line = pull.assert_failed(pull(_via(proxy, pushed)),
                              'Error pulling and saving image')
    assert 'the manifest of %s' % _via(proxy, pushed) in line, line
    assert needle in line, line


@pytest.mark.parametrize('announce', [True, False], ids=['announced', 'chunked'])
def test_endless_manifest_is_refused(registry, proxy, repo_name, pull, announce):
    """A registry cannot make the puller hold more than 8 MiB of manifest."""
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(434)])
    proxy.oversize_manifest(pushed.tag, announce)
    line = pull.assert_failed(pull(_via(proxy, pushed)),
                              'Error pulling and saving image', 'too large')
    assert ('10000000000 bytes announced' in line) == announce, line


def test_tampered_index_by_digest(registry, proxy, repo_name, pull):
    index = images.push_index(registry, repo_name + ':multi', fmt='oci', seed=4,
                              platforms=[{'os': 'linux', 'architecture': 'amd64'},
                                         {'os': 'linux', 'architecture': 'arm64'}])
    other = images.push_index(registry, repo_name + ':other', fmt='oci', seed=5,
                              platforms=[{'os': 'linux', 'architecture': 'amd64'}])
    proxy.replace_manifest(index.digest, other.manifest)
    name = '%s/%s@%s' % (proxy.host, index.repo, index.digest)
    line = pull.assert_failed(pull(name))
    assert 'digest mismatch' in line.lower(), line


def test_connection_dropped_mid_blob(registry, proxy, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(440, 30_000), images.make_layer(441)])
    proxy.drop_blob(pushed.layers[0].digest, after=1000)
    proc = pull(_via(proxy, pushed))
    pull.assert_failed(proc)
    assert proxy.count('GET', '/blobs/' + pushed.layers[0].digest) >= 1


@pytest.mark.parametrize('after', [0, 1000])
def test_connection_dropped_once_is_retried(registry, proxy, repo_name, pull, after):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(445, 30_000), images.make_layer(446)])
    proxy.drop_blob(pushed.layers[0].digest, after=after, times=1)
    pull.assert_pulled(pull(_via(proxy, pushed)), pushed)
    assert proxy.count('GET', '/blobs/' + pushed.layers[0].digest) == 2


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_redirect_drops_authorization(request, kind, repo_name, pull, tmp_path):
    registry = request.getfixturevalue(kind + '_registry')
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(450), images.make_layer(451)])
    p = proxy_mod.start_proxy(registry)
    try:
        p.redirect_blobs()
        cfg = reg.docker_config(str(tmp_path / 'cfg'), auths={p.host: registry.creds})
        proc = pull(_via(p, pushed), '--client-config-dir', cfg)
        pull.assert_pulled(proc, pushed)
        blob_paths = [path for _, path, _ in p.origin_requests]
        for layer in pushed.layers:
            assert any(layer.digest in path for path in blob_paths)
        for _, path, headers in p.origin_requests:
            assert not any(k.lower() == 'authorization' for k in headers), (path, headers)
        sent = [h for m, path, h in p.requests if '/blobs/' in path]
        assert sent and all(any(k.lower() == 'authorization' for k in h) for h in sent)
    finally:
        p.stop()


@pytest.mark.parametrize('sig, status, line', [
    (signal.SIGTERM, 143, 'Terminated.\n'),
    (signal.SIGINT, 130, 'Interrupted.\n'),
], ids=['sigterm', 'sigint'])
def test_stopped_during_a_stuck_download(registry, proxy, repo_name, pull,
                                         tool_env, sig, status, line):
    """SIGTERM or Ctrl-C while a blob download hangs on the network: the
    puller ends at once without waiting for it, leaving no file."""
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(450, 30_000),
                                images.make_layer(451)])
    proxy.stall_blob(pushed.layers[0].digest, after=1000)
    out = pull.new_dir()
    proc = pars.terminate_when(
        'puller', ['--name', _via(proxy, pushed), '--directory', out],
        proxy.stalled.is_set, env=tool_env, sig=sig)
    assert proc.returncode == status, proc.stderr
    assert proc.stderr == line
    assert not os.path.lexists(out)  # made by the pull, empty, removed


def test_foreign_layer_is_read_from_its_urls(foreign_registry, repo_name, pull,
                                             tmp_path):
    """A foreign layer (Windows base images) lives at its `urls`, not in the
    repository: it is fetched there, without credentials, and checked."""
    registry = foreign_registry
    elsewhere = images.push_image(registry, repo_name + '-store:t',
                                  [images.make_layer(436)])
    base = elsewhere.layers[0]
    store = proxy_mod.start_proxy(registry)
    try:
        url = 'http://%s/v2/%s/blobs/%s' % (store.origin_host, elsewhere.repo,
                                           base.digest)
        foreign = {'mediaType': ph.DOCKER_FOREIGN, 'size': len(base.blob),
                   'digest': base.digest, 'urls': [url]}
        manifest = str(tmp_path / 'base-manifest.json')
        with open(manifest, 'w') as f:
            json.dump({'schemaVersion': 2, 'mediaType': images.DOCKER_MANIFEST,
                       'config': {'mediaType': images.DOCKER_CONFIG, 'size': 1,
                                  'digest': 'sha256:' + 'c0' * 32},
                       'layers': [foreign]}, f)
        disk = ph.write_disk_image(str(tmp_path / 'img'), [images.make_layer(437)],
                                   base_diff_ids=[base.diff_id])
        name = '%s/%s:latest' % (registry.host, repo_name)
        pushed = pars.run_tool('pusher', '--name', name, '--manifest', manifest,
                               *disk.args(), env=pull.env)
        ph.published_digest(pushed, name)
        # The repository itself cannot serve the foreign layer.
        status, _, _ = images.Client(registry).request(
            'GET', repo_name, 'blobs/' + base.digest)
        assert status == 404

        proc = pull(name)
        assert proc.returncode == 0, proc.stderr
        files = pull.layout(proc.directory)
        assert files['000.tar.gz'] == base.blob
        assert files['001.tar.gz'] == disk.layers[0].blob
        assert [m for m, path, _ in store.origin_requests
                if base.digest in path] == ['GET']

    finally:
        store.stop()
    # The store is gone: both places fail, and the line says so.
    line = pull.assert_failed(pull(name), base.digest)
    assert 'none of its URLs served it' in line and url in line, line
