"""pusher.par end to end: what it publishes, what it sends, how it fails.

Inputs are rules_docker's: a config file, `.tar.gz` layers with bare-hex
digest files, optionally a docker-save base tarball or a base manifest with
foreign layers. The expected manifest is computed independently (SPEC §4.3)
and checked against the registry, skopeo and the puller.
"""
import base64
import gzip
import json
import os
import signal
import subprocess

import pytest

from containerregistry.testing import foreign
from containerregistry.testing import forward_proxy
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import push_helpers as ph
from containerregistry.testing import registry as reg
from containerregistry.testing.push_helpers import foreign_registry  # noqa: F401 (fixture)
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)


def _tars(*seeds, size=1200):
    return [images.make_layer(s, size + 37 * (s % 11)) for s in seeds]


def _disk(tools, *seeds, **kw) -> ph.DiskImage:
    return ph.write_disk_image(tools.new_dir('img'), _tars(*seeds), **kw)


def _name(registry, repo, tag='latest'):
    return '%s/%s:%s' % (registry.host, repo, tag)


def _blobs(disk: ph.DiskImage):
    return [images.sha256(disk.config)] + [l.digest for l in disk.layers]


# Round trips.

@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_round_trip(registry, repo_name, tools, tmp_path, oci):
    disk = _disk(tools, 1, 2, 3)
    name = _name(registry, repo_name)
    extra = ['--oci'] if oci else []
    proc = tools.pusher(name, *disk.args(), *extra)
    digest = ph.published_digest(proc, name)
    assert proc.stdout == '%s was published with digest: %s\n' % (name, digest)
    assert proc.stderr.strip() == ''
    assert digest == disk.digest(oci=oci)
    assert ph.tag_digest(registry, repo_name, 'latest') == digest
    raw = images.skopeo_inspect_raw(registry, name)
    assert raw == disk.manifest(oci=oci)
    assert images.skopeo_inspect_raw(registry, name, config=True) == disk.config
    blobs = images.skopeo_dir(registry, name, str(tmp_path / 'skopeo'))
    assert blobs == dict([(images.sha256(disk.config), disk.config)] +
                         [(l.digest, l.blob) for l in disk.layers])


def test_oci_media_types(registry, repo_name, tools):
    disk = _disk(tools, 5, 6)
    name = _name(registry, repo_name)
    tools.push(name, *disk.args(), '--oci')
    body, ctype = images.Client(registry).manifest(repo_name, 'latest')
    manifest = json.loads(body)
    assert ctype == images.OCI_MANIFEST
    assert manifest['mediaType'] == 'application/vnd.oci.image.manifest.v1+json'
    assert manifest['config']['mediaType'] == 'application/vnd.oci.image.config.v1+json'
    assert [l['mediaType'] for l in manifest['layers']] == [
        'application/vnd.oci.image.layer.v1.tar+gzip'] * 2


@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_pull_back_with_puller(registry, repo_name, tools, pull, oci):
    disk = _disk(tools, 10, 11, 12)
    name = _name(registry, repo_name, 'v1')
    tools.push(name, *disk.args(), *(['--oci'] if oci else []))
    pull.assert_pulled(pull(name), disk.pushed(registry, repo_name, 'v1', oci=oci))


def test_rules_docker_argv(registry, repo_name, tools, pull):
    """container_push's launcher: `--flag=value` words, digests before layers."""
    disk = _disk(tools, 15, 16)
    name = _name(registry, repo_name, 'rd')
    proc = tools.pusher(name, *disk.args(equals=True), '--stderrthreshold', 'ERROR')
    assert ph.published_digest(proc, name) == disk.digest()
    proc = tools.pusher(name, '--oci', *disk.args(equals=True))
    assert ph.published_digest(proc, name) == disk.digest(oci=True)


def test_name_given_with_equals(registry, repo_name, tools):
    disk = _disk(tools, 17)
    name = _name(registry, repo_name)
    proc = pars.run_tool('pusher', '--name=' + name, *disk.args(), env=tools.env)
    assert ph.published_digest(proc, name) == disk.digest()


def test_zero_layers(registry, repo_name, tools):
    disk = ph.write_disk_image(tools.new_dir('img'), [])
    name = _name(registry, repo_name)
    digest = tools.push(name, '--config', disk.config_path)
    assert digest == disk.digest()
    assert images.skopeo_inspect_raw(registry, name) == disk.manifest()


def test_repeated_layer(registry, repo_name, tools, pull):
    a, b = _tars(20, 21)
    disk = ph.write_disk_image(tools.new_dir('img'), [a, b, a])
    name = _name(registry, repo_name)
    assert tools.push(name, *disk.args()) == disk.digest()
    pull.assert_pulled(pull(name), disk.pushed(registry, repo_name, 'latest'))


def test_many_layers_and_a_larger_one(registry, repo_name, tools, pull):
    tars = _tars(*range(30, 40), size=300) + [images.make_layer(40, 700_000)]
    disk = ph.write_disk_image(tools.new_dir('img'), tars)
    name = _name(registry, repo_name)
    assert tools.push(name, *disk.args()) == disk.digest()
    pull.assert_pulled(pull(name), disk.pushed(registry, repo_name, 'latest'))


def test_config_bytes_are_kept(registry, repo_name, tools):
    """UTF-8 configs are pushed as given; the size is the byte length."""
    diff_ids = [images.layer_from_tar(t).diff_id for t in _tars(45)]
    config = json.loads(ph.config_bytes(diff_ids, {'author': 'Zoë Ünïcødé ☃'}))
    raw = json.dumps(config, ensure_ascii=False, indent=1).encode('utf8')
    assert len(raw) != len(raw.decode('utf8'))
    disk = ph.write_disk_image(tools.new_dir('img'), _tars(45), config=raw)
    name = _name(registry, repo_name)
    assert tools.push(name, *disk.args()) == disk.digest()
    assert images.skopeo_inspect_raw(registry, name, config=True) == raw


