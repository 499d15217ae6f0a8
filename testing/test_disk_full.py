"""A full disk is one line naming the output and "No space left on device".

The tools run in a private mount namespace (`unshare`) where their output
directory is a small tmpfs, so the kernel itself answers ENOSPC; what the
tool left there is listed before the namespace (and the tmpfs) goes away.
"""
import gzip
import os
import shlex
import subprocess

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing.test_importer import skopeo_archive


def _namespaces_work() -> bool:
    try:
        return subprocess.run(['unshare', '-rm', 'true'], capture_output=True,
                              timeout=30).returncode == 0
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _namespaces_work(), reason='unshare -rm (a private mount namespace) '
    'is not allowed here')


def _run_on_small_disk(tool, args, mountpoint, size, env):
    """Runs TOOL with ARGS while MOUNTPOINT is a tmpfs of SIZE; returns its
    exit status, its stderr lines and the names left under MOUNTPOINT."""
    os.makedirs(mountpoint, exist_ok=True)
    stderr = mountpoint + '.stderr'
    command = ' '.join(shlex.quote(a) for a in pars.tool_command(tool) + args)
    script = ('mount -t tmpfs -o size=%s tmpfs %s\n'
              'rc=0; %s 2>%s >/dev/null || rc=$?\n'
              'echo "rc:$rc"\n'
              'find %s -mindepth 1 -printf "left:%%P\\n"\n'
              % (size, shlex.quote(mountpoint), command, shlex.quote(stderr),
                 shlex.quote(mountpoint)))
    proc = subprocess.run(['unshare', '-rm', 'sh', '-ec', script], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    status = int(next(l[3:] for l in lines if l.startswith('rc:')))
    left = [l[5:] for l in lines if l.startswith('left:')]
    with open(stderr) as f:
        errors = [l for l in f.read().splitlines() if l.strip()]
    return status, errors, left


def _image():
    return images.build_image([images.make_layer(901, 200000),
                               images.make_layer(902, 300000)])


@pytest.mark.parametrize('size', ['64k', '400k'])
@pytest.mark.parametrize('compressed', [False, True])
def test_importer_on_a_full_disk(tmp_path, tool_env, size, compressed):
    tarball = skopeo_archive(tmp_path, _image())
    if compressed:
        with open(tarball, 'rb') as f:
            data = f.read()
        tarball += '.gz'
        with open(tarball, 'wb') as f:
            f.write(gzip.compress(data))
    mountpoint = str(tmp_path / 'small')
    out = os.path.join(mountpoint, 'out')
    status, errors, left = _run_on_small_disk(
        'importer', ['--tarball', tarball, '--directory', out], mountpoint,
        size, tool_env)
    assert status == 1 and len(errors) == 1, (status, errors)
    assert errors[0].endswith('Error importing %s: cannot write %s: No space '
                              'left on device' % (tarball, out)), errors
    assert 'not a tar archive' not in errors[0]
    assert left == [], left


def test_puller_on_a_full_disk(registry, repo_name, tmp_path, tool_env):
    pushed = images.push_built(registry, repo_name + ':big', _image())
    mountpoint = str(tmp_path / 'small')
    out = os.path.join(mountpoint, 'out')
    status, errors, left = _run_on_small_disk(
        'puller', ['--name', pushed.by_tag, '--directory', out], mountpoint,
        '256k', tool_env)
    assert status == 1 and len(errors) == 1, (status, errors)
    assert errors[0].endswith('cannot write %s: No space left on device'
                              % out), errors
    assert left == [], left


def test_flatten_on_a_full_disk(tmp_path, tool_env):
    built = _image()
    layers = tmp_path / 'layers'
    layers.mkdir()
    (layers / 'config.json').write_bytes(built.config)
    args = ['--config', str(layers / 'config.json')]
    for i, layer in enumerate(built.layers):
        (layers / ('%d.tar.gz' % i)).write_bytes(layer.blob)
        (layers / ('%d.sha256' % i)).write_text(layer.hex)
        args += ['--digest', str(layers / ('%d.sha256' % i)),
                 '--layer', str(layers / ('%d.tar.gz' % i))]
    mountpoint = str(tmp_path / 'small')
    flat = os.path.join(mountpoint, 'flat.tar')
    status, errors, left = _run_on_small_disk(
        'flatten', args + ['--filesystem', flat], mountpoint, '128k', tool_env)
    assert status == 1 and len(errors) == 1, (status, errors)
    assert errors[0].endswith('cannot write %s: No space left on device'
                              % flat), errors
    assert left == [], left
