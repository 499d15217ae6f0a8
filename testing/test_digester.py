"""digester.par: the digest the pusher will publish, computed offline.

rules_docker compares this file with what the registry serves, so it must
equal the pusher's printed digest and the registry's Docker-Content-Digest
for the same inputs, with and without `--oci`, and carry no newline.
"""
import json
import os
import stat
import subprocess
import threading

import pytest

from containerregistry.client.v2_2 import leftovers
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import push_helpers as ph
from containerregistry.testing.push_helpers import foreign_registry  # noqa: F401 (fixture)
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)

FOREIGN = {'mediaType': ph.DOCKER_FOREIGN, 'size': 4242,
           'digest': 'sha256:' + 'f1' * 32,
           'urls': ['https://example.invalid/windows/base.tar.gz']}


def _tars(*seeds):
    return [images.make_layer(s, 900 + 13 * (s % 7)) for s in seeds]


def _disk(tools, *seeds, **kw) -> ph.DiskImage:
    return ph.write_disk_image(tools.new_dir('img'), _tars(*seeds), **kw)


def _name(registry, repo, tag='latest'):
    return '%s/%s:%s' % (registry.host, repo, tag)


@pytest.fixture(scope='module')
def base_tarball(registry, tmp_path_factory):
    """(PushedImage, docker-save tarball of it written by skopeo)."""
    pushed = images.push_image(registry, 'test/digester-base:b', _tars(1, 2))
    path = str(tmp_path_factory.mktemp('tarball') / 'base.tar')
    ph.save_tarball(registry, pushed.by_tag, path, 'base/image:b')
    return pushed, path


def _base_descriptors(pushed):
    return [ph.descriptor(images.DOCKER_LAYER, ph.upstream_gzip(l.tar))
            for l in pushed.layers]


def _foreign_manifest(tools) -> str:
    path = os.path.join(tools.new_dir('base'), 'manifest.json')
    with open(path, 'w') as f:
        json.dump({'schemaVersion': 2, 'mediaType': images.DOCKER_MANIFEST,
                   'config': {'mediaType': images.DOCKER_CONFIG, 'size': 1,
                              'digest': 'sha256:' + 'c1' * 32},
                   'layers': [FOREIGN]}, f)
    return path


@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_equals_pusher_and_registry(registry, repo_name, tools, oci):
    disk = _disk(tools, 10, 11, 12)
    extra = ['--oci'] if oci else []
    digest = tools.digest(*disk.args(), *extra)
    assert digest == disk.digest(oci=oci)
    published = tools.push(_name(registry, repo_name), *disk.args(), *extra)
    assert published == digest
    assert ph.tag_digest(registry, repo_name, 'latest') == digest


def test_no_newline(tools):
    disk = _disk(tools, 13)
    proc = tools.digester(*disk.args())
    assert proc.returncode == 0, proc.stderr
    assert proc.digest_text == disk.digest()
    assert len(proc.digest_text) == 71
    assert proc.stdout == ''


