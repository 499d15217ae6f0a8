"""importer.par end to end: docker-save tarballs in, the fast layout out.

Tarballs come from skopeo (`docker-archive:`), the independent writer, or
are made by hand for layouts skopeo does not write (gzipped or zstd
members, several images) and for damaged inputs. Expected bytes are
computed here independently: upstream gzipped plain layers with the stdlib
at level 9 and a frozen mtime, and serialized the manifest with
`json.dumps(sort_keys=True)`.
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from typing import Dict, Optional, Sequence

import pytest

from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import leftovers
from containerregistry.testing import foreign
from containerregistry.testing import images
from containerregistry.testing import pars

MTIME = 1225856967


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> bytes:
    return digest.split(':', 1)[1].encode()


def upstream_gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=MTIME)


def zstd_bytes(data: bytes) -> bytes:
    return subprocess.run(['zstd', '-q', '-c', '-3'], input=data, check=True,
                          capture_output=True).stdout


def skopeo_archive(tmp_path, built: images.Built, ref: str = 'foo/bar:baz',
                   name: str = 'archive.tar') -> str:
    """`skopeo copy dir: → oci: → docker-archive:FILE:REF` of BUILT."""
    src = images.write_dir(str(tmp_path / ('dir-' + name)), built.manifest,
                           [built])
    oci = str(tmp_path / ('oci-' + name))
    out = str(tmp_path / name)
    images.skopeo('copy', 'dir:' + src, 'oci:' + oci + ':img')
    images.skopeo('copy', 'oci:' + oci + ':img',
                  'docker-archive:%s:%s' % (out, ref))
    return out


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def config_for(tars: Sequence[bytes]) -> bytes:
    return json.dumps({
        'architecture': 'amd64', 'os': 'linux',
        'rootfs': {'type': 'layers', 'diff_ids': [sha256(t) for t in tars]},
    }, sort_keys=True).encode()


def hand_tarball(path: str, tars: Sequence[bytes],
                 members: Optional[Sequence[bytes]] = None,
                 config: Optional[bytes] = None,
                 extra: Optional[Dict[str, bytes]] = None) -> str:
    """A one-image docker-save tar: layer I is MEMBERS[I] (default TARS[I])."""
    members = list(tars) if members is None else list(members)
    config = config_for(tars) if config is None else config
    with tarfile.open(path, 'w') as tar:
        add_member(tar, 'config.json', config)
        names = []
        for i, data in enumerate(members):
            names.append('layer%d/layer.tar' % i)
            add_member(tar, names[-1], data)
        for name, data in (extra or {}).items():
            add_member(tar, name, data)
        add_member(tar, 'manifest.json', json.dumps([{
            'Config': 'config.json', 'RepoTags': ['test/image:latest'],
            'Layers': names}]).encode())
    return path


def expected_manifest(config: bytes, blobs: Sequence[bytes]) -> bytes:
    return json.dumps({
        'config': {'digest': sha256(config),
                   'mediaType': docker_http.CONFIG_JSON_MIME,
                   'size': len(config)},
        'layers': [{'digest': sha256(b), 'mediaType': docker_http.LAYER_MIME,
                    'size': len(b)} for b in blobs],
        'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
        'schemaVersion': 2,
    }, sort_keys=True).encode()


def layout(directory: str) -> Dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), 'rb') as f:
            out[name] = f.read()
    return out


def run_importer(tarball: str, directory: str, *args: str, **kwargs):
    return pars.run_tool('importer', '--tarball', tarball,
                         '--directory', directory, *args, timeout=300, **kwargs)


def assert_imported(proc, directory: str, fmt: str, config: bytes,
                    tars: Sequence[bytes], blobs: Sequence[bytes]) -> None:
    """DIRECTORY holds exactly the fast layout of the image, in FMT."""
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ''
    assert proc.stderr == ''
    files = layout(directory)
    manifest = expected_manifest(config, blobs)
    ext = 'tar' if fmt == 'tar' else 'tar.gz'
    assert set(files) == {'config.json', 'digest', 'manifest.json'} | {
        '%03d.%s' % (i, e) for i in range(len(tars)) for e in (ext, 'sha256')}
    assert files['config.json'] == config
    assert files['manifest.json'] == manifest
    assert files['digest'] == sha256(manifest).encode()
    assert json.loads(config)['rootfs']['diff_ids'] == [
        sha256(t) for t in tars]
    for i, (tar, blob) in enumerate(zip(tars, blobs)):
        if fmt == 'tar':
            assert files['%03d.tar' % i] == tar, i
            assert files['%03d.sha256' % i] == hex_of(sha256(tar)), i
        else:
            assert files['%03d.tar.gz' % i] == blob, i
            assert files['%03d.sha256' % i] == hex_of(sha256(blob)), i
            assert gzip.decompress(blob) == tar, i


LAYERS = [images.make_layer(301, 40000, 'text'), images.make_layer(302, 3000),
          images.make_layer(303, 0, files={'etc/motd': b'hello\n'})]


@pytest.fixture(scope='module')
def skopeo_image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('skopeo')
    built = images.build_image(LAYERS, fmt='oci')
    return built, skopeo_archive(tmp, built)


@pytest.mark.parametrize('fmt', ['tar', 'tar.gz'])
def test_skopeo_archive(skopeo_image, tmp_path, fmt):
    built, path = skopeo_image
    out = str(tmp_path / 'image')
    args = () if fmt == 'tar' else ('--format', 'tar.gz')
    proc = run_importer(path, out, *args)
    assert_imported(proc, out, fmt, built.config, LAYERS,
                    [upstream_gzip(t) for t in LAYERS])


def test_both_formats_name_the_same_image(skopeo_image, tmp_path):
    from containerregistry.client.v2_2 import docker_image
    _, path = skopeo_image
    digests = set()
    for fmt in ('tar', 'tar.gz'):
        out = str(tmp_path / fmt)
        assert run_importer(path, out, '--format', fmt).returncode == 0
        digests.add(layout(out)['digest'])
    with docker_image.FromTarball(path) as img:
        digests.add(img.digest().encode())
    assert len(digests) == 1


def test_outer_gzip_and_dot_slash_members(skopeo_image, tmp_path):
    built, path = skopeo_image
    blobs = [upstream_gzip(t) for t in LAYERS]
    gz = str(tmp_path / 'archive.tar.gz')
    with open(path, 'rb') as src, gzip.open(gz, 'wb') as dst:
        dst.write(src.read())
    out = str(tmp_path / 'from-gz')
    assert_imported(run_importer(gz, out, '--format', 'tar.gz'), out,
                    'tar.gz', built.config, LAYERS, blobs)

    extracted = tmp_path / 'x'
    extracted.mkdir()
    subprocess.run(['tar', '-xf', path, '-C', str(extracted)], check=True)
    dotted = str(tmp_path / 'dotted.tar')
    subprocess.run(['tar', '-cf', dotted, '-C', str(extracted), '.'],
                   check=True)
    assert './manifest.json' in tarfile.open(dotted).getnames()
    out = str(tmp_path / 'from-dotted')
    assert_imported(run_importer(dotted, out), out, 'tar', built.config,
                    LAYERS, blobs)


def test_many_layers_keep_their_order(tmp_path):
    tars = [images.make_layer(320 + i, 500 + 7000 * (i % 3)) for i in range(7)]
    path = hand_tarball(str(tmp_path / 'seven.tar'), tars)
    for fmt in ('tar', 'tar.gz'):
        out = str(tmp_path / fmt)
        assert_imported(run_importer(path, out, '--format', fmt), out, fmt,
                        config_for(tars), tars, [upstream_gzip(t) for t in tars])


def test_gzipped_layers_are_not_recompressed(tmp_path):
    tars = LAYERS[:2]
    blobs = [images.gzip_bytes(tars[0]), upstream_gzip(tars[1])]
    assert blobs[0] != upstream_gzip(tars[0])
    path = hand_tarball(str(tmp_path / 'gz.tar'), tars, members=blobs)
    out = str(tmp_path / 'gz')
    assert_imported(run_importer(path, out, '--format', 'tar.gz'), out,
                    'tar.gz', config_for(tars), tars, blobs)
    out = str(tmp_path / 'plain')
    assert_imported(run_importer(path, out), out, 'tar', config_for(tars),
                    tars, blobs)


@pytest.mark.parametrize('choice', ['zlib-ng', 'zlib'])
def test_either_inflater_checks_gzipped_layers(tmp_path, choice):
    """The tool inflates with zlib-ng (a .par loads the one it carries) unless
    CONTAINERREGISTRY_INFLATER=zlib: same layout, same refusal of a bad CRC."""
    tars = LAYERS[:2]
    blobs = [images.gzip_bytes(t) for t in tars]
    env = pars.tool_env()
    env.pop('CONTAINERREGISTRY_INFLATER', None)
    if choice == 'zlib':
        env['CONTAINERREGISTRY_INFLATER'] = 'zlib'
    path = hand_tarball(str(tmp_path / 'gz.tar'), tars, members=blobs)
    out = str(tmp_path / 'gz')
    proc = run_importer(path, out, '--format', 'tar.gz', env=env)
    assert_imported(proc, out, 'tar.gz', config_for(tars), tars, blobs)
    proc = run_importer(path, str(tmp_path / 'debug'), '--format', 'tar.gz',
                        '--stderrthreshold', 'DEBUG', env=env)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines()
            if line.endswith('] inflating with ' + choice)], proc.stderr
    assert layout(str(tmp_path / 'debug')) == layout(out)

    bad = bytearray(blobs[1])
    bad[-8] ^= 0xff
    path = hand_tarball(str(tmp_path / 'crc.tar'), tars, members=[blobs[0], bytes(bad)])
    out = str(tmp_path / 'crc')
    assert_failed(run_importer(path, out, env=env), out, 'not valid gzip data', 'CRC')


def test_zstd_layers_become_upstream_gzip(tmp_path):
    tars = LAYERS
    members = [zstd_bytes(tars[0]), tars[1], zstd_bytes(tars[2])]
    assert members[0][:4] == b'\x28\xb5\x2f\xfd'
    path = hand_tarball(str(tmp_path / 'zstd.tar'), tars, members=members)
    blobs = [upstream_gzip(t) for t in tars]
    for fmt in ('tar', 'tar.gz'):
        out = str(tmp_path / fmt)
        assert_imported(run_importer(path, out, '--format', fmt), out, fmt,
                        config_for(tars), tars, blobs)


@pytest.mark.skipif(pars.source_mode(), reason='the checkout sees site-packages '
                    '(backports.zstd); only a .par runs without it')
def test_zstd_without_support_says_what_a_par_can_use(tmp_path):
    """A .par cannot use an installed backports.zstd: its error line names
    only what would help it (a newer Python or the zstd command)."""
    tars = LAYERS[:1]
    path = hand_tarball(str(tmp_path / 'zstd.tar'), tars,
                        members=[zstd_bytes(tars[0])])
    out = str(tmp_path / 'out')
    env = dict(pars.tool_env(), PATH=str(tmp_path / 'no-zstd-here'))
    assert_failed(run_importer(path, out, env=env), out,
                  'reading it needs Python 3.14 or later, or the zstd command '
                  'on PATH')


def test_reimport_replaces_a_larger_image(skopeo_image, tmp_path):
    _, path = skopeo_image
    out = str(tmp_path / 'image')
    assert run_importer(path, out, '--format', 'tar.gz').returncode == 0
    small = hand_tarball(str(tmp_path / 'small.tar'), LAYERS[:1])
    proc = run_importer(small, out, '--format', 'tar.gz')
    assert_imported(proc, out, 'tar.gz', config_for(LAYERS[:1]), LAYERS[:1],
                    [upstream_gzip(LAYERS[0])])


# Bad inputs: exit 1, one line, and no `digest` in the output directory.


def assert_failed(proc, directory: str, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert proc.stdout == ''
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert 'Error importing ' in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    assert not os.path.exists(os.path.join(directory, 'digest'))
    if os.path.isdir(directory):
        left = [n for n in os.listdir(directory)
                if n.endswith('.tmp') or n.endswith('.tar')
                or n.endswith('.tar.gz') or n == 'config.json']
        assert not left, left
    return line


def bad_inputs(tmp_path) -> Dict[str, tuple]:
    """name -> (tarball path, needles of the error line)."""
    cases = {}
    tars = LAYERS[:2]

    junk = tmp_path / 'junk.tar'
    junk.write_bytes(os.urandom(5000))
    cases['not-a-tar'] = (str(junk), ('is not a tar archive',))

    good = hand_tarball(str(tmp_path / 'good.tar'), tars)
    with open(good, 'rb') as f:
        data = f.read()
    # Cut inside the first layer, then inside the last member.
    inside = data.index(tars[0][:64]) + len(tars[0]) // 2
    cut = tmp_path / 'cut.tar'
    cut.write_bytes(data[:inside])
    cases['truncated'] = (str(cut), ('cut.tar is truncated',))
    last = tmp_path / 'cut-last.tar'
    last.write_bytes(data[:data.rindex(b'"Config"') + 10])
    cases['truncated-last'] = (str(last), ('cut-last.tar is truncated',))

    path = str(tmp_path / 'no-manifest.tar')
    with tarfile.open(path, 'w') as tar:
        add_member(tar, 'config.json', config_for(tars))
        add_member(tar, 'layer0/layer.tar', tars[0])
    cases['no-manifest'] = (path, ('has no manifest.json',))

    path = str(tmp_path / 'two.tar')
    with tarfile.open(path, 'w') as tar:
        for i in range(2):
            add_member(tar, 'c%d.json' % i, config_for(tars[i:i + 1]))
            add_member(tar, 'l%d.tar' % i, tars[i])
        add_member(tar, 'repositories', json.dumps(
            {'r/a': {'1': 'x'}, 'r/b': {'2': 'y'}}).encode())
        add_member(tar, 'manifest.json', json.dumps([
            {'Config': 'c0.json', 'Layers': ['l0.tar'], 'RepoTags': ['r/a:1']},
            {'Config': 'c1.json', 'Layers': ['l1.tar'], 'RepoTags': ['r/b:2']},
        ]).encode())
    cases['several-images'] = (path, ('holds 2 images', 'r/a:1, r/b:2'))

    cases['dot-dot-member'] = (
        hand_tarball(str(tmp_path / 'dotdot.tar'), tars,
                     extra={'../evil': b'x'}),
        ("'../evil' escapes the archive",))
    cases['absolute-member'] = (
        hand_tarball(str(tmp_path / 'abs.tar'), tars,
                     extra={'/etc/evil': b'x'}),
        ("'/etc/evil' escapes the archive",))

    other = images.make_layer(399)
    cases['diff-id-mismatch'] = (
        hand_tarball(str(tmp_path / 'mismatch.tar'), tars,
                     members=[tars[0], other]),
        ('layer 1 (layer1/layer.tar) does not match the config',
         sha256(other), sha256(tars[1])))

    blob = bytearray(upstream_gzip(tars[1]))
    blob[-8] ^= 0xff  # the CRC32 of the trailer
    cases['gzip-crc'] = (
        hand_tarball(str(tmp_path / 'crc.tar'), tars,
                     members=[tars[0], bytes(blob)]),
        ("layer 'layer1/layer.tar' is not valid gzip data", 'CRC'))

    blob = upstream_gzip(tars[1])[:10] + b'\xff' * 64  # no such block type
    cases['gzip-bad-block'] = (
        hand_tarball(str(tmp_path / 'block.tar'), tars,
                     members=[tars[0], blob]),
        ("layer 'layer1/layer.tar' is not valid gzip data", 'invalid block type'))

    blob = zstd_bytes(tars[1])
    cases['zstd-truncated'] = (
        hand_tarball(str(tmp_path / 'zstd-cut.tar'), tars,
                     members=[tars[0], blob[:len(blob) // 2]]),
        ("layer 'layer1/layer.tar' is not valid zstd data",))

    cases['missing-file'] = (str(tmp_path / 'nope.tar'),
                             ('cannot read tarball', 'nope.tar'))
    return cases


BAD = ['not-a-tar', 'truncated', 'truncated-last', 'no-manifest',
       'several-images', 'dot-dot-member', 'absolute-member',
       'diff-id-mismatch', 'gzip-crc', 'gzip-bad-block', 'zstd-truncated',
       'missing-file']


@pytest.mark.parametrize('case', BAD)
@pytest.mark.parametrize('fmt', ['tar', 'tar.gz'])
def test_bad_input(tmp_path, case, fmt):
    cases = bad_inputs(tmp_path)
    assert sorted(cases) == sorted(BAD)
    path, needles = cases[case]
    out = str(tmp_path / 'out')
    proc = run_importer(path, out, '--format', fmt)
    assert_failed(proc, out, *needles)
    # The directory the importer made for this import goes with it.
    assert not os.path.exists(out)


def test_failure_takes_back_an_earlier_digest(skopeo_image, tmp_path):
    _, path = skopeo_image
    out = str(tmp_path / 'image')
    assert run_importer(path, out).returncode == 0
    assert os.path.exists(os.path.join(out, 'digest'))
    junk = tmp_path / 'junk.tar'
    junk.write_bytes(b'not a tarball at all' * 100)
    proc = run_importer(str(junk), out)
    assert proc.returncode == 1
    assert not os.path.exists(os.path.join(out, 'digest'))


def test_sigterm_takes_its_files_with_it(tmp_path):
    """Stopped mid-import (Bazel and CI runners send SIGTERM), the importer
    removes its temporary files and the directory it created."""
    tars = [images.make_layer(340 + i, 6 << 20, 'text') for i in range(2)]
    path = hand_tarball(str(tmp_path / 'big.tar'), tars)
    out = tmp_path / 'out'
    # Compressing has begun once its temporary directory exists.
    proc = pars.terminate_when(
        'importer', ['--tarball', path, '--directory', str(out)],
        lambda: out.is_dir() and any(n.startswith('.cr-tarball-')
                                     for n in os.listdir(out)))
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr == 'Terminated.\n'
    assert not out.exists()


def test_what_a_killed_import_left_is_removed(skopeo_image, tmp_path):
    """Temporary directories of importer processes that no longer run (on
    this host) go; another process's stays."""
    built, path = skopeo_image
    out = tmp_path / 'image'
    out.mkdir()
    dead = subprocess.Popen(['true'])
    dead.wait()
    host = leftovers.host()
    stale = out / ('.cr-tarball-%d@%s-k1lled' % (dead.pid, host))
    stale.mkdir()
    (stale / '1-layer.tar').write_bytes(b'x' * 1000)
    live = tmp_path / 'live'
    live.mkdir()
    kept = live / ('.cr-tarball-%d@%s-running' % (os.getpid(), host))
    kept.mkdir()
    proc = run_importer(path, str(out))
    assert_imported(proc, str(out), 'tar', built.config, LAYERS,
                    [upstream_gzip(t) for t in LAYERS])
    assert run_importer(path, str(live)).returncode == 0
    assert kept.is_dir()


