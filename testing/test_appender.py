"""appender.par: one layer on top of a registry image, published under a new name.

The base layers must neither be downloaded nor uploaded again: across
repositories they are mounted from the source, within one they are skipped.
"""
import io
import json
import os
import random
import tarfile

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import push_helpers as ph
from containerregistry.testing import registry as reg
from containerregistry.testing.push_helpers import foreign_registry  # noqa: F401 (fixture)
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)

USER_AGENT_PREFIX = '//containerregistry/client:'


def _base(registry, repo, seed=1):
    return images.push_image(registry, repo + ':base',
                             [images.make_layer(seed, 3000),
                              images.make_layer(seed + 1, 1500, kind='text')])


def _layer(tools, seed, gzipped=True):
    tar = images.make_layer(seed, 2500, files={
        'app/hello-%d.txt' % seed: b'hello %d\n' % seed, 'app/bin/run': b'#!/bin/sh\n'})
    data = images.gzip_bytes(tar) if gzipped else tar
    path = os.path.join(tools.new_dir('layer'), 'layer.tar.gz' if gzipped else 'layer.tar')
    with open(path, 'wb') as f:
        f.write(data)
    return tar, data, path


def _check_result(registry, repo, tag, base, tar, blob):
    """The published image is BASE plus one layer BLOB (of TAR)."""
    manifest, config, blobs = ph.pull_image(registry, repo, tag)
    m = json.loads(manifest)
    assert m['mediaType'] == images.DOCKER_MANIFEST
    base_m = json.loads(base.manifest)
    assert m['layers'][:-1] == base_m['layers']
    assert m['layers'][-1] == {'mediaType': images.DOCKER_LAYER, 'size': len(blob),
                               'digest': images.sha256(blob)}
    assert m['config']['digest'] == images.sha256(config)
    assert m['config']['size'] == len(config)
    assert blobs[images.sha256(blob)] == blob
    cfg, base_cfg = json.loads(config), json.loads(base.config)
    assert cfg['rootfs'] == {'type': 'layers', 'diff_ids': base_cfg['rootfs']['diff_ids']
                             + [images.sha256(tar)]}
    assert cfg['config'] == base_cfg['config']
    assert len(cfg['history']) == len(base_cfg['history']) + 1
    # metadata.Override inserts new history entries at the front (SPEC §2.10).
    assert cfg['history'][0]['created_by'].startswith(USER_AGENT_PREFIX), cfg['history']
    assert cfg['history'][1:] == base_cfg['history']
    return manifest


def test_append_to_other_repository(registry, repo_name, tools, pull):
    base = _base(registry, repo_name + '-src')
    tar, blob, path = _layer(tools, 10)
    dst = '%s/%s:appended' % (registry.host, repo_name)
    mark = registry.mark()
    proc = tools.appender(base.by_tag, path, dst)
    digest = ph.published_digest(proc, dst)
    reqs = ph.repo_requests(registry, mark, repo_name)
    fetched = ' '.join(registry.blob_gets(mark))
    assert ph.tag_digest(registry, repo_name, 'appended') == digest
    manifest = _check_result(registry, repo_name, 'appended', base, tar, blob)
    assert images.sha256(manifest) == digest
    base_digests = [l.digest for l in base.layers]
    # Base layers are mounted from the source repository, never uploaded...
    assert set(base_digests) <= set(ph.mounts(reqs))
    assert not set(base_digests) & set(ph.uploaded_digests(reqs))
    assert images.sha256(blob) in ph.uploaded_digests(reqs)
    # ...nor downloaded by the appender.
    for d in base_digests:
        assert d not in fetched
    # The result pulls back; its top layer is the given tarball, byte for byte.
    proc = pull(dst)
    assert proc.returncode == 0, proc.stderr
    names = sorted(n for n in os.listdir(proc.directory) if n.endswith('.tar.gz'))
    assert len(names) == 3
    with open(os.path.join(proc.directory, names[-1]), 'rb') as f:
        assert f.read() == blob
    for i, layer in enumerate(base.layers):
        with open(os.path.join(proc.directory, names[i]), 'rb') as f:
            assert f.read() == layer.blob


def test_append_within_repository(registry, repo_name, tools):
    base = _base(registry, repo_name, seed=20)
    tar, blob, path = _layer(tools, 21)
    dst = '%s/%s:v2' % (registry.host, repo_name)
    mark = registry.mark()
    digest = ph.published_digest(tools.appender(base.by_tag, path, dst), dst)
    reqs = ph.repo_requests(registry, mark, repo_name)
    fetched = ' '.join(registry.blob_gets(mark))
    _check_result(registry, repo_name, 'v2', base, tar, blob)
    assert ph.tag_digest(registry, repo_name, 'base') == base.digest
    assert ph.tag_digest(registry, repo_name, 'v2') == digest
    uploaded = ph.uploaded_digests(reqs)
    assert not {l.digest for l in base.layers} & set(uploaded)
    assert images.sha256(blob) in uploaded
    for layer in base.layers:
        assert layer.digest not in fetched