def test_overwrites_existing_output(tools):
    disk = _disk(tools, 14)
    out = os.path.join(tools.new_dir('out'), 'image.digest')
    with open(out, 'w') as f:
        f.write('x' * 500 + '\n')
    proc = tools.digester(*disk.args(), output=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.digest_text == disk.digest()


def test_what_a_killed_run_left_is_removed(tools):
    """A temporary file a digester killed outright (SIGKILL) left beside
    the output goes at the next run; another host's stays."""
    disk = _disk(tools, 15)
    directory = tools.new_dir('out')
    out = os.path.join(directory, 'image.digest')
    dead = subprocess.Popen(['true'])
    dead.wait()
    host = leftovers.host()
    left = '.image.digest.%d@%s.k1lled.tmp' % (dead.pid, host)
    other = '.image.digest.%d@%s-elsewhere.r7nning.tmp' % (dead.pid, host)
    for name in (left, other):
        with open(os.path.join(directory, name), 'w') as f:
            f.write('sha256:')
    proc = tools.digester(*disk.args(), output=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.digest_text == disk.digest()
    assert sorted(os.listdir(directory)) == [other, 'image.digest']


def test_container_image_argv(tools):
    """container_image: `--config=C --output-digest=O --layer=… --digest=…`."""
    disk = _disk(tools, 15, 16)
    out = os.path.join(tools.new_dir('out'), 'image.digest')
    argv = (['--config=' + disk.config_path, '--output-digest=' + out]
            + ['--layer=' + p for p in disk.layer_paths]
            + ['--digest=' + p for p in disk.digest_paths])
    proc = tools.digester(*argv, output=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.digest_text == disk.digest()


def test_container_image_argv_with_tarball(tools, base_tarball):
    pushed, tarball = base_tarball
    base = _base_descriptors(pushed)
    disk = _disk(tools, 17, base_diff_ids=[l.diff_id for l in pushed.layers])
    out = os.path.join(tools.new_dir('out'), 'image.digest')
    argv = (['--config=' + disk.config_path, '--output-digest=' + out]
            + ['--layer=' + p for p in disk.layer_paths]
            + ['--digest=' + p for p in disk.digest_paths]
            + ['--tarball=' + tarball])
    proc = tools.digester(*argv, output=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.digest_text == disk.digest(base_layers=base)


@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_container_push_digest_action_argv(tools, oci):
    """container_push's digest action: separate words, `--manifest`, `--oci`."""
    disk = _disk(tools, 18, base_diff_ids=['sha256:' + 'e1' * 32])
    manifest = _foreign_manifest(tools)
    out = os.path.join(tools.new_dir('out'), 'push.digest')
    argv = ['--config', disk.config_path, '--manifest', manifest]
    for d in disk.digest_paths:
        argv += ['--digest', d]
    for l in disk.layer_paths:
        argv += ['--layer', l]
    argv += (['--oci'] if oci else []) + ['--output-digest', out]
    proc = tools.digester(*argv, output=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.digest_text == disk.digest(oci=oci, base_layers=[FOREIGN])


@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_foreign_layers_equal_pusher(foreign_registry, repo_name, tools, oci):
    registry = foreign_registry
    disk = _disk(tools, 19, base_diff_ids=['sha256:' + 'e1' * 32])
    manifest = _foreign_manifest(tools)
    extra = ['--manifest', manifest] + (['--oci'] if oci else [])
    digest = tools.digest(*disk.args(), *extra)
    assert tools.push(_name(registry, repo_name), *disk.args(), *extra) == digest
    assert ph.tag_digest(registry, repo_name, 'latest') == digest


@pytest.mark.parametrize('oci', [False, True], ids=['docker', 'oci'])
def test_tarball_only_equals_pusher(registry, repo_name, tools, base_tarball, oci):
    pushed, tarball = base_tarball
    extra = ['--oci'] if oci else []
    digest = tools.digest('--tarball', tarball, *extra)
    layers = [images.Layer(l.tar, ph.upstream_gzip(l.tar),
                           images.sha256(ph.upstream_gzip(l.tar)), l.diff_id,
                           images.DOCKER_LAYER) for l in pushed.layers]
    assert digest == images.sha256(ph.expected_manifest(pushed.config, layers, oci=oci))
    assert tools.push(_name(registry, repo_name), '--tarball', tarball, *extra) == digest
    assert ph.tag_digest(registry, repo_name, 'latest') == digest


def test_tarball_plus_layers_equals_pusher(registry, repo_name, tools, base_tarball):
    pushed, tarball = base_tarball
    disk = _disk(tools, 20, 21, base_diff_ids=[l.diff_id for l in pushed.layers])
    digest = tools.digest('--tarball', tarball, *disk.args())
    assert digest == disk.digest(base_layers=_base_descriptors(pushed))
    published = tools.push(_name(registry, repo_name), '--tarball', tarball, *disk.args())
    assert published == digest


def test_zero_layers(tools):
    disk = ph.write_disk_image(tools.new_dir('img'), [])
    assert tools.digest('--config', disk.config_path) == disk.digest()


def test_crlf_config_equals_pusher(registry, repo_name, tools):
    lf = ph.config_bytes([images.layer_from_tar(t).diff_id for t in _tars(22)])
    disk = ph.write_disk_image(tools.new_dir('img'), _tars(22),
                               config=lf.replace(b'\n', b'\r\n'))
    digest = tools.digest(*disk.args())
    assert digest == images.sha256(ph.expected_manifest(lf, disk.layers))
    assert tools.push(_name(registry, repo_name), *disk.args()) == digest


def test_utf8_config(tools):
    diff_ids = [images.layer_from_tar(t).diff_id for t in _tars(23)]
    config = json.loads(ph.config_bytes(diff_ids, {'author': 'Zoë ☃'}))
    raw = json.dumps(config, ensure_ascii=False).encode('utf8')
    disk = ph.write_disk_image(tools.new_dir('img'), _tars(23), config=raw)
    assert tools.digest(*disk.args()) == disk.digest()


def test_digest_file_with_prefix_and_newline(tools):
    """Digest files hold bare hex; a `sha256:` prefix or newline is tolerated."""
    disk = _disk(tools, 24, 25)
    with open(disk.digest_paths[0], 'w') as f:
        f.write('sha256:%s\n' % disk.layers[0].hex)
    with open(disk.digest_paths[1], 'w') as f:
        f.write(disk.layers[1].hex + '\n')
    assert tools.digest(*disk.args()) == disk.digest()


# Errors.

def _failed(proc, *needles):
    line = ph.one_line_failure(proc, *needles)
    assert not proc.digest_text or not proc.digest_text.startswith('sha256:'), \
        proc.digest_text
    return line


def test_layer_without_config(tools):
    disk = _disk(tools, 30)
    _failed(tools.digester(*disk.layer_args()),
            'Using --layer or --digest requires --config to be specified.')


def test_neither_config_nor_tarball(tools):
    _failed(tools.digester(), 'Either --config or --tarball must be specified.')


def test_count_mismatch(tools):
    disk = _disk(tools, 31, 32)
    _failed(tools.digester('--config', disk.config_path,
                           '--digest', disk.digest_paths[0],
                           '--digest', disk.digest_paths[1],
                           '--layer', disk.layer_paths[0]),
            '--digest and --layer must have matching lengths.')


def test_missing_output_flag_is_usage_error(tools):
    disk = _disk(tools, 33)
    proc = pars.run_tool('digester', *disk.args(), env=tools.env)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert '--output-digest' in proc.stderr


def test_missing_config(tools):
    disk = _disk(tools, 34)
    os.remove(disk.config_path)
    _failed(tools.digester(*disk.args()), disk.config_path)


def test_missing_layer(tools):
    disk = _disk(tools, 35)
    os.remove(disk.layer_paths[0])
    _failed(tools.digester(*disk.args()), 'Error getting digest', disk.layer_paths[0])


def test_missing_digest_file(tools):
    disk = _disk(tools, 36)
    os.remove(disk.digest_paths[0])
    _failed(tools.digester(*disk.args()), disk.digest_paths[0])


def test_missing_tarball(tools):
    path = os.path.join(tools.new_dir('x'), 'missing.tar')
    _failed(tools.digester('--tarball', path), path)


def test_tarball_not_a_tar(tools):
    path = os.path.join(tools.new_dir('x'), 'bad.tar')
    with open(path, 'wb') as f:
        f.write(b'not a tar at all' * 100)
    _failed(tools.digester('--tarball', path), 'Error getting digest', path)


def test_config_not_json(tools):
    disk = _disk(tools, 37)
    with open(disk.config_path, 'w') as f:
        f.write('{not json')
    _failed(tools.digester(*disk.args()), 'Error getting digest')


def test_output_directory_missing(tools):
    disk = _disk(tools, 38)
    out = os.path.join(tools.new_dir('out'), 'no', 'such', 'dir', 'x.digest')
    proc = tools.digester(*disk.args(), output=out)
    if proc.returncode == 0:
        with open(out) as f:
            assert f.read() == disk.digest()
    else:
        _failed(proc, out)


# Where the digest goes.

def test_output_to_a_fifo(tools):
    """A FIFO (like /dev/null or /dev/stdout) is written, not replaced."""
    disk = _disk(tools, 40)
    directory = tools.new_dir('out')
    fifo = os.path.join(directory, 'digest.fifo')
    os.mkfifo(fifo)
    got = []

    def read():
        with open(fifo, 'rb') as f:
            got.append(f.read())
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = tools.digester(*disk.args(), '--output-digest', fifo)
    finally:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # the reader is done
    reader.join(30)
    assert proc.returncode == 0, proc.stderr
    assert got == [disk.digest().encode()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(directory) == ['digest.fifo']


def test_output_to_stdout_by_descriptor(tools):
    """/proc/self/fd/1, what /dev/stdout links to, is stdout itself."""
    disk = _disk(tools, 41)
    proc = tools.digester(*disk.args(), '--output-digest', '/proc/self/fd/1')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == disk.digest()


def test_output_through_a_symlink(tools):
    disk = _disk(tools, 42)
    real, links = tools.new_dir('real'), tools.new_dir('links')
    with open(os.path.join(real, 'image.digest'), 'w') as f:
        f.write('old')
    link = os.path.join(links, 'image.digest')
    os.symlink('../%s/image.digest' % os.path.basename(real), link)
    proc = tools.digester(*disk.args(), output=link)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(link) == '../%s/image.digest' % os.path.basename(real)
    with open(os.path.join(real, 'image.digest'), 'rb') as f:
        assert f.read() == disk.digest().encode()
    assert os.listdir(real) == ['image.digest']
    assert os.listdir(links) == ['image.digest']


def test_output_is_a_directory(tools):
    disk = _disk(tools, 43)
    directory = tools.new_dir('out')
    out = os.path.join(directory, 'pin')
    os.mkdir(out)
    proc = pars.run_tool('digester', '--output-digest', out, *disk.args(),
                         env=tools.env)
    line = ph.one_line_failure(
        proc, 'Error getting digest: cannot write %s: Is a directory' % out)
    assert '.tmp' not in line
    assert os.listdir(directory) == ['pin']
    assert os.listdir(out) == []


def test_empty_output_path(tools):
    disk = _disk(tools, 44)
    directory = tools.new_dir('out')
    proc = pars.run_tool('digester', '--output-digest', '', *disk.args(),
                         env=tools.env, cwd=directory)
    ph.one_line_failure(proc, '--output-digest is empty; it must name a file.')
    assert os.listdir(directory) == []
    # '' once meant the working directory's name, written beside it.
    parent = os.path.dirname(directory)
    assert [n for n in os.listdir(parent) if n.endswith('.tmp')] == []
