"""FromTarball against tarballs written by skopeo and by hand.

skopeo is the independent writer: its docker-archive output must read back
with layer contents that hash to the config's diff_ids. Synthesized blobs
must be byte-identical to Python's stdlib gzip at level 9 with upstream's
frozen mtime (what upstream produced), and `gzip -t` must accept them.
"""
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
import tempfile
import tracemalloc
import zlib

import pytest

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import foreign_layers
from containerregistry.client.v2_2 import leftovers
from containerregistry.client.v2_2 import save
from containerregistry.testing import foreign
from containerregistry.testing import images
from containerregistry.transport import pooled_http

MTIME = 1225856967


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def upstream_gzip(data: bytes) -> bytes:
    """What upstream's FromTarball produced: stdlib gzip, frozen clock."""
    return gzip.compress(data, compresslevel=9, mtime=MTIME)


def skopeo_archive(tmp_path, built: images.Built, ref: str = 'foo/bar:baz',
                   name: str = 'archive.tar') -> str:
    """`skopeo copy dir: → oci: → docker-archive:FILE:REF` of BUILT."""
    src = images.write_dir(str(tmp_path / ('dir-' + name)), built.manifest,
                           [built])
    oci = str(tmp_path / ('oci-' + name))
    out = str(tmp_path / name)
    images.skopeo('copy', 'dir:' + src, 'oci:' + oci + ':img')
    images.skopeo('copy', 'oci:' + oci + ':img', 'docker-archive:%s:%s'
                  % (out, ref))
    return out


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def hand_tarball(path: str, entries, members) -> str:
    """A tar holding MEMBERS ({name: bytes}) plus manifest.json=ENTRIES."""
    with tarfile.open(path, 'w') as tar:
        for name, data in members.items():
            add_member(tar, name, data)
        if entries is not None:
            add_member(tar, 'manifest.json', json.dumps(entries).encode())
    return path


def config_for(tars) -> bytes:
    return json.dumps({
        'architecture': 'amd64', 'os': 'linux',
        'rootfs': {'type': 'layers', 'diff_ids': [sha256(t) for t in tars]},
        'history': [{'created_by': 'layer %d' % i} for i in range(len(tars))],
    }, sort_keys=True).encode()


LAYERS = [images.make_layer(11), images.make_layer(12, 30000, 'text'),
          images.make_layer(13, 0, files={'etc/motd': b'hello\n'})]