def test_crlf_config_is_read_as_text(registry, repo_name, tools, pull):
    """Configs are read in text mode (SPEC §4.3), so CRLF becomes LF."""
    lf = ph.config_bytes([images.layer_from_tar(t).diff_id for t in _tars(46)])
    crlf = lf.replace(b'\n', b'\r\n')
    disk = ph.write_disk_image(tools.new_dir('img'), _tars(46), config=crlf)
    name = _name(registry, repo_name)
    digest = tools.push(name, *disk.args())
    assert digest == images.sha256(ph.expected_manifest(lf, disk.layers))
    assert images.skopeo_inspect_raw(registry, name, config=True) == lf


# docker-save tarballs as the base.

@pytest.fixture
def base_tarball(registry, repo_name, tools):
    """(PushedImage, path of its docker-save tarball made by skopeo)."""
    tars = _tars(50, 51)
    pushed = images.push_image(registry, repo_name + '-base:b', tars)
    path = os.path.join(tools.new_dir('tarball'), 'base.tar')
    ph.save_tarball(registry, pushed.by_tag, path, 'base/image:b')
    return pushed, path


def _tarball_layers(pushed):
    """The base layers as the library recompresses them (SPEC §4.4)."""
    out = []
    for layer in pushed.layers:
        blob = ph.upstream_gzip(layer.tar)
        out.append(images.Layer(tar=layer.tar, blob=blob, digest=images.sha256(blob),
                                diff_id=layer.diff_id, media_type=images.DOCKER_LAYER))
    return out


def test_tarball_only(registry, repo_name, tools, pull, base_tarball):
    pushed, path = base_tarball
    name = _name(registry, repo_name, 'fromtar')
    digest = tools.push(name, '--tarball', path)
    layers = _tarball_layers(pushed)
    expected = ph.expected_manifest(pushed.config, layers)
    assert digest == images.sha256(expected)
    assert images.skopeo_inspect_raw(registry, name) == expected
    assert images.skopeo_inspect_raw(registry, name, config=True) == pushed.config
    image = images.PushedImage(registry=registry, repo=repo_name, tag='fromtar',
                               digest=digest, manifest=expected,
                               media_type=images.DOCKER_MANIFEST, config=pushed.config,
                               config_digest=pushed.config_digest, layers=layers)
    proc = pull(name)
    pull.assert_pulled(proc, image)
    for i, layer in enumerate(pushed.layers):
        with gzip.open(os.path.join(proc.directory, '%03d.tar.gz' % i)) as f:
            assert f.read() == layer.tar


def test_tarball_plus_layers(registry, repo_name, tools, pull, base_tarball):
    pushed, path = base_tarball
    base_layers = _tarball_layers(pushed)
    disk = _disk(tools, 52, 53, base_diff_ids=[l.diff_id for l in base_layers])
    name = _name(registry, repo_name, 'ontop')
    digest = tools.push(name, '--tarball', path, *disk.args())
    base_desc = [ph.descriptor(images.DOCKER_LAYER, l.blob) for l in base_layers]
    expected = disk.manifest(base_layers=base_desc)
    assert digest == images.sha256(expected)
    assert images.skopeo_inspect_raw(registry, name) == expected
    image = images.PushedImage(registry=registry, repo=repo_name, tag='ontop',
                               digest=digest, manifest=expected,
                               media_type=images.DOCKER_MANIFEST, config=disk.config,
                               config_digest=images.sha256(disk.config),
                               layers=base_layers + disk.layers)
    pull.assert_pulled(pull(name), image)


def test_tarball_with_own_config_only(registry, repo_name, tools, base_tarball):
    """--tarball with --config and no layers: the config replaces the tarball's."""
    pushed, path = base_tarball
    base_layers = _tarball_layers(pushed)
    config = ph.config_bytes([l.diff_id for l in base_layers], {'author': 'me'})
    cpath = os.path.join(tools.new_dir('cfg'), 'config.json')
    with open(cpath, 'wb') as f:
        f.write(config)
    name = _name(registry, repo_name, 'cfg')
    digest = tools.push(name, '--tarball', path, '--config', cpath)
    expected = ph.expected_manifest(config, [], base_layers=[
        ph.descriptor(images.DOCKER_LAYER, l.blob) for l in base_layers])
    assert digest == images.sha256(expected)
    assert images.skopeo_inspect_raw(registry, name, config=True) == config


# Foreign layers from a base manifest.

FOREIGN = {'mediaType': ph.DOCKER_FOREIGN, 'size': 123456,
           'digest': 'sha256:' + 'f0' * 32,
           'urls': ['https://example.invalid/base/layer.tar.gz']}


def _foreign_base(tools, foreign=None) -> str:
    manifest = {'schemaVersion': 2, 'mediaType': images.DOCKER_MANIFEST,
                'config': {'mediaType': images.DOCKER_CONFIG, 'size': 10,
                           'digest': 'sha256:' + 'c0' * 32},
                'layers': [foreign or FOREIGN,
                           {'mediaType': images.DOCKER_LAYER, 'size': 20,
                                     'digest': 'sha256:' + 'd0' * 32}]}
    path = os.path.join(tools.new_dir('base'), 'manifest.json')
    with open(path, 'w') as f:
        json.dump(manifest, f, indent=2)
    return path


@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_foreign_layers_from_manifest(foreign_registry, repo_name, tools, oci):
    registry = foreign_registry
    base = _foreign_base(tools)
    disk = _disk(tools, 60, base_diff_ids=['sha256:' + 'e0' * 32])
    name = _name(registry, repo_name)
    mark = registry.mark()
    extra = ['--oci'] if oci else []
    digest = tools.push(name, '--manifest', base, *disk.args(), *extra)
    expected = disk.manifest(oci=oci, base_layers=[FOREIGN])
    assert digest == images.sha256(expected)
    assert images.skopeo_inspect_raw(registry, name) == expected
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert FOREIGN['digest'] not in ' '.join(p for _, p in reqs)
    assert sorted(ph.uploaded_digests(reqs)) == sorted(_blobs(disk))


