"""puller end to end against a real registry: single images, layout, errors."""
import os

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import registry as reg


@pytest.mark.parametrize('fmt', ['docker', 'oci'])
def test_pull_by_tag(registry, repo_name, pull, fmt):
    tars = [images.make_layer(100), images.make_layer(101, 5000, kind='text'),
            images.make_layer(102, 300)]
    pushed = images.push_image(registry, repo_name + ':v1', tars, fmt=fmt)
    proc = pull(pushed.by_tag)
    pull.assert_pulled(proc, pushed)
    assert proc.stdout == ''


@pytest.mark.parametrize('fmt', ['docker', 'oci'])
def test_pull_by_digest(registry, repo_name, pull, fmt):
    pushed = images.push_image(registry, repo_name + ':v1',
                               [images.make_layer(110), images.make_layer(111)], fmt=fmt)
    pull.assert_pulled(pull(pushed.by_digest), pushed)


def test_directory_is_created(registry, repo_name, pull, tmp_path):
    pushed = images.push_image(registry, repo_name + ':v1', [images.make_layer(120)])
    target = str(tmp_path / 'not' / 'yet' / 'there')
    pull.assert_pulled(pull(pushed.by_tag, directory=target), pushed)


def test_repull_into_same_directory(registry, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':v1', [images.make_layer(121)])
    first = pull(pushed.by_tag)
    pull.assert_pulled(first, pushed)
    pull.assert_pulled(pull(pushed.by_tag, directory=first.directory), pushed)


def test_many_layers_keep_order(registry, repo_name, pull):
    tars = [images.make_layer(200 + i, 100 + 37 * i) for i in range(12)]
    pushed = images.push_image(registry, repo_name + ':twelve', tars)
    proc = pull(pushed.by_tag)
    pull.assert_pulled(proc, pushed)
    names = sorted(n for n in os.listdir(proc.directory) if n.endswith('.tar.gz'))
    assert names == ['%03d.tar.gz' % i for i in range(12)]
    with open(os.path.join(proc.directory, '000.tar.gz'), 'rb') as f:
        assert images.sha256(f.read()) == pushed.layers[0].digest


def test_repeated_layer(registry, repo_name, pull):
    a, b = images.make_layer(130), images.make_layer(131)
    pushed = images.push_image(registry, repo_name + ':dup', [a, b, a])
    pull.assert_pulled(pull(pushed.by_tag), pushed)


def test_larger_layer(registry, repo_name, pull):
    pushed = images.push_image(registry, repo_name + ':big',
                               [images.make_layer(140, 600_000), images.make_layer(141)])
    pull.assert_pulled(pull(pushed.by_tag), pushed)


@pytest.mark.parametrize('fmt', ['docker', 'oci'])
def test_zero_layers(registry, repo_name, pull, fmt):
    pushed = images.push_image(registry, repo_name + ':empty', [], fmt=fmt)
    assert images.skopeo_inspect_raw(registry, pushed.by_tag) == pushed.manifest
    pull.assert_pulled(pull(pushed.by_tag), pushed)


@pytest.mark.parametrize('fmt', ['docker', 'oci'])
def test_skopeo_oracle(registry, repo_name, pull, fmt, tmp_path):
    tars = [images.make_layer(150, 4000), images.make_layer(151, kind='text')]
    pushed = images.push_image(registry, repo_name + ':oracle', tars, fmt=fmt)
    proc = pull(pushed.by_tag)
    assert proc.returncode == 0, proc.stderr
    files = pull.layout(proc.directory)
    blobs = images.skopeo_dir(registry, pushed.by_tag, str(tmp_path / 'skopeo'))
    layers = sorted(n for n in files if n.endswith('.tar.gz'))
    assert len(layers) == len(tars)
    for name in layers:
        digest = 'sha256:' + files[name[:3] + '.sha256'].decode()
        assert images.sha256(files[name]) == digest
        assert blobs[digest] == files[name]
    assert files['manifest.json'] == images.skopeo_inspect_raw(registry, pushed.by_tag)
    assert files['config.json'] == images.skopeo_inspect_raw(registry, pushed.by_tag,
                                                             config=True)
    assert files['digest'] == images.sha256(files['manifest.json']).encode()


def test_missing_name_is_usage_error(pull, tmp_path, tool_env):
    proc = pars.run_tool('puller', '--directory', str(tmp_path / 'x'), env=tool_env)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert '--name' in proc.stderr


@pytest.mark.parametrize('name', [
    '{host}/UpperCase:tag',
    '{host}/repo',
    '{host}/repo:bad/tag',
    '{host}/repo@sha256:1234',
    '{host}/r:tag',
    '{host}/repo:' + 'x' * 200,
])
def test_invalid_name(registry, pull, name):
    proc = pull(name.format(host=registry.host))
    pull.assert_failed(proc, 'Invalid')


def test_unknown_tag(registry, repo_name, pull):
    images.push_image(registry, repo_name + ':exists', [images.make_layer(160)])
    proc = pull('%s/%s:nope' % (registry.host, repo_name))
    pull.assert_failed(proc, 'MANIFEST_UNKNOWN')


def test_unknown_digest(registry, repo_name, pull):
    images.push_image(registry, repo_name + ':exists', [images.make_layer(161)])
    proc = pull('%s/%s@sha256:%s' % (registry.host, repo_name, 'ab' * 32))
    pull.assert_failed(proc, 'MANIFEST_UNKNOWN')


def test_registry_down(pull):
    proc = pull('localhost:%d/some/repo:tag' % reg.free_port())
    pull.assert_failed(proc, 'Connection refused')


@pytest.fixture(scope='module')
def oracle_index(registry):
    return images.push_index(registry, 'test/oracle-index:multi', fmt='docker', seed=3)


@pytest.mark.parametrize('plat', [
    {'os': 'linux', 'architecture': 'amd64'},
    {'os': 'linux', 'architecture': 'arm', 'variant': 'v7'},
    {'os': 'linux', 'architecture': 'ppc64le'},
], ids=lambda p: '-'.join(p.values()))
def test_skopeo_oracle_index(oracle_index, registry, pull, tmp_path, plat):
    index = oracle_index
    args = ['--os', plat['os'], '--architecture', plat['architecture']]
    if 'variant' in plat:
        args += ['--variant', plat['variant']]
    proc = pull(index.by_tag, *args)
    assert proc.returncode == 0, proc.stderr
    images.skopeo_dir(registry, index.by_tag, str(tmp_path / 'skopeo'), platform=plat)
    with open(tmp_path / 'skopeo' / 'manifest.json', 'rb') as f:
        chosen = f.read()
    files = pull.layout(proc.directory)
    assert files['manifest.json'] == chosen
    assert files['digest'] == images.sha256(chosen).encode()