@pytest.fixture(scope='module')
def skopeo_tar(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('skopeo')
    built = images.build_image(LAYERS, fmt='oci')
    return built, skopeo_archive(tmp, built)


def test_gzip_header_is_upstreams():
    assert compression.gzip_header(9) == bytes.fromhex('1f8b0800c717114902ff')
    assert compression.gzip_header() == bytes.fromhex('1f8b0800c717114902ff')


class _Dribble:
    """A reader returning at most N bytes per read."""

    def __init__(self, data: bytes, n: int):
        self._f = io.BytesIO(data)
        self._n = n

    def read(self, amt: int = -1) -> bytes:
        return self._f.read(self._n if amt is None or amt < 0
                            else min(amt, self._n))


@pytest.mark.parametrize('data', [
    b'',
    b'a',
    images.make_layer(1, 200000, 'text'),
    images.make_layer(2, 300000, 'random'),
], ids=['empty', 'one', 'text', 'random'])
def test_gzip_stream_equals_stdlib_at_any_chunking(data, tmp_path):
    expected = upstream_gzip(data)
    for chunk in (1, 7, 4096, 1 << 20):
        if chunk == 1 and len(data) > 1000:
            continue
        out = io.BytesIO()
        digest, size = compression.gzip_stream(_Dribble(data, chunk), out)
        assert out.getvalue() == expected
        assert (digest, size) == (sha256(expected), len(expected))
    path = tmp_path / 'x.gz'
    path.write_bytes(expected)
    assert subprocess.run(['gzip', '-t', str(path)]).returncode == 0
    assert subprocess.run(['gzip', '-dc', str(path)],
                          capture_output=True).stdout == data


def test_skopeo_archive_reads_back(skopeo_tar):
    built, path = skopeo_tar
    with docker_image.FromTarball(path) as img:
        assert img.config_file().encode() == built.config
        diff_ids = json.loads(built.config)['rootfs']['diff_ids']
        assert img.diff_ids() == list(reversed(diff_ids))
        for digest, diff_id, layer in zip(img.fs_layers(), img.diff_ids(),
                                          reversed(built.layers)):
            blob = img.blob(digest)
            assert blob[:10] == bytes.fromhex('1f8b0800c717114902ff')
            assert blob == upstream_gzip(layer.tar)
            assert sha256(blob) == digest
            assert img.blob_size(digest) == len(blob)
            assert sha256(img.uncompressed_blob(digest)) == diff_id
            assert img.uncompressed_layer(diff_id) == layer.tar
            assert img.digest_to_diff_id(digest) == diff_id

        expected = {
            'config': {'digest': sha256(built.config),
                       'mediaType': docker_http.CONFIG_JSON_MIME,
                       'size': len(built.config)},
            'layers': [{'digest': sha256(upstream_gzip(l.tar)),
                        'mediaType': docker_http.LAYER_MIME,
                        'size': len(upstream_gzip(l.tar))}
                       for l in built.layers],
            'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
            'schemaVersion': 2,
        }
        text = json.dumps(expected, sort_keys=True)
        assert img.manifest() == text
        assert img.digest() == sha256(text.encode())
        assert img.media_type() == docker_http.MANIFEST_SCHEMA2_MIME
        assert img.blob(img.config_blob()) == built.config


def test_name_selects_entry_and_unknown_name_fails(skopeo_tar):
    _, path = skopeo_tar
    with docker_image.FromTarball(
            path, name=docker_name.Tag('docker.io/foo/bar:baz')) as img:
        assert img.config_file()
    with pytest.raises(ValueError, match='Unable to find nope/x:y'):
        with docker_image.FromTarball(path, name='nope/x:y'):
            pass


def test_outer_gzip_and_dot_slash_members(skopeo_tar, tmp_path):
    built, path = skopeo_tar
    with docker_image.FromTarball(path) as img:
        digest = img.digest()
    gz = tmp_path / 'archive.tar.gz'
    with open(path, 'rb') as src, gzip.open(gz, 'wb') as dst:
        dst.write(src.read())
    with docker_image.FromTarball(str(gz)) as img:
        assert img.digest() == digest
    dotted = tmp_path / 'dotted.tar'
    extracted = tmp_path / 'x'
    extracted.mkdir()
    subprocess.run(['tar', '-xf', path, '-C', str(extracted)], check=True)
    subprocess.run(['tar', '-cf', str(dotted), '-C', str(extracted), '.'],
                   check=True)
    names = tarfile.open(dotted).getnames()
    assert './manifest.json' in names
    with docker_image.FromTarball(str(dotted)) as img:
        assert img.digest() == digest
        assert img.config_file().encode() == built.config


# `docker save | CODEC`, made by the command line tools themselves.
OUTER = {'gzip': ['gzip', '-c'], 'zstd': ['zstd', '-q', '-c'],
         'bzip2': ['bzip2', '-c'], 'xz': ['xz', '-c']}


@pytest.mark.parametrize('codec', sorted(OUTER))
def test_compressed_tarball(skopeo_tar, tmp_path, codec):
    _, path = skopeo_tar
    with docker_image.FromTarball(path) as img:
        want = (img.digest(), [img.blob(d) for d in img.fs_layers()])
    with open(path, 'rb') as src:
        packed = subprocess.run(OUTER[codec], stdin=src, capture_output=True,
                                check=True).stdout
    outer = tmp_path / ('archive.tar.' + codec)
    outer.write_bytes(packed)
    with docker_image.FromTarball(str(outer)) as img:
        assert (img.digest(), [img.blob(d) for d in img.fs_layers()]) == want

    cut = tmp_path / ('cut.tar.' + codec)
    cut.write_bytes(packed[:len(packed) // 2])
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(str(cut)) as img:
            img.digest()
    assert ('cut.tar.%s is not a tar archive (bad %s data' % (codec, codec)
            in one_line_error(exc))


def test_zstd_tarball_without_zstd_support(skopeo_tar, tmp_path, monkeypatch):
    _, path = skopeo_tar
    with open(path, 'rb') as src:
        packed = subprocess.run(OUTER['zstd'], stdin=src, capture_output=True,
                                check=True).stdout
    outer = tmp_path / 'archive.tar.zst'
    outer.write_bytes(packed)
    monkeypatch.setattr(compression, '_zstd_module', lambda: None)
    monkeypatch.setattr(compression, 'ZSTD_COMMAND', 'no-such-zstd-command')
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(str(outer)) as img:
            img.digest()
    assert one_line_error(exc) == (
        '%s is zstd-compressed; reading it needs %s' % (outer, compression.ZSTD_NEEDS))


def test_gzipped_members_pass_through(tmp_path):
    blobs = [images.gzip_bytes(t) for t in LAYERS[:2]]
    config = config_for(LAYERS[:2])
    path = hand_tarball(str(tmp_path / 'gz.tar'),
                        [{'Config': 'c.json', 'RepoTags': ['a/b:c'],
                          'Layers': ['l0.tar.gz', 'l1.tar.gz']}],
                        {'c.json': config, 'l0.tar.gz': blobs[0],
                         'l1.tar.gz': blobs[1]})
    with docker_image.FromTarball(path) as img:
        layers = json.loads(img.manifest())['layers']
        assert [l['digest'] for l in layers] == [sha256(b) for b in blobs]
        assert [l['size'] for l in layers] == [len(b) for b in blobs]
        for blob, tar in zip(blobs, LAYERS):
            assert img.blob(sha256(blob)) == blob
            assert img.uncompressed_blob(sha256(blob)) == tar
            assert img.uncompressed_layer(sha256(tar)) == tar


def test_layer_sources_descriptor_and_symlinked_layers(tmp_path):
    tars = LAYERS[:2]
    config = config_for(tars)
    foreign = {'digest': 'sha256:' + 'f' * 64,
               'mediaType': docker_http.FOREIGN_LAYER_MIME, 'size': 12345,
               'urls': ['https://example.com/layer']}
    path = str(tmp_path / 'foreign.tar')
    with tarfile.open(path, 'w') as tar:
        add_member(tar, 'c.json', config)
        add_member(tar, 'blobs/base.tar', tars[0])
        link = tarfile.TarInfo('base/layer.tar')
        link.type = tarfile.SYMTYPE
        link.linkname = '../blobs/base.tar'
        tar.addfile(link)
        add_member(tar, 'top/layer.tar', tars[1])
        add_member(tar, 'manifest.json', json.dumps([{
            'Config': 'c.json', 'RepoTags': ['w/x:y'],
            'Layers': ['base/layer.tar', 'top/layer.tar'],
            'LayerSources': {sha256(tars[0]): foreign}}]).encode())
    with docker_image.FromTarball(path) as img:
        layers = json.loads(img.manifest())['layers']
        assert layers[0] == foreign
        assert list(layers[0]) == ['digest', 'mediaType', 'size', 'urls']
        assert layers[1]['digest'] == sha256(upstream_gzip(tars[1]))
        assert img.uncompressed_blob(foreign['digest']) == tars[0]
        assert img.blob_size(foreign['digest']) == 12345
        assert foreign['digest'] not in img.distributable_blob_set()


def test_join_layers_placeholder_is_not_the_foreign_blob(tmp_path):
    """An empty placeholder is no blob; as a tar it is read as upstream."""
    img = foreign.join_layers_tarball(
        str(tmp_path / 'win.tar'), ['https://example.invalid/a.tgz',
                                    'http://example.invalid/b.tgz'])
    digest = img.foreign.digest
    with docker_image.FromTarball(img.path) as image:
        assert json.loads(image.manifest())['layers'][0] == img.descriptor
        assert image.blob_size(digest) == len(img.foreign.blob)
        assert image.distributable_blob_set() == {
            sha256(img.config), sha256(upstream_gzip(img.own.tar))}
        for read in (image.blob, image.blob_stream):
            with pytest.raises(docker_image.ForeignLayerUnavailableError) as e:
                read(digest)
            assert e.value.digest == digest
            assert e.value.urls == img.descriptor['urls']
            assert str(e.value) == (
                'foreign layer %s is not in %s (it holds a placeholder, %s); '
                'its URLs: https://example.invalid/a.tgz, '
                'http://example.invalid/b.tgz' % (
                    digest, img.path,
                    json.loads(_member(img.path, 'manifest.json'))[0][
                        'Layers'][0]))
        assert image.uncompressed_blob(digest) == b''
        assert image.uncompressed_layer(img.foreign.diff_id) == b''
        assert image.blob_range(digest) is None
        with image.stand_in(digest, compressed=True) as f:
            assert f.read() == upstream_gzip(b'')
        with image.stand_in(digest, compressed=False) as f:
            assert f.read() == b''
        assert image.stand_in(sha256(upstream_gzip(img.own.tar)), True) is None


def test_foreign_layer_whose_member_is_the_blob(tmp_path):
    """A placeholder that is the very blob serves it like any other."""
    blob = images.layer_from_tar(images.make_layer(900, 6000)).blob
    made = foreign.join_layers_tarball(
        str(tmp_path / 'win.tar'), ['https://example.invalid/a.tgz'],
        seed=900, foreign_member=blob)
    assert made.foreign.blob == blob
    with docker_image.FromTarball(made.path) as image:
        assert image.blob(made.foreign.digest) == made.foreign.blob
        assert image.stand_in(made.foreign.digest, True) is None
        assert image.stand_in(made.foreign.digest, False) is None
        assert image.uncompressed_layer(made.foreign.diff_id) == made.foreign.tar


def test_fetching_completes_the_placeholder(tmp_path):
    """foreign_layers.Fetching reads the layer from its URLs, once."""
    img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'), [])
    with foreign.serve({'/l.tgz': img.foreign.blob}) as server:
        img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'),
                                          [server.url('/l.tgz')])
        with docker_image.FromTarball(img.path) as tarball, \
                foreign_layers.Fetching(tarball, pooled_http.Http()) as image:
            assert image.blob(img.foreign.digest) == img.foreign.blob
            assert image.uncompressed_blob(img.foreign.digest) == \
                img.foreign.tar
            out = str(tmp_path / 'fast')
            save.fast(image, out)
            with open(os.path.join(out, '000.tar.gz'), 'rb') as f:
                assert f.read() == img.foreign.blob
        assert len(server.seen) == 1


def test_foreign_placeholder_survives_saving_again(tmp_path):
    """save.tarball keeps the placeholder and its LayerSources entry."""
    img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'),
                                      ['https://example.invalid/a.tgz'])
    again = str(tmp_path / 'again.tar')
    with docker_image.FromTarball(img.path) as image, \
            tarfile.open(again, 'w') as tar:
        save.tarball(docker_name.Tag('example.com/win/app:v2', strict=False),
                     image, tar)
    entry, = json.loads(_member(again, 'manifest.json'))
    assert entry['LayerSources'] == {img.foreign.diff_id: img.descriptor}
    assert _member(again, entry['Layers'][0]) == b''
    with docker_image.FromTarball(again) as copy, \
            docker_image.FromTarball(img.path) as original:
        assert copy.manifest() == original.manifest()


def _member(path: str, name: str) -> bytes:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read()


def test_single_tag_in_repositories_picks_image(tmp_path):
    a, b = LAYERS[:1], LAYERS[1:2]
    members = {'a.json': config_for(a), 'b.json': config_for(b),
               'a.tar': a[0], 'b.tar': b[0],
               'repositories': json.dumps({'bazel/b': {'tag': 'x'}}).encode()}
    entries = [{'Config': 'a.json', 'Layers': ['a.tar'], 'RepoTags': ['bazel/a:tag']},
               {'Config': 'b.json', 'Layers': ['b.tar'], 'RepoTags': ['bazel/b:tag']}]
    path = hand_tarball(str(tmp_path / 'two.tar'), entries, members)
    with docker_image.FromTarball(path) as img:
        assert img.config_file().encode() == config_for(b)
    with docker_image.FromTarball(path, name='bazel/a:tag') as img:
        assert img.config_file().encode() == config_for(a)


def one_line_error(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert '\n' not in text and text
    assert isinstance(exc.value, ValueError)
    return text


def test_several_images_without_name(tmp_path):
    a, b = LAYERS[:1], LAYERS[1:2]
    members = {'a.json': config_for(a), 'b.json': config_for(b),
               'a.tar': a[0], 'b.tar': b[0]}
    entries = [{'Config': 'a.json', 'Layers': ['a.tar'], 'RepoTags': ['r/a:1']},
               {'Config': 'b.json', 'Layers': ['b.tar'], 'RepoTags': ['r/b:2']}]
    path = hand_tarball(str(tmp_path / 'two.tar'), entries, members)
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(path):
            pass
    text = one_line_error(exc)
    assert 'holds 2 images' in text and 'r/a:1, r/b:2' in text
    members['repositories'] = json.dumps(
        {'r/a': {'1': 'x'}, 'r/b': {'2': 'y'}}).encode()
    path = hand_tarball(str(tmp_path / 'two-repos.tar'), entries, members)
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(path):
            pass
    assert 'give a name' in one_line_error(exc)


def test_not_a_tar(tmp_path):
    path = tmp_path / 'junk.tar'
    path.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(str(path)):
            pass
    assert 'is not a tar archive' in one_line_error(exc)
    bad_gz = tmp_path / 'junk.tar.gz'
    bad_gz.write_bytes(b'\x1f\x8b' + os.urandom(100))
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(str(bad_gz)):
            pass
    assert 'is not a tar archive' in one_line_error(exc)
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(str(tmp_path / 'missing.tar')):
            pass
    assert 'cannot read tarball' in one_line_error(exc)


def test_no_manifest_json(tmp_path):
    path = hand_tarball(str(tmp_path / 'v1.tar'), None, {'repositories': b'{}'})
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(path):
            pass
    assert 'has no manifest.json' in one_line_error(exc)


def test_escaping_members_are_rejected(tmp_path):
    config = config_for(LAYERS[:1])
    path = hand_tarball(str(tmp_path / 'evil.tar'),
                        [{'Config': 'c.json', 'Layers': ['l.tar']}],
                        {'c.json': config, 'l.tar': LAYERS[0],
                         '../evil': b'x'})
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(path):
            pass
    assert "member '../evil' escapes the archive" in one_line_error(exc)

    path = hand_tarball(str(tmp_path / 'ref.tar'),
                        [{'Config': 'c.json', 'Layers': ['../../etc/passwd']}],
                        {'c.json': config})
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(path):
            pass
    assert 'outside the archive' in one_line_error(exc)

    path = str(tmp_path / 'link.tar')
    with tarfile.open(path, 'w') as tar:
        add_member(tar, 'c.json', config)
        link = tarfile.TarInfo('l/layer.tar')
        link.type = tarfile.SYMTYPE
        link.linkname = '../../outside.tar'
        tar.addfile(link)
        add_member(tar, 'manifest.json', json.dumps(
            [{'Config': 'c.json', 'Layers': ['l/layer.tar']}]).encode())
    with docker_image.FromTarball(path) as img:
        with pytest.raises(ValueError) as exc:
            img.manifest()
        assert 'points outside the archive' in one_line_error(exc)


def test_missing_member_and_layer_count(tmp_path):
    config = config_for(LAYERS[:2])
    path = hand_tarball(str(tmp_path / 'missing.tar'),
                        [{'Config': 'c.json', 'Layers': ['a.tar', 'b.tar']}],
                        {'c.json': config, 'a.tar': LAYERS[0]})
    with docker_image.FromTarball(path) as img:
        with pytest.raises(ValueError) as exc:
            img.manifest()
        assert "has no member 'b.tar'" in one_line_error(exc)
    path = hand_tarball(str(tmp_path / 'short.tar'),
                        [{'Config': 'c.json', 'Layers': ['a.tar']}],
                        {'c.json': config, 'a.tar': LAYERS[0]})
    with docker_image.FromTarball(path) as img:
        with pytest.raises(ValueError) as exc:
            img.manifest()
        assert 'lists 1 layers but the config has 2' in one_line_error(exc)
    path = hand_tarball(str(tmp_path / 'noconfig.tar'),
                        [{'Config': 'c.json', 'Layers': []}], {})
    with pytest.raises(ValueError) as exc:
        with docker_image.FromTarball(path) as img:
            img.config_file()
    assert "has no member 'c.json'" in one_line_error(exc)


@pytest.mark.parametrize('config, needle', [
    (b'{"rootfs": ', 'the config is not valid JSON'),
    (b'{"os": "linux"}', 'the config has no rootfs.diff_ids'),
    (b'{"rootfs": {"diff_ids": "sha256:ab"}}', 'the config has no rootfs.diff_ids'),
    (b'[1, 2]', 'the config has no rootfs.diff_ids'),
], ids=['not-json', 'no-rootfs', 'not-a-list', 'not-an-object'])
def test_config_without_diff_ids(tmp_path, config, needle):
    path = hand_tarball(str(tmp_path / 'cfg.tar'),
                        [{'Config': 'c.json', 'Layers': ['a.tar']}],
                        {'c.json': config, 'a.tar': LAYERS[0]})
    with docker_image.FromTarball(path) as img:
        with pytest.raises(ValueError) as exc:
            img.manifest()
    assert one_line_error(exc).startswith('%s: %s' % (path, needle))


def test_temporary_files_go_on_exit_and_image_stays_usable(
        skopeo_tar, tmp_path, monkeypatch):
    _, path = skopeo_tar
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    gz = tmp_path / 'outer.tar.gz'
    with open(path, 'rb') as src, gzip.open(gz, 'wb') as dst:
        dst.write(src.read())
    img = docker_image.FromTarball(str(gz))
    with img:
        digest = img.fs_layers()[0]
        blob = img.blob(digest)
        assert [n for n in os.listdir(tmp_path) if n.startswith('cr-tarball-')]
    assert not [n for n in os.listdir(tmp_path) if n.startswith('cr-tarball-')]
    assert img.blob(digest) == blob
    with img:
        assert img.blob(digest) == blob
    assert not [n for n in os.listdir(tmp_path) if n.startswith('cr-tarball-')]


def test_large_layer_is_never_held_in_memory(tmp_path):
    size = 32 << 20
    layer = tmp_path / 'big.tar'
    diff_id = hashlib.sha256()
    with open(layer, 'wb') as f:  # incompressible, so the gzip is big too
        for i in range(size >> 20):
            chunk = random.Random(i).randbytes(1 << 20)
            diff_id.update(chunk)
            f.write(chunk)
    config = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': [
        'sha256:' + diff_id.hexdigest()]}}).encode()
    path = str(tmp_path / 'big-image.tar')
    with tarfile.open(path, 'w') as tar:
        add_member(tar, 'c.json', config)
        tar.add(str(layer), 'big/layer.tar')
        add_member(tar, 'manifest.json', json.dumps(
            [{'Config': 'c.json', 'Layers': ['big/layer.tar']}]).encode())
    tracemalloc.start()
    try:
        with docker_image.FromTarball(path) as img:
            digest = img.fs_layers()[0]
            h = hashlib.sha256()
            with img.blob_stream(digest) as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    h.update(chunk)
            assert 'sha256:' + h.hexdigest() == digest
            n = 0
            with img.uncompressed_blob_stream(digest) as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    n += len(chunk)
            assert n == size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_many_large_layers_on_a_thread_pool(tmp_path):
    # More layers than threads, large enough to be sampled for their cost.
    tars = [images.make_layer(40 + i, (1 + i % 2) << 20,
                              'text' if i % 2 else 'random')
            for i in range(5)]
    path = hand_tarball(str(tmp_path / 'five.tar'),
                        [{'Config': 'c.json',
                          'Layers': ['l%d.tar' % i for i in range(5)]}],
                        dict({'c.json': config_for(tars)},
                             **{'l%d.tar' % i: t for i, t in enumerate(tars)}))
    digests = set()
    for threads in (1, 2, 32):
        with docker_image.FromTarball(path, threads=threads) as img:
            layers = json.loads(img.manifest())['layers']
            assert [l['digest'] for l in layers] == [
                sha256(upstream_gzip(t)) for t in tars]
            digests.add(img.digest())
    assert len(digests) == 1