# What goes over the wire.

def test_second_push_uploads_nothing(registry, repo_name, tools):
    disk = _disk(tools, 70, 71)
    name = _name(registry, repo_name)
    first = tools.push(name, *disk.args())
    mark = registry.mark()
    assert tools.push(name, *disk.args()) == first
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.uploads(reqs) == []
    assert ph.manifest_puts(reqs) == []


def test_same_image_new_tag_puts_only_manifest(registry, repo_name, tools):
    disk = _disk(tools, 72, 73)
    tools.push(_name(registry, repo_name, 'a'), *disk.args())
    mark = registry.mark()
    tools.push(_name(registry, repo_name, 'b'), *disk.args())
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.uploads(reqs) == []
    assert ph.manifest_puts(reqs) == ['/v2/%s/manifests/b' % repo_name]
    assert ph.tag_digest(registry, repo_name, 'b') == disk.digest()


def test_shared_layers_are_not_uploaded_again(registry, repo_name, tools):
    base = _disk(tools, 74, 75)
    tools.push(_name(registry, repo_name, 'base'), *base.args())
    top = _disk(tools, 74, 75, 76)
    mark = registry.mark()
    tools.push(_name(registry, repo_name, 'top'), *top.args())
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert sorted(ph.uploaded_digests(reqs)) == sorted(
        [images.sha256(top.config), top.layers[2].digest])
    assert len([m for m, _ in ph.uploads(reqs) if m == 'POST']) == 2


def test_first_push_uploads_every_blob_once(registry, repo_name, tools):
    disk = _disk(tools, 77, 78, 79)
    mark = registry.mark()
    tools.push(_name(registry, repo_name), *disk.args())
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert sorted(ph.uploaded_digests(reqs)) == sorted(_blobs(disk))
    assert ph.manifest_puts(reqs) == ['/v2/%s/manifests/latest' % repo_name]
    assert reqs[-1][0] == 'PUT' and '/manifests/' in reqs[-1][1]
    assert registry.blob_gets(mark) == []


def test_push_replaces_tag(registry, repo_name, tools):
    first, second = _disk(tools, 80), _disk(tools, 81)
    name = _name(registry, repo_name)
    tools.push(name, *first.args())
    assert tools.push(name, *second.args()) == second.digest()
    assert ph.tag_digest(registry, repo_name, 'latest') == second.digest()


# Digest references.

@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_push_to_a_digest_reference(registry, repo_name, tools, oci):
    """The digest digester.par computes names the push; no tag is made."""
    disk = _disk(tools, 85)
    flags = ['--oci'] if oci else []
    digest = tools.digest(*disk.args(), *flags)
    assert digest == disk.digest(oci=oci)
    name = '%s/%s@%s' % (registry.host, repo_name, digest)
    assert tools.push(name, *disk.args(), *flags) == digest
    manifest, _ = images.Client(registry).manifest(repo_name, digest)
    assert manifest == disk.manifest(oci=oci)
    assert ph.tags(registry, repo_name) == []
    # Again: the manifest is there, nothing is sent.
    mark = registry.mark()
    assert tools.push(name, *disk.args(), *flags) == digest
    assert [m for m, _ in ph.repo_requests(registry, mark, repo_name)
            if m not in ('GET', 'HEAD')] == []


def test_digest_reference_of_another_image_is_refused(registry, repo_name, tools):
    disk, other = _disk(tools, 86), _disk(tools, 87)
    name = '%s/%s@%s' % (registry.host, repo_name, other.digest())
    mark = registry.mark()
    proc = tools.pusher(name, *disk.args())
    line = ph.one_line_failure(proc, name, "the image's digest is %s, not the one named"
                               % disk.digest())
    assert 'Error publishing' in line
    assert ph.repo_requests(registry, mark, repo_name) == []


# Stamping.

def _stamp(tools, text: str) -> str:
    path = os.path.join(tools.new_dir('stamp'), 'status.txt')
    with open(path, 'w') as f:
        f.write(text)
    return path


def test_stamp_substitution(registry, repo_name, tools):
    disk = _disk(tools, 90)
    stable = _stamp(tools, 'BUILD_USER alice\nSTABLE_REPO %s\n' % repo_name)
    volatile = _stamp(tools, 'BUILD_TIMESTAMP 1577836800\nTAG_WITH_SPACE a b\n')
    raw = '%s/{STABLE_REPO}:{BUILD_USER}-{BUILD_TIMESTAMP}' % registry.host
    resolved = '%s/%s:alice-1577836800' % (registry.host, repo_name)
    proc = tools.pusher(raw, *disk.args(), '--stamp-info-file', stable,
                        '--stamp-info-file=' + volatile)
    digest = ph.published_digest(proc, resolved)
    assert '%s was resolved to %s' % (raw, resolved) in proc.stdout.splitlines()
    assert ph.tag_digest(registry, repo_name, 'alice-1577836800') == digest


def test_stdout_that_cannot_take_the_result_line(registry, repo_name, tools):
    """The digest line is the pusher's result: a full stdout is an error
    (one line, status 1), not a traceback."""
    disk = _disk(tools, 99)
    with open('/dev/full', 'w') as full:
        proc = subprocess.run(
            pars.tool_command('pusher') + ['--name', _name(registry, repo_name)]
            + disk.args(), env=tools.env, stdout=full, stderr=subprocess.PIPE,
            text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].endswith(
        'cannot write to standard output: No space left on device'), lines


