"""The puller never writes an inconsistent image as complete, never deletes
what it did not write, and fetches a damaged blob once more."""
import dataclasses
import json
import os

import pytest

from containerregistry.testing import images
from containerregistry.testing import proxy as proxy_mod


@pytest.fixture
def proxy(registry):
    p = proxy_mod.start_proxy(registry)
    yield p
    p.stop()


def _with_config(built: images.Built, config: bytes) -> images.Built:
    """BUILT with CONFIG as its config blob (the manifest names it)."""
    manifest = json.loads(built.manifest)
    manifest['config'].update(digest=images.sha256(config), size=len(config))
    return dataclasses.replace(built, config=config,
                               manifest=json.dumps(manifest).encode())


def _inconsistent(kind: str) -> images.Built:
    built = images.build_image([images.make_layer(880), images.make_layer(881)])
    config = json.loads(built.config)
    if kind == 'fewer diff_ids':
        config['rootfs']['diff_ids'] = config['rootfs']['diff_ids'][:1]
        return _with_config(built, json.dumps(config).encode())
    if kind == 'more diff_ids':
        config['rootfs']['diff_ids'].append(config['rootfs']['diff_ids'][0])
        return _with_config(built, json.dumps(config).encode())
    return _with_config(built, b'["not", "an", "object"]')


@pytest.mark.parametrize('kind,needle', [
    ('fewer diff_ids', 'lists 1 layer in rootfs.diff_ids, but the image has 2'),
    ('more diff_ids', 'lists 3 layers in rootfs.diff_ids, but the image has 2'),
    ('list config', 'the config is not a JSON object'),
])
@pytest.mark.parametrize('fmt', ['fast', 'oci'])
def test_inconsistent_image_is_refused(registry, repo_name, pull, kind, needle,
                                       fmt):
    pushed = images.push_built(registry, repo_name + ':bad', _inconsistent(kind))
    proc = pull(pushed.by_tag, '--format', fmt)
    pull.assert_failed(proc, needle)
    if os.path.isdir(proc.directory):
        assert 'index.json' not in os.listdir(proc.directory)


@pytest.mark.parametrize('version', ['3', '"2"', 'true', 'null'])
def test_unknown_schema_version_is_refused(registry, proxy, repo_name, pull,
                                           version):
    pushed = images.push_image(registry, repo_name + ':v', [images.make_layer(882)])
    manifest = json.loads(pushed.manifest)
    body = json.dumps(manifest).replace(
        '"schemaVersion": 2', '"schemaVersion": %s' % version).encode()
    proxy.replace_manifest('v', body, consistent_digest=True)
    proc = pull('%s/%s:v' % (proxy.host, pushed.repo))
    pull.assert_failed(proc, 'unknown schemaVersion: %s' % version)


def test_unrelated_numbered_files_are_left_alone(registry, repo_name, pull):
    three = images.push_image(registry, repo_name + ':three',
                              [images.make_layer(883 + i) for i in range(3)])
    one = images.push_image(registry, repo_name + ':one', [images.make_layer(886)])
    out = pull.new_dir()
    os.makedirs(out)
    mine = {'007.tar': b'user data', '008.tar.gz': b'more', '009.sha256': b'x',
            '010.tar': b'kept'}
    for name, data in mine.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    assert pull(three.by_tag, directory=out).returncode == 0
    proc = pull(one.by_tag, directory=out)
    assert proc.returncode == 0, proc.stderr
    files = pull.layout(out)
    # Layers 1 and 2 of the first pull are gone; the user's files stay.
    assert set(files) == {'config.json', 'digest', 'manifest.json',
                          '000.tar.gz', '000.sha256'} | set(mine)
    for name, data in mine.items():
        assert files[name] == data
    assert files['000.tar.gz'] == one.layers[0].blob


def test_import_then_pull_replaces_the_tars(registry, repo_name, pull, tmp_path):
    """An earlier save of `NNN.tar` layers (importer) is recognised too."""
    from containerregistry.testing import pars
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(887), images.make_layer(888)])
    archive = str(tmp_path / 'image.tar')
    images.skopeo('copy', '--src-tls-verify=false',
                  'docker://%s' % pushed.by_tag, 'docker-archive:' + archive)
    out = pull.new_dir()
    imported = pars.run_tool('importer', '--tarball', archive, '--directory',
                             out, env=pull.env, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert {'000.tar', '001.tar'} <= set(os.listdir(out))
    with open(os.path.join(out, '005.tar'), 'wb') as f:
        f.write(b'not the importer\'s')
    proc = pull(pushed.by_tag, directory=out)
    assert proc.returncode == 0, proc.stderr
    assert set(os.listdir(out)) == {
        'config.json', 'digest', 'manifest.json', '000.tar.gz', '000.sha256',
        '001.tar.gz', '001.sha256', '005.tar'}


def test_blob_damaged_once_is_fetched_again(registry, proxy, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(889), images.make_layer(890)])
    proxy.corrupt_blob(pushed.layers[1].digest, times=1)
    proxy.corrupt_blob(pushed.config_digest, times=1)
    proc = pull('%s/%s:t' % (proxy.host, pushed.repo))
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    files = pull.layout(proc.directory)
    assert files['001.tar.gz'] == pushed.layers[1].blob
    assert files['config.json'] == pushed.config
    assert proxy.count('GET', '/blobs/' + pushed.layers[1].digest) == 2
    assert proxy.count('GET', '/blobs/' + pushed.config_digest) == 2


@pytest.mark.parametrize('fmt', ['fast', 'oci'])
def test_blob_damaged_every_time_fails_after_two_tries(registry, proxy,
                                                       repo_name, pull, fmt):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(891)])
    proxy.corrupt_blob(pushed.layers[0].digest)
    proc = pull('%s/%s:t' % (proxy.host, pushed.repo), '--format', fmt)
    pull.assert_failed(proc, 'digest mismatch', pushed.layers[0].digest)
    assert proxy.count('GET', '/blobs/' + pushed.layers[0].digest) == 2