def test_diff_id_mismatch_is_found_and_final(tmp_path, monkeypatch):
    tars = LAYERS
    other = images.make_layer(99)
    path = hand_tarball(str(tmp_path / 'bad.tar'),
                        [{'Config': 'c.json',
                          'Layers': ['a.tar', 'b.tar', 'c.tar']}],
                        {'c.json': config_for(tars), 'a.tar': tars[0],
                         'b.tar': other, 'c.tar': tars[2]})
    with docker_image.FromTarball(path, threads=2) as img:
        with pytest.raises(ValueError) as exc:
            img.manifest()
        text = one_line_error(exc)
        assert isinstance(exc.value, docker_image.DigestMismatchedError)
        assert ('layer 1 (b.tar) does not match the config: its tar hashes '
                'to %s, the config says %s' % (sha256(other), sha256(tars[1]))
                in text)
        # The failure is remembered rather than computed again.
        monkeypatch.setattr(compression, 'gzip_stream', None)
        with pytest.raises(ValueError) as again:
            img.fs_layers()
        assert str(again.value) == text


def test_gzipped_member_with_bad_crc(tmp_path):
    blob = bytearray(upstream_gzip(LAYERS[0]))
    blob[-5] ^= 0x10
    path = hand_tarball(str(tmp_path / 'crc.tar'),
                        [{'Config': 'c.json', 'Layers': ['a.tar.gz']}],
                        {'c.json': config_for(LAYERS[:1]),
                         'a.tar.gz': bytes(blob)})
    with docker_image.FromTarball(path) as img:
        with pytest.raises(ValueError) as exc:
            img.manifest()
    assert ("layer 'a.tar.gz' is not valid gzip data (CRC check failed"
            in one_line_error(exc))