def test_stamp_duplicate_key_last_wins(registry, repo_name, tools):
    disk = _disk(tools, 91)
    one = _stamp(tools, 'TAG first\n')
    two = _stamp(tools, 'TAG second\n')
    raw = '%s/%s:{TAG}' % (registry.host, repo_name)
    proc = tools.pusher(raw, *disk.args(), '--stamp-info-file', one,
                        '--stamp-info-file', two)
    ph.published_digest(proc, _name(registry, repo_name, 'second'))
    assert 'WARNING: Duplicate value for key "TAG": using "second"' in proc.stdout
    assert ph.tags(registry, repo_name) == ['second']


def test_stamp_files_without_braces(registry, repo_name, tools):
    disk = _disk(tools, 92)
    stamp = _stamp(tools, 'BUILD_USER alice\n')
    name = _name(registry, repo_name)
    proc = tools.pusher(name, *disk.args(), '--stamp-info-file', stamp)
    ph.published_digest(proc, name)
    assert '%s was resolved to %s' % (name, name) in proc.stdout.splitlines()


def test_no_stamp_files_no_resolved_line(registry, repo_name, tools):
    disk = _disk(tools, 93)
    name = _name(registry, repo_name)
    proc = tools.pusher(name, *disk.args())
    ph.published_digest(proc, name)
    assert 'was resolved to' not in proc.stdout


def test_stamp_unknown_key(registry, repo_name, tools):
    disk = _disk(tools, 94)
    stamp = _stamp(tools, 'BUILD_USER alice\n')
    raw = '%s/%s:{UNKNOWN}' % (registry.host, repo_name)
    mark = registry.mark()
    proc = tools.pusher(raw, *disk.args(), '--stamp-info-file', stamp)
    ph.one_line_failure(proc, 'UNKNOWN')
    assert ph.repo_requests(registry, mark, repo_name) == []
    assert ph.tags(registry, repo_name) == []


def test_stray_braces_without_stamp_files(registry, repo_name, tools):
    disk = _disk(tools, 95)
    mark = registry.mark()
    proc = tools.pusher('%s/%s:{X}' % (registry.host, repo_name), *disk.args())
    ph.one_line_failure(proc)
    assert ph.repo_requests(registry, mark, repo_name) == []


def test_stamp_line_without_space(registry, repo_name, tools):
    """A line that is only a key is tolerated (SPEC §7 #17), as Bazel reads
    its own status lines: the name still resolves from the good lines."""
    disk = _disk(tools, 96)
    stamp = _stamp(tools, 'BUILD_USER alice\nNOSPACEHERE\n')
    raw = '%s/%s:{BUILD_USER}' % (registry.host, repo_name)
    proc = tools.pusher(raw, *disk.args(), '--stamp-info-file', stamp)
    assert ph.published_digest(proc, _name(registry, repo_name, 'alice')) \
        == disk.digest()


def test_stamp_file_that_is_not_text(registry, repo_name, tools):
    disk = _disk(tools, 98)
    stamp = os.path.join(tools.new_dir('stamp'), 'binary.txt')
    with open(stamp, 'wb') as f:
        f.write(b'BUILD_USER \xff\xfe\x00alice\n')
    raw = '%s/%s:{BUILD_USER}' % (registry.host, repo_name)
    proc = tools.pusher(raw, *disk.args(), '--stamp-info-file', stamp)
    ph.one_line_failure(proc, 'stamp info file %s is not UTF-8 text' % stamp)
    assert ph.tags(registry, repo_name) == []


def test_missing_stamp_file(registry, repo_name, tools):
    disk = _disk(tools, 97)
    missing = os.path.join(tools.new_dir('stamp'), 'nope.txt')
    proc = tools.pusher(_name(registry, repo_name), *disk.args(),
                        '--stamp-info-file', missing)
    ph.one_line_failure(proc, missing)
    assert ph.tags(registry, repo_name) == []


# Flag checks (SPEC §3.2 step 2).

def test_layer_without_config(registry, repo_name, tools):
    disk = _disk(tools, 100)
    proc = tools.pusher(_name(registry, repo_name), *disk.layer_args())
    ph.one_line_failure(proc, 'Using --layer or --digest requires --config to be '
                              'specified.')


def test_digest_only_without_config(registry, repo_name, tools, base_tarball):
    disk = _disk(tools, 101)
    _, tarball = base_tarball
    proc = tools.pusher(_name(registry, repo_name), '--tarball', tarball,
                        '--digest', disk.digest_paths[0])
    ph.one_line_failure(proc, 'Using --layer or --digest requires --config to be '
                              'specified.')


def test_neither_config_nor_tarball(registry, repo_name, tools):
    proc = tools.pusher(_name(registry, repo_name))
    ph.one_line_failure(proc, 'Either --config or --tarball must be specified.')


def test_count_mismatch(registry, repo_name, tools):
    disk = _disk(tools, 102, 103)
    args = ['--config', disk.config_path, '--digest', disk.digest_paths[0],
            '--layer', disk.layer_paths[0], '--layer', disk.layer_paths[1]]
    proc = tools.pusher(_name(registry, repo_name), *args)
    ph.one_line_failure(proc, '--digest and --layer must have matching lengths.')
    assert ph.tags(registry, repo_name) == []


def test_missing_name_is_usage_error(tools):
    disk = _disk(tools, 104)
    proc = pars.run_tool('pusher', *disk.args(), env=tools.env)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert '--name' in proc.stderr


@pytest.mark.parametrize('name', [
    '{host}/{repo}',
    '{host}/{repo}:bad/tag',
    '{host}/UPPER:tag',
])
def test_invalid_name(registry, repo_name, tools, name):
    disk = _disk(tools, 105)
    name = name.format(host=registry.host, repo=repo_name)
    proc = tools.pusher(name, *disk.args())
    ph.one_line_failure(proc, name)
    assert ph.tags(registry, repo_name) == []


# Bad inputs: one line, exit 1, nothing under the tag.

def _assert_failed_push(registry, repo_name, proc, *needles, old=None):
    name = _name(registry, repo_name)
    line = ph.one_line_failure(proc, 'Error publishing %s' % name, *needles)
    if old is None:
        assert ph.tags(registry, repo_name) == []
    else:
        assert ph.tag_digest(registry, repo_name, 'latest') == old
    return line