def test_append_twice_is_stable(registry, repo_name, tools):
    base = _base(registry, repo_name + '-src', seed=25)
    _, _, path = _layer(tools, 26)
    dst = '%s/%s:x' % (registry.host, repo_name)
    first = ph.published_digest(tools.appender(base.by_tag, path, dst), dst)
    mark = registry.mark()
    second = ph.published_digest(tools.appender(base.by_tag, path, dst), dst)
    assert ph.tag_digest(registry, repo_name, 'x') == second
    if first == second:
        reqs = ph.repo_requests(registry, mark, repo_name)
        assert ph.uploads(reqs) == [] and ph.manifest_puts(reqs) == []


def test_plain_tar_layer(registry, repo_name, tools):
    """Upstream only took a .tar.gz; a plain tar is gzipped with the library's
    fixed settings (SPEC §4.4) and its diff_id is the tar's digest."""
    base = _base(registry, repo_name + '-src', seed=30)
    tar, _, path = _layer(tools, 31, gzipped=False)
    dst = '%s/%s:plain' % (registry.host, repo_name)
    ph.published_digest(tools.appender(base.by_tag, path, dst), dst)
    _check_result(registry, repo_name, 'plain', base, tar, ph.upstream_gzip(tar))


def test_not_a_tarball(registry, repo_name, tools):
    base = _base(registry, repo_name + '-src', seed=32)
    path = os.path.join(tools.new_dir('x'), 'broken.tar.gz')
    with open(path, 'wb') as f:
        f.write(images.gzip_bytes(b'not a tar')[:-6])  # truncated gzip
    dst = '%s/%s:x' % (registry.host, repo_name)
    ph.one_line_failure(tools.appender(base.by_tag, path, dst), path)
    assert ph.tags(registry, repo_name) == []