def test_failed_enter_leaves_no_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    gz = tmp_path / 'v1.tar.gz'
    raw = hand_tarball(str(tmp_path / 'v1.tar'), None, {'repositories': b'{}'})
    with open(raw, 'rb') as src, gzip.open(gz, 'wb') as dst:
        dst.write(src.read())
    with pytest.raises(ValueError, match='has no manifest.json'):
        with docker_image.FromTarball(str(gz)):
            pass
    assert not [n for n in os.listdir(tmp_path) if n.startswith('cr-tarball-')]


def base_first(img) -> list:
    return [l['digest'] for l in json.loads(img.manifest())['layers']]


def gz_and_plain_tarball(tmp_path) -> str:
    """Layer 0 a gzipped member, layer 1 a plain tar member."""
    return hand_tarball(str(tmp_path / 'mixed.tar'),
                        [{'Config': 'c.json', 'RepoTags': ['a/b:c'],
                          'Layers': ['l0.tar.gz', 'l1.tar']}],
                        {'c.json': config_for(LAYERS[:2]),
                         'l0.tar.gz': images.gzip_bytes(LAYERS[0]),
                         'l1.tar': LAYERS[1]})


def test_blob_range_points_at_checked_bytes(tmp_path):
    path = gz_and_plain_tarball(tmp_path)
    with docker_image.FromTarball(path) as img:
        digests = base_first(img)
        for digest, tar in zip(digests, LAYERS[:2]):
            found = img.blob_range(digest)
            with open(found.path, 'rb') as f:
                f.seek(found.offset)
                assert sha256(f.read(found.size)) == digest
            with found.open() as f:
                assert sha256(f.read()) == digest
            assert found.diff_id == sha256(tar)
        # The gzipped member is read where it lies in the tarball.
        assert img.blob_range(digests[0]).path == path
        assert img.blob_range(digests[1]).path != path
        assert img.blob_range(img.config_blob()) is None