@pytest.mark.parametrize('previous', [False, True], ids=['new', 'existing'])
def test_missing_config_file(registry, repo_name, tools, previous):
    old = tools.push(_name(registry, repo_name), *_disk(tools, 109).args()) \
        if previous else None
    disk = _disk(tools, 110)
    os.remove(disk.config_path)
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    ph.one_line_failure(proc, disk.config_path)
    if old:
        assert ph.tag_digest(registry, repo_name, 'latest') == old
    else:
        assert ph.tags(registry, repo_name) == []


def test_unreadable_config(registry, repo_name, tools):
    disk = _disk(tools, 111)
    os.remove(disk.config_path)
    os.mkdir(disk.config_path)
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    ph.one_line_failure(proc, disk.config_path)
    assert ph.tags(registry, repo_name) == []


def test_config_not_json(registry, repo_name, tools):
    disk = _disk(tools, 112)
    with open(disk.config_path, 'w') as f:
        f.write('this is not {json')
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    _assert_failed_push(registry, repo_name, proc)


@pytest.mark.parametrize('previous', [False, True], ids=['new', 'existing'])
def test_missing_layer_file(registry, repo_name, tools, previous):
    old = tools.push(_name(registry, repo_name), *_disk(tools, 113).args()) \
        if previous else None
    disk = _disk(tools, 114, 115)
    os.remove(disk.layer_paths[1])
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    _assert_failed_push(registry, repo_name, proc, disk.layer_paths[1], old=old)


def test_missing_digest_file(registry, repo_name, tools):
    disk = _disk(tools, 116)
    os.remove(disk.digest_paths[0])
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    ph.one_line_failure(proc, disk.digest_paths[0])
    assert ph.tags(registry, repo_name) == []


def test_empty_digest_file(registry, repo_name, tools):
    disk = _disk(tools, 117)
    open(disk.digest_paths[0], 'w').close()
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    ph.one_line_failure(proc, disk.digest_paths[0])
    assert ph.tags(registry, repo_name) == []


@pytest.mark.parametrize('previous', [False, True], ids=['new', 'existing'])
def test_digest_file_does_not_match_layer(registry, repo_name, tools, previous):
    old = tools.push(_name(registry, repo_name), *_disk(tools, 118).args()) \
        if previous else None
    disk = _disk(tools, 119, 120)
    for path, layer in zip(disk.digest_paths, reversed(disk.layers)):
        with open(path, 'w') as f:
            f.write(layer.hex)  # the digest files are swapped
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    _assert_failed_push(registry, repo_name, proc,
                        ('DIGEST_INVALID', 'digest', 'Digest'), old=old)
    for layer in disk.layers:
        assert not ph.blob_exists(registry, repo_name, layer.digest)


def test_digest_file_with_unknown_digest(registry, repo_name, tools):
    disk = _disk(tools, 121)
    with open(disk.digest_paths[0], 'w') as f:
        f.write('ab' * 32)
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    _assert_failed_push(registry, repo_name, proc, ('DIGEST_INVALID', 'digest', 'Digest'))
    assert not ph.blob_exists(registry, repo_name, 'sha256:' + 'ab' * 32)


def test_swapped_layers_over_existing_blobs(registry, repo_name, tools):
    """Blobs the repository has are skipped unread, so the registry cannot
    catch a layer that is not its digest file's blob: the size does."""
    disk = _disk(tools, 123, 124)
    old = tools.push(_name(registry, repo_name), *disk.args())
    assert len(disk.layers[0].blob) != len(disk.layers[1].blob)
    swapped = ['--config', disk.config_path,
               '--digest', disk.digest_paths[0], '--layer', disk.layer_paths[1],
               '--digest', disk.digest_paths[1], '--layer', disk.layer_paths[0]]
    broken = tools.digest(*swapped)
    mark = registry.mark()
    name = _name(registry, repo_name, 'v2')
    proc = tools.pusher(name, *swapped)
    ph.one_line_failure(proc, 'Error publishing %s' % name, tuple(
        'layer %s does not match its digest file %s: the registry already '
        'has %s, which is %d bytes, and the layer is %d bytes' % (
            disk.layer_paths[mine], disk.digest_paths[claimed],
            disk.layers[claimed].digest, len(disk.layers[claimed].blob),
            len(disk.layers[mine].blob))
        for mine, claimed in ((1, 0), (0, 1))))
    assert ph.tags(registry, repo_name) == ['latest']
    assert ph.tag_digest(registry, repo_name, 'latest') == old
    assert ph.tag_digest(registry, repo_name, broken) is None
    assert ph.manifest_puts(ph.repo_requests(registry, mark, repo_name)) == []


@pytest.mark.parametrize('text', [
    'zzzz', 'AB' * 32, 'ab' * 31, 'sha256:' + 'ab' * 33, 'sha512:' + 'ab' * 32,
    'ab' * 32 + ' ab', 'sha256:sha256:' + 'ab' * 32,
])
def test_digest_file_not_a_sha256(registry, repo_name, tools, text):
    disk = _disk(tools, 128)
    with open(disk.digest_paths[0], 'w') as f:
        f.write(text)
    mark = registry.mark()
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    assert ph.repo_requests(registry, mark, repo_name) == []
    _assert_failed_push(registry, repo_name, proc,
                        'digest file %s does not hold a sha256 hex digest (64 '
                        'lowercase hex characters' % disk.digest_paths[0])


def test_digest_file_with_prefix_and_whitespace(registry, repo_name, tools):
    disk = _disk(tools, 129)
    with open(disk.digest_paths[0], 'w') as f:
        f.write(' sha256:%s\r\n' % disk.layers[0].hex)
    assert tools.push(_name(registry, repo_name), *disk.args()) == disk.digest()