def _without_end_blocks(tar: bytes) -> bytes:
    """TAR cut right after its last member's data (no end-of-archive)."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as f:
        last = f.getmembers()[-1]
    return tar[:last.offset_data + -(-last.size // 512) * 512]


_TAR = images.make_layer(37, 5000)
_RANDOM = random.Random(37).randbytes(6000)
_CUT = _without_end_blocks(_TAR)
_NOT_TARS = {
    'random': (_RANDOM, 'is not a tar archive: '),
    'empty': (b'', 'is not a tar archive: empty file'),
    'truncated': (_TAR[:3000], 'is not a complete tar archive: '),
    'no-end-block': (_CUT, 'is not a complete tar archive: its data ends at '
                     'byte %d, before the end-of-archive block' % len(_CUT)),
    'random-gz': (images.gzip_bytes(_RANDOM), 'is not a tar archive: '),
    'empty-gz': (images.gzip_bytes(b''), 'is not a tar archive: empty file'),
    'truncated-gz': (images.gzip_bytes(_TAR[:3000]),
                     'is not a complete tar archive: '),
}


@pytest.mark.parametrize('kind', sorted(_NOT_TARS))
def test_layer_must_be_a_complete_tar(registry, repo_name, tools, kind):
    """Upstream published any bytes as the new layer."""
    base = _base(registry, repo_name + '-src', seed=38)
    data, reason = _NOT_TARS[kind]
    path = os.path.join(tools.new_dir('x'), 'layer.tar')
    with open(path, 'wb') as f:
        f.write(data)
    dst = '%s/%s:x' % (registry.host, repo_name)
    mark = registry.mark()
    proc = tools.appender(base.by_tag, path, dst)
    reqs = ph.repo_requests(registry, mark, repo_name)
    assert ph.uploads(reqs) == [] and ph.manifest_puts(reqs) == []
    ph.one_line_failure(proc, 'Error appending to %s: %s %s'
                        % (base.by_tag, path, reason))
    assert ph.tags(registry, repo_name) == []


def test_empty_tar_archive_is_a_layer(registry, repo_name, tools):
    """A tar of no members (only the end-of-archive blocks) is complete."""
    base = _base(registry, repo_name + '-src', seed=39)
    buf = io.BytesIO()
    tarfile.open(fileobj=buf, mode='w').close()
    path = os.path.join(tools.new_dir('x'), 'empty.tar')
    with open(path, 'wb') as f:
        f.write(buf.getvalue())
    dst = '%s/%s:empty' % (registry.host, repo_name)
    ph.published_digest(tools.appender(base.by_tag, path, dst), dst)
    _check_result(registry, repo_name, 'empty', base, buf.getvalue(),
                  ph.upstream_gzip(buf.getvalue()))


def test_source_by_digest(registry, repo_name, tools):
    base = _base(registry, repo_name + '-src', seed=33)
    tar, blob, path = _layer(tools, 34)
    dst = '%s/%s:bydigest' % (registry.host, repo_name)
    ph.published_digest(tools.appender(base.by_digest, path, dst), dst)
    _check_result(registry, repo_name, 'bydigest', base, tar, blob)


def test_source_is_a_list(registry, repo_name, tools):
    """A manifest list source resolves to its linux/amd64 child."""
    index = images.push_index(registry, repo_name + '-src:multi', seed=35)
    base = index.child(os='linux', architecture='amd64')
    tar, blob, path = _layer(tools, 36)
    dst = '%s/%s:fromlist' % (registry.host, repo_name)
    ph.published_digest(tools.appender(index.by_tag, path, dst), dst)
    _check_result(registry, repo_name, 'fromlist', base, tar, blob)


def test_across_registries(registry, foreign_registry, repo_name, tools):
    """No mount is possible: base layers stream from one registry to the other."""
    base = _base(registry, repo_name + '-src', seed=37)
    tar, blob, path = _layer(tools, 38)
    dst = '%s/%s:copied' % (foreign_registry.host, repo_name)
    mark = foreign_registry.mark()
    ph.published_digest(tools.appender(base.by_tag, path, dst), dst)
    reqs = ph.repo_requests(foreign_registry, mark, repo_name)
    assert ph.mounts(reqs) == []
    assert {l.digest for l in base.layers} <= set(ph.uploaded_digests(reqs))
    _check_result(foreign_registry, repo_name, 'copied', base, tar, blob)


@pytest.mark.parametrize('how', ['env', 'flag'])
def test_docker_config_credentials(basic_registry, repo_name, tools, how):
    base = _base(basic_registry, repo_name + '-src', seed=40)
    tar, blob, path = _layer(tools, 41)
    cfg = reg.docker_config(tools.new_dir('cfg'),
                            auths={basic_registry.host: basic_registry.creds})
    env = dict(tools.env, DOCKER_CONFIG=cfg) if how == 'env' else None
    extra = ['--client-config-dir', cfg] if how == 'flag' else []
    dst = '%s/%s:auth' % (basic_registry.host, repo_name)
    ph.published_digest(tools.appender(base.by_tag, path, dst, *extra, env=env), dst)
    _check_result(basic_registry, repo_name, 'auth', base, tar, blob)


def test_token_auth_mounts(token_registry, repo_name, tools):
    base = _base(token_registry, repo_name + '-src', seed=45)
    tar, blob, path = _layer(tools, 46)
    cfg = reg.docker_config(tools.new_dir('cfg'),
                            auths={token_registry.host: token_registry.creds})
    env = dict(tools.env, DOCKER_CONFIG=cfg)
    dst = '%s/%s:tok' % (token_registry.host, repo_name)
    mark = token_registry.mark()
    ph.published_digest(tools.appender(base.by_tag, path, dst, env=env), dst)
    _check_result(token_registry, repo_name, 'tok', base, tar, blob)
    reqs = ph.repo_requests(token_registry, mark, repo_name)
    assert {l.digest for l in base.layers} <= set(ph.mounts(reqs))
    assert not {l.digest for l in base.layers} & set(ph.uploaded_digests(reqs))


def test_no_credentials(basic_registry, repo_name, tools):
    base = _base(basic_registry, repo_name + '-src', seed=50)
    _, _, path = _layer(tools, 51)
    dst = '%s/%s:x' % (basic_registry.host, repo_name)
    ph.one_line_failure(tools.appender(base.by_tag, path, dst), ph.UNAUTHORIZED)
    assert ph.tags(basic_registry, repo_name) == []


def test_missing_source(registry, repo_name, tools):
    _, _, path = _layer(tools, 55)
    src = '%s/%s-src:nope' % (registry.host, repo_name)
    dst = '%s/%s:x' % (registry.host, repo_name)
    ph.one_line_failure(tools.appender(src, path, dst), ('MANIFEST_UNKNOWN', 'NAME_UNKNOWN'))
    assert ph.tags(registry, repo_name) == []


def test_missing_tarball(registry, repo_name, tools):
    base = _base(registry, repo_name + '-src', seed=56)
    path = os.path.join(tools.new_dir('x'), 'missing.tar.gz')
    dst = '%s/%s:x' % (registry.host, repo_name)
    ph.one_line_failure(tools.appender(base.by_tag, path, dst), path)
    assert ph.tags(registry, repo_name) == []


@pytest.mark.parametrize('which', ['src', 'dst'])
def test_invalid_names(registry, repo_name, tools, which):
    base = _base(registry, repo_name + '-src', seed=57)
    _, _, path = _layer(tools, 58)
    good_dst = '%s/%s:x' % (registry.host, repo_name)
    src = base.by_tag if which == 'dst' else '%s/%s-src' % (registry.host, repo_name)
    dst = good_dst if which == 'src' else '%s/%s' % (registry.host, repo_name)
    proc = tools.appender(src, path, dst)
    ph.one_line_failure(proc, src if which == 'src' else dst)
    assert ph.tags(registry, repo_name) == []


def test_missing_flags_are_usage_errors(tools):
    proc = pars.run_tool('appender', '--src-image', 'localhost:5000/a/b:c',
                         env=tools.env)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert '--tarball' in proc.stderr or '--dst-image' in proc.stderr