def flip_a_byte(path: str, found: docker_image.FileRange) -> None:
    """Same size, one byte in the middle of FOUND flipped, another mtime."""
    with open(path, 'r+b') as f:
        f.seek(found.offset + found.size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xff]))
    os.utime(path, ns=(0, 12345))


# What reading the damaged gzipped member raises, by the sink: the blob
# digest (save.fast copies it), or the inflater first (save.uncompressed).
CHANGED = {'fast': (docker_image.DigestMismatchedError,),
           'uncompressed': (docker_image.DigestMismatchedError, OSError,
                            EOFError, zlib.error)}


@pytest.mark.parametrize('sink', sorted(CHANGED))
def test_save_after_the_tarball_changed_checks_again(tmp_path, sink):
    from containerregistry.client.v2_2 import save
    path = gz_and_plain_tarball(tmp_path)
    with docker_image.FromTarball(path) as img:
        digest = base_first(img)[0]
        flip_a_byte(path, img.blob_range(digest))
        assert img.blob_range(digest) is None
        with pytest.raises(CHANGED[sink]):
            getattr(save, sink)(img, str(tmp_path / 'out'))
    assert os.listdir(tmp_path / 'out') == []


def test_uncompressed_inflates_checked_ranges_once(tmp_path, monkeypatch):
    """save.uncompressed inflates what the image checked without reading it
    through blob_stream again, and writes the layers' tars."""
    from containerregistry.client.v2_2 import save
    path = gz_and_plain_tarball(tmp_path)
    out = tmp_path / 'out'
    with docker_image.FromTarball(path) as img:
        img.manifest()

        def refuse(digest):
            raise AssertionError('read again: %s' % digest)
        monkeypatch.setattr(img, 'blob_stream', refuse)
        save.uncompressed(img, str(out))
    assert (out / '000.tar').read_bytes() == LAYERS[0]
    assert (out / '001.tar').read_bytes() == LAYERS[1]
    assert (out / '000.sha256').read_text() == sha256(LAYERS[0]).split(':')[1]