@pytest.mark.parametrize('field, value, shown', [
    ('digest', 'sha256:zz', '"sha256:zz"'),
    ('digest', 'sha256:' + 'F0' * 32, '"sha256:' + 'F0' * 32 + '"'),
    ('digest', None, 'null'),
    ('size', 'x', '"x"'),
    ('size', -1, '-1'),
    ('size', 1.5, '1.5'),
])
def test_foreign_layer_descriptor_is_checked(registry, repo_name, tools, field,
                                             value, shown):
    base = _foreign_base(tools, dict(FOREIGN, **{field: value}))
    disk = _disk(tools, 130, base_diff_ids=['sha256:' + 'e0' * 32])
    mark = registry.mark()
    proc = tools.pusher(_name(registry, repo_name), '--manifest', base,
                        *disk.args())
    assert ph.repo_requests(registry, mark, repo_name) == []
    _assert_failed_push(registry, repo_name, proc, 'manifest %s: foreign layer 0'
                        % base, 'has an invalid %s %s' % (field, shown))


@pytest.mark.parametrize('listed', [0, 1, 3])
def test_config_diff_ids_must_match_the_layers(registry, repo_name, tools,
                                               listed):
    """Layers pair with diff_ids by position: a config listing another number
    of layers makes an image no pull can lay out (flatten refuses it)."""
    disk = _disk(tools, 131, 132)
    diff_ids = ([l.diff_id for l in disk.layers] + ['sha256:' + 'e1' * 32])
    with open(disk.config_path, 'wb') as f:
        f.write(ph.config_bytes(diff_ids[:listed]))
    expected = 'config %s lists %d layer%s in rootfs.diff_ids, but the ' \
        'image has 2 (from --layer)' % (disk.config_path, listed,
                                        '' if listed == 1 else 's')
    mark = registry.mark()
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    assert ph.repo_requests(registry, mark, repo_name) == []
    _assert_failed_push(registry, repo_name, proc, expected)
    # The digester reads the image the same way.
    proc = tools.digester(*disk.args())
    ph.one_line_failure(proc, 'Error getting digest', expected)
    assert proc.digest_text is None


def test_config_diff_ids_count_the_foreign_layers(registry, repo_name, tools):
    """The manifest lists the foreign layers first; the config must too."""
    base = _foreign_base(tools)
    disk = _disk(tools, 133)
    proc = tools.pusher(_name(registry, repo_name), '--manifest', base,
                        *disk.args())
    _assert_failed_push(registry, repo_name, proc,
                        'config %s lists 1 layer in rootfs.diff_ids, but the '
                        'image has 2 (1 foreign from --manifest, 1 from '
                        '--layer)' % disk.config_path)


def test_throttling_and_server_errors_are_retried(registry, repo_name, tools):
    """429 (with Retry-After) on an upload POST, 503 on a blob PUT and on the
    manifest PUT: each is tried again and the push lands."""
    p = proxy_mod.start_proxy(registry)
    try:
        disk = _disk(tools, 145, 146)
        p.fail('POST', '/blobs/uploads/', 429, retry_after='1')
        p.fail('PUT', '/blobs/uploads/', 503)
        p.fail('PUT', '/manifests/', 503)
        name = '%s/%s:latest' % (p.host, repo_name)
        assert tools.push(name, *disk.args()) == disk.digest()
        blobs = len(_blobs(disk))
        # One POST refused, one more to start the upload whose PUT failed.
        assert p.count('POST', '/blobs/uploads/') == blobs + 2
        assert p.count('PUT', '/blobs/uploads/') == blobs + 1
        assert p.count('PUT', '/manifests/') == 2
    finally:
        p.stop()
    manifest, config, blobs_back = ph.pull_image(registry, repo_name, 'latest')
    assert manifest == disk.manifest() and config == disk.config
    assert blobs_back == {l.digest: l.blob for l in disk.layers}


@pytest.mark.parametrize('status, attempts', [(503, 4), (400, 1)])
def test_manifest_put_failing_for_good(registry, repo_name, tools, status,
                                       attempts):
    """A 5xx that persists is tried 4 times, a 4xx once; either way one line."""
    p = proxy_mod.start_proxy(registry)
    try:
        disk = _disk(tools, 147)
        p.fail('PUT', '/manifests/', status, times=100)
        name = '%s/%s:latest' % (p.host, repo_name)
        ph.one_line_failure(tools.pusher(name, *disk.args()),
                            'Error publishing %s' % name, str(status),
                            'injected failure')
        assert p.count('PUT', '/manifests/') == attempts
    finally:
        p.stop()
    assert ph.tags(registry, repo_name) == []


@pytest.mark.parametrize('sig, status, line', [
    (signal.SIGTERM, 143, 'Terminated.\n'),
    (signal.SIGINT, 130, 'Interrupted.\n'),
], ids=['sigterm', 'sigint'])
def test_stopped_while_uploads_hang(registry, repo_name, tools, sig, status,
                                    line):
    """SIGTERM or Ctrl-C while several uploads hang on the network: the
    pusher ends at once, without waiting for them (nor for the 10 s grace
    its cleanup gets), and no tag moves."""
    disk = ph.write_disk_image(tools.new_dir('img'),
                               [images.make_layer(148 + i) for i in range(3)])
    p = proxy_mod.start_proxy(registry)
    try:
        p.hang('PUT', '/blobs/uploads/')
        name = '%s/%s:latest' % (p.host, repo_name)
        proc = pars.terminate_when(
            'pusher', ['--name', name] + list(disk.args()),
            lambda: p.count('PUT', '/blobs/uploads/') >= 2, env=tools.env,
            sig=sig, timeout=8)
    finally:
        p.stop()
    assert proc.returncode == status, proc.stderr
    assert proc.stderr == line
    assert ph.tags(registry, repo_name) == []