def test_bad_format_is_a_usage_error(tmp_path):
    proc = run_importer('x.tar', str(tmp_path / 'o'), '--format', 'zip')
    assert proc.returncode == 2
    assert "argument --format: invalid choice: 'zip'" in proc.stderr


def test_round_trip_through_the_pusher(skopeo_image, tmp_path, registry,
                                       repo_name, tool_env):
    """importer --format tar.gz → pusher.par → what skopeo sees."""
    built, path = skopeo_image
    out = str(tmp_path / 'image')
    assert run_importer(path, out, '--format', 'tar.gz').returncode == 0
    files = layout(out)
    name = '%s/%s:v1' % (registry.host, repo_name)
    args = ['--name', name, '--config', os.path.join(out, 'config.json')]
    for i in range(len(LAYERS)):
        args += ['--digest', os.path.join(out, '%03d.sha256' % i),
                 '--layer', os.path.join(out, '%03d.tar.gz' % i)]
    proc = pars.run_tool('pusher', *args, env=tool_env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '%s was published with digest: %s\n' % (
        name, files['digest'].decode())

    raw = images.skopeo('inspect', '--tls-verify=false', '--raw',
                        'docker://' + name).stdout
    assert raw == files['manifest.json']
    config = images.skopeo('inspect', '--tls-verify=false', '--config',
                           '--raw', 'docker://' + name).stdout
    assert config == built.config
    inspected = json.loads(images.skopeo(
        'inspect', '--tls-verify=false', 'docker://' + name).stdout)
    assert inspected['Digest'] == files['digest'].decode()
    assert inspected['Layers'] == [
        sha256(upstream_gzip(t)) for t in LAYERS]
    assert [l['digest'] for l in json.loads(raw)['layers']] == [
        'sha256:' + files['%03d.sha256' % i].decode()
        for i in range(len(LAYERS))]


# Foreign layers: the tarball rules_docker's join_layers writes for a
# Windows base holds an empty placeholder and a LayerSources descriptor.

def _foreign_manifest(img: foreign.ForeignImage) -> bytes:
    own = upstream_gzip(img.own.tar)
    return json.dumps({
        'config': {'digest': sha256(img.config),
                   'mediaType': docker_http.CONFIG_JSON_MIME,
                   'size': len(img.config)},
        'layers': [img.descriptor,
                   {'digest': sha256(own), 'mediaType': docker_http.LAYER_MIME,
                    'size': len(own)}],
        'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
        'schemaVersion': 2,
    }, sort_keys=True).encode()


@pytest.mark.parametrize('fmt', ['tar', 'tar.gz'])
def test_join_layers_tarball_with_a_foreign_layer(tmp_path, fmt):
    img = foreign.join_layers_tarball(
        str(tmp_path / 'win.tar'),
        ['https://example.invalid/a.tgz', 'https://example.invalid/b.tgz'])
    out = str(tmp_path / 'image')
    proc = run_importer(img.path, out, '--format', fmt)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ''
    files = layout(out)
    manifest = _foreign_manifest(img)
    assert files['manifest.json'] == manifest
    assert json.loads(manifest)['layers'][0]['urls'] == [
        'https://example.invalid/a.tgz', 'https://example.invalid/b.tgz']
    assert files['config.json'] == img.config
    assert files['digest'] == sha256(manifest).encode()
    if fmt == 'tar':
        # The placeholder as it is, under the layer's diff_id (as upstream).
        assert set(files) == {'config.json', 'digest', 'manifest.json',
                              '000.tar', '000.sha256', '001.tar', '001.sha256'}
        assert files['000.tar'] == b''
        assert files['000.sha256'] == hex_of(img.foreign.diff_id)
        assert files['001.tar'] == img.own.tar
        assert files['001.sha256'] == hex_of(img.own.diff_id)
    else:
        # The placeholder gzipped, under the foreign blob's digest.
        assert set(files) == {'config.json', 'digest', 'manifest.json',
                              '000.tar.gz', '000.sha256', '001.tar.gz',
                              '001.sha256'}
        assert files['000.tar.gz'] == upstream_gzip(b'')
        assert files['000.sha256'] == hex_of(img.foreign.digest)
        assert files['001.tar.gz'] == upstream_gzip(img.own.tar)
        assert files['001.sha256'] == hex_of(sha256(upstream_gzip(img.own.tar)))


def test_foreign_layer_saved_with_its_tar(tmp_path):
    """`docker save` keeps the foreign layer's tar: it is checked and kept."""
    img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'),
                                      ['https://example.invalid/a.tgz'],
                                      foreign_member=True)
    out = str(tmp_path / 'image')
    proc = run_importer(img.path, out)
    assert proc.returncode == 0, proc.stderr
    files = layout(out)
    assert files['000.tar'] == img.foreign.tar
    assert files['000.sha256'] == hex_of(img.foreign.diff_id)
    assert files['manifest.json'] == _foreign_manifest(img)


@pytest.mark.parametrize('fmt', ['tar', 'tar.gz'])
def test_foreign_layer_tar_that_does_not_match_is_refused(tmp_path, fmt):
    img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'),
                                      ['https://example.invalid/a.tgz'],
                                      foreign_member=b'not the layer')
    out = str(tmp_path / 'image')
    proc = run_importer(img.path, out, '--format', fmt)
    assert_failed(proc, out, img.foreign.digest, img.foreign.diff_id)