def test_uncompressed_when_the_tarball_changes_while_copied(tmp_path, monkeypatch):
    """A change after the range was vouched for is caught by the checked read."""
    from containerregistry.client.v2_2 import save
    path = gz_and_plain_tarball(tmp_path)
    with docker_image.FromTarball(path) as img:
        digest = base_first(img)[0]
        real = img.blob_range
        changed = []

        def then_change(d):
            found = real(d)
            if d == digest and found is not None and not changed:
                changed.append(d)
                flip_a_byte(path, found)
            return found
        monkeypatch.setattr(img, 'blob_range', then_change)
        with pytest.raises(CHANGED['uncompressed']):
            save.uncompressed(img, str(tmp_path / 'out'))
        assert changed == [digest]
    assert os.listdir(tmp_path / 'out') == []


def test_uncompressed_range_is_the_checked_tar(tmp_path):
    """A plain member is its own tar; a gzipped one has a tar only with
    keep_tars, in a hidden directory inside TEMP_DIR."""
    path = gz_and_plain_tarball(tmp_path)
    with docker_image.FromTarball(path) as img:
        digests = base_first(img)
        assert img.uncompressed_range(digests[0]) is None
        plain = img.uncompressed_range(digests[1])
        assert (plain.path, plain.diff_id) == (path, sha256(LAYERS[1]))
        with plain.open() as f:
            assert f.read() == LAYERS[1]
        assert img.uncompressed_range(img.config_blob()) is None
    temp = tmp_path / 'temp'
    temp.mkdir()
    with docker_image.FromTarball(path, temp_dir=str(temp),
                                  keep_tars=True) as img:
        digests = base_first(img)
        kept = img.uncompressed_range(digests[0])
        assert kept.diff_id == sha256(LAYERS[0])
        (hidden,) = os.listdir(temp)
        assert hidden.startswith('.')
        assert os.path.dirname(kept.path) == str(temp / hidden)
        with kept.open() as f:
            assert f.read() == LAYERS[0]
        # A kept tar changed since it was hashed is vouched for no more.
        flip_a_byte(kept.path, kept)
        assert img.uncompressed_range(digests[0]) is None
    assert os.listdir(temp) == []