def test_tarball_not_a_tar(registry, repo_name, tools):
    path = os.path.join(tools.new_dir('bad'), 'x.tar')
    with open(path, 'wb') as f:
        f.write(b'definitely not a tarball' * 40)
    proc = tools.pusher(_name(registry, repo_name), '--tarball', path)
    ph.one_line_failure(proc, path)
    assert ph.tags(registry, repo_name) == []


def test_missing_tarball(registry, repo_name, tools):
    path = os.path.join(tools.new_dir('bad'), 'missing.tar')
    proc = tools.pusher(_name(registry, repo_name), '--tarball', path)
    ph.one_line_failure(proc, path)


def test_registry_down(tools):
    disk = _disk(tools, 122)
    name = 'localhost:%d/some/repo:tag' % reg.free_port()
    proc = tools.pusher(name, *disk.args())
    ph.one_line_failure(proc, 'Error publishing %s' % name, 'Connection refused')


# Credentials.

def _config_dir(tools, registry, password=None):
    return reg.docker_config(tools.new_dir('cfg'), auths={
        registry.host: (registry.username, password or registry.password)})


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_client_config_dir(request, kind, repo_name, tools, pull):
    registry = request.getfixturevalue(kind + '_registry')
    disk = _disk(tools, 130, 131)
    name = _name(registry, repo_name)
    cfg = _config_dir(tools, registry)
    assert tools.push(name, *disk.args(), '--client-config-dir', cfg) == disk.digest()
    manifest, config, blobs = ph.pull_image(registry, repo_name, 'latest')
    assert manifest == disk.manifest() and config == disk.config
    assert blobs == {l.digest: l.blob for l in disk.layers}


def test_docker_config_env(basic_registry, repo_name, tools):
    disk = _disk(tools, 132)
    env = dict(tools.env, DOCKER_CONFIG=_config_dir(tools, basic_registry))
    assert tools.push(_name(basic_registry, repo_name), *disk.args(),
                      env=env) == disk.digest()


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_credential_helper(request, kind, repo_name, tools):
    registry = request.getfixturevalue(kind + '_registry')
    disk = _disk(tools, 133)
    bindir = tools.new_dir('bin')
    reg.credential_helper(bindir, 'crpush', registry.username, registry.password)
    cfg = reg.docker_config(tools.new_dir('cfg'), cred_helpers={registry.host: 'crpush'})
    env = dict(tools.env, PATH=bindir + os.pathsep + tools.env.get('PATH', ''))
    name = _name(registry, repo_name)
    assert tools.push(name, *disk.args(), '--client-config-dir', cfg,
                      env=env) == disk.digest()
    with open(os.path.join(bindir, 'crpush.calls')) as f:
        assert registry.host in f.read()
    assert ph.tag_digest(registry, repo_name, 'latest') == disk.digest()


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_no_credentials(request, kind, repo_name, tools):
    registry = request.getfixturevalue(kind + '_registry')
    disk = _disk(tools, 134)
    proc = tools.pusher(_name(registry, repo_name), *disk.args())
    _assert_failed_push(registry, repo_name, proc, ph.UNAUTHORIZED)


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_wrong_password(request, kind, repo_name, tools):
    registry = request.getfixturevalue(kind + '_registry')
    disk = _disk(tools, 135)
    cfg = _config_dir(tools, registry, password='not-the-password')
    proc = tools.pusher(_name(registry, repo_name), *disk.args(),
                        '--client-config-dir', cfg)
    line = _assert_failed_push(registry, repo_name, proc, ph.UNAUTHORIZED)
    assert 'not-the-password' not in line


def test_anonymous_push_to_public_repo_is_denied(token_registry, repo_name, tools):
    """Anonymous callers may pull public/ repos, never push to them."""
    repo = reg.PUBLIC_PREFIX + repo_name.split('/', 1)[1]
    disk = _disk(tools, 136)
    proc = tools.pusher(_name(token_registry, repo), *disk.args())
    _assert_failed_push(token_registry, repo, proc, ph.UNAUTHORIZED)


def test_credential_helper_missing(basic_registry, repo_name, tools):
    disk = _disk(tools, 137)
    cfg = reg.docker_config(tools.new_dir('cfg'),
                            cred_helpers={basic_registry.host: 'nosuchhelper'})
    proc = tools.pusher(_name(basic_registry, repo_name), *disk.args(),
                        '--client-config-dir', cfg)
    ph.one_line_failure(proc, 'docker-credential-nosuchhelper')
    assert ph.tags(basic_registry, repo_name) == []


def _has_auth(headers) -> bool:
    return any(k.lower() == 'authorization' for k in headers)


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_upload_elsewhere_gets_no_credentials(request, kind, repo_name, tools):
    """A registry may send uploads to another host (a blob store): they go
    there without the registry's credentials, and the push still lands."""
    registry = request.getfixturevalue(kind + '_registry')
    p = proxy_mod.start_proxy(registry)
    try:
        p.divert_uploads()
        disk = _disk(tools, 142, 143)
        cfg = reg.docker_config(tools.new_dir('cfg'), auths={p.host: registry.creds})
        name = '%s/%s:latest' % (p.host, repo_name)
        assert tools.push(name, *disk.args(), '--client-config-dir', cfg) == disk.digest()
        puts = [path for m, path, _ in p.origin_requests if m == 'PUT']
        assert len(puts) == len(_blobs(disk))
        for _, path, headers in p.origin_requests:
            assert not _has_auth(headers), (path, headers)
        posts = [h for m, path, h in p.requests if m == 'POST']
        assert len(posts) == len(_blobs(disk)) and all(_has_auth(h) for h in posts)
    finally:
        p.stop()
    manifest, config, blobs = ph.pull_image(registry, repo_name, 'latest')
    assert manifest == disk.manifest() and config == disk.config
    assert blobs == {l.digest: l.blob for l in disk.layers}


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_credentials_asked_after_an_anonymous_ping(request, kind, repo_name, tools):
    """`/v2/` open to all, the repository not: the 401's challenge is taken up."""
    registry = request.getfixturevalue(kind + '_registry')
    p = proxy_mod.start_proxy(registry)
    try:
        p.anonymous_ping()
        disk = _disk(tools, 144)
        name = '%s/%s:latest' % (p.host, repo_name)
        line = ph.one_line_failure(tools.pusher(name, *disk.args()),
                                   'Error publishing', ph.UNAUTHORIZED)
        assert registry.password not in line
        cfg = reg.docker_config(tools.new_dir('cfg'), auths={p.host: registry.creds})
        assert tools.push(name, *disk.args(), '--client-config-dir', cfg) == disk.digest()
    finally:
        p.stop()
    assert ph.tag_digest(registry, repo_name, 'latest') == disk.digest()


def test_tls_registry(tls_registry, repo_name, tools):
    disk = _disk(tools, 138)
    name = '%s/%s:latest' % (tls_registry.tls_host, repo_name)
    env = dict(tools.env, SSL_CERT_FILE=tls_registry.ca_path)
    assert tools.push(name, *disk.args(), env=env) == disk.digest()
    assert ph.tag_digest(tls_registry, repo_name, 'latest') == disk.digest()


def test_push_through_a_proxy(tls_registry, repo_name, tools):
    proxy = forward_proxy.ForwardProxy({reg.PROXIED_NAME: '127.0.0.1'}, ('pu', 'pp'))
    try:
        disk = _disk(tools, 141)
        name = '%s:%d/%s:latest' % (reg.PROXIED_NAME, tls_registry.port, repo_name)
        env = dict(tools.env, SSL_CERT_FILE=tls_registry.ca_path,
                   HTTPS_PROXY=proxy.url(('pu', 'pp')))
        assert tools.push(name, *disk.args(), env=env) == disk.digest()
    finally:
        proxy.stop()
    assert ph.tag_digest(tls_registry, repo_name, 'latest') == disk.digest()
    assert proxy.seen and all(line.startswith('CONNECT %s:' % reg.PROXIED_NAME)
                              for line, _ in proxy.seen)


def test_tls_verified_by_default(tls_registry, repo_name, tools):
    disk = _disk(tools, 139)
    name = '%s/%s:latest' % (tls_registry.tls_host, repo_name)
    line = ph.one_line_failure(tools.pusher(name, *disk.args()), 'Error publishing')
    assert 'certificate' in line.lower()
    assert ph.tags(tls_registry, repo_name) == []


@pytest.mark.parametrize('kind', ['basic', 'token'])
def test_password_not_logged(request, kind, repo_name, tools):
    registry = request.getfixturevalue(kind + '_registry')
    disk = _disk(tools, 140)
    cfg = _config_dir(tools, registry)
    name = _name(registry, repo_name)
    proc = tools.pusher(name, *disk.args(), '--client-config-dir', cfg,
                        '--stderrthreshold', 'DEBUG')
    assert ph.published_digest(proc, name) == disk.digest()
    assert proc.stderr.strip(), 'expected debug output'
    basic = base64.b64encode(('%s:%s' % registry.creds).encode()).decode()
    for secret in (registry.password, basic):
        assert secret not in proc.stderr and secret not in proc.stdout


def test_join_layers_tarball_with_a_foreign_layer(foreign_registry, repo_name,
                                                  tools):
    """The foreign layer is never uploaded; its descriptor is published."""
    registry = foreign_registry
    img = foreign.join_layers_tarball(
        os.path.join(tools.new_dir('win'), 'win.tar'),
        ['https://example.invalid/win/base.tar.gz'])
    own = gzip.compress(img.own.tar, compresslevel=9, mtime=1225856967)
    expected = json.dumps({
        'config': {'digest': images.sha256(img.config),
                   'mediaType': images.DOCKER_CONFIG, 'size': len(img.config)},
        'layers': [img.descriptor,
                   {'digest': images.sha256(own),
                    'mediaType': images.DOCKER_LAYER, 'size': len(own)}],
        'mediaType': images.DOCKER_MANIFEST, 'schemaVersion': 2,
    }, sort_keys=True).encode()
    name = _name(registry, repo_name)
    mark = registry.mark()
    assert tools.push(name, '--tarball', img.path) == images.sha256(expected)
    body, _ = images.Client(registry).manifest(repo_name, 'latest')
    assert body == expected
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert img.foreign.digest not in ' '.join(p for _, p in reqs)
    assert sorted(ph.uploaded_digests(reqs)) == sorted(
        [images.sha256(img.config), images.sha256(own)])
    status, _, _ = images.Client(registry).request(
        'HEAD', repo_name, 'blobs/' + img.foreign.digest)
    assert status == 404


def test_imported_foreign_image_pushed_with_its_manifest(
        foreign_registry, repo_name, tools):
    """importer --format tar.gz, then --manifest for the foreign layer: the
    image the importer's `digest` names."""
    registry = foreign_registry
    img = foreign.join_layers_tarball(
        os.path.join(tools.new_dir('win'), 'win.tar'),
        ['https://example.invalid/win/base.tar.gz'])
    out = tools.new_dir('imported')
    proc = pars.run_tool('importer', '--tarball', img.path, '--directory',
                         out, '--format', 'tar.gz', timeout=120)
    assert proc.returncode == 0, proc.stderr
    name = _name(registry, repo_name)
    mark = registry.mark()
    digest = tools.push(name, '--config', os.path.join(out, 'config.json'),
                        '--manifest', os.path.join(out, 'manifest.json'),
                        '--digest', os.path.join(out, '001.sha256'),
                        '--layer', os.path.join(out, '001.tar.gz'))
    with open(os.path.join(out, 'digest')) as f:
        assert digest == f.read()
    with open(os.path.join(out, 'manifest.json'), 'rb') as f:
        assert images.Client(registry).manifest(repo_name, 'latest')[0] == \
            f.read()
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert img.foreign.digest not in ' '.join(p for _, p in reqs)