def test_uncompressed_links_kept_tars(tmp_path, monkeypatch):
    """With keep_tars on the output's filesystem, save.uncompressed writes
    the tars checked while the manifest was built: no blob is read again."""
    from containerregistry.client.v2_2 import save
    path = gz_and_plain_tarball(tmp_path)
    out = tmp_path / 'out'
    out.mkdir()
    with docker_image.FromTarball(path, temp_dir=str(out),
                                  keep_tars=True) as img:
        digests = base_first(img)

        def refuse(digest):
            raise AssertionError('read again: %s' % digest)
        monkeypatch.setattr(img, 'blob_stream', refuse)
        monkeypatch.setattr(img, 'blob_range', refuse)
        save.uncompressed(img, str(out))
        assert os.path.samefile(img.uncompressed_range(digests[0]).path,
                                out / '000.tar')
    assert (out / '000.tar').read_bytes() == LAYERS[0]
    assert (out / '001.tar').read_bytes() == LAYERS[1]
    assert sorted(os.listdir(out)) == [
        '000.sha256', '000.tar', '001.sha256', '001.tar', 'config.json',
        'digest', 'manifest.json']


@pytest.mark.parametrize('when', ['before', 'while-placed'])
def test_uncompressed_when_a_kept_tar_changes(tmp_path, monkeypatch, when):
    """A kept tar changed before or while it is placed is not used: the
    layer is inflated from the (intact) tarball instead."""
    from containerregistry.client.v2_2 import save
    path = gz_and_plain_tarball(tmp_path)
    out = tmp_path / 'out'
    out.mkdir()
    with docker_image.FromTarball(path, temp_dir=str(out),
                                  keep_tars=True) as img:
        digest = base_first(img)[0]
        kept = img.uncompressed_range(digest)
        if when == 'before':
            flip_a_byte(kept.path, kept)
        else:
            place = save._place_range

            def place_then_change(source, dest, what):
                place(source, dest, what)
                if source == kept:
                    # After the check: the link shares the change.
                    flip_a_byte(kept.path, kept)
            monkeypatch.setattr(save, '_place_range', place_then_change)
        save.uncompressed(img, str(out))
    assert (out / '000.tar').read_bytes() == LAYERS[0]
    assert (out / '001.tar').read_bytes() == LAYERS[1]


def test_remove_stale_temp_dirs(tmp_path):
    """Only directories of processes on this host that no longer run go."""
    from containerregistry.client.v2_2 import tarball_image
    dead = subprocess.Popen(['true'])
    dead.wait()
    host = leftovers.host()
    names = {
        'stale': '.cr-tarball-%d@%s-abc_12' % (dead.pid, host),
        'running': '.cr-tarball-%d@%s-def_34' % (os.getpid(), host),
        'elsewhere': '.cr-tarball-%d@%s-x-ghi_56' % (dead.pid, host),
        'unrelated': 'cr-tarball-%d@%s-jkl_78' % (dead.pid, host),
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / 'file').write_bytes(b'x')
    assert tarball_image.remove_stale_temp_dirs(str(tmp_path)) == [names['stale']]
    assert sorted(os.listdir(tmp_path)) == sorted(
        n for k, n in names.items() if k != 'stale')
    assert tarball_image.remove_stale_temp_dirs(str(tmp_path / 'nope')) == []
    # What FromTarball makes in a TEMP_DIR is found by that name.
    with docker_image.FromTarball(gz_and_plain_tarball(tmp_path),
                                  temp_dir=str(tmp_path)) as img:
        img.manifest()
        mine = [n for n in os.listdir(tmp_path)
                if n.startswith('.cr-tarball-%d@%s-' % (os.getpid(), host))
                and n != names['running']]
        assert len(mine) == 1


@pytest.mark.parametrize('private', [True, False])
def test_only_private_files_are_linked(tmp_path, private):
    """A range over a user's whole file is copied: the output must not
    share an inode with an input."""
    from containerregistry.client.v2_2 import save
    source = tmp_path / 'blob'
    source.write_bytes(b'layer bytes' * 100)
    dest = tmp_path / 'dest'
    found = docker_image.FileRange(str(source), 0, 1100, private=private)
    save._place_range(found, str(dest), 'blob')
    assert dest.read_bytes() == source.read_bytes()
    assert os.path.samefile(source, dest) == private


@pytest.mark.parametrize('link', [True, False])
@pytest.mark.parametrize('kernel', ['copy_file_range', 'EXDEV', 'none'])
def test_save_copies_checked_ranges(tmp_path, monkeypatch, kernel, link):
    """Checked ranges are copied in the kernel when it can; our own gzips,
    whole files, are hard-linked where the filesystem allows."""
    from containerregistry.client.v2_2 import save
    import errno

    def refuse(*unused):
        raise OSError(errno.EXDEV, 'cross-device')
    if kernel == 'EXDEV':
        monkeypatch.setattr(os, 'copy_file_range', refuse)
    elif kernel == 'none':
        monkeypatch.delattr(os, 'copy_file_range')
    if not link:
        monkeypatch.setattr(os, 'link', refuse)
    path = gz_and_plain_tarball(tmp_path)
    out = tmp_path / 'out'
    with docker_image.FromTarball(path, temp_dir=str(tmp_path)) as img:
        save.fast(img, str(out))
        digests = base_first(img)
        ours = img.blob(digests[1])
        assert [os.stat(out / n).st_nlink for n in ('000.tar.gz', '001.tar.gz')
                ] == [1, 2 if link else 1]
    assert (out / '000.tar.gz').read_bytes() == images.gzip_bytes(LAYERS[0])
    assert (out / '001.tar.gz').read_bytes() == ours
    assert [sha256((out / n).read_bytes()) for n in ('000.tar.gz', '001.tar.gz')] == digests
