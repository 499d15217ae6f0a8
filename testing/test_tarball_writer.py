"""The docker-save writer, checked with skopeo as the independent reader.

skopeo must load what we write and see the config's diff_ids in the layer
contents; member names, order, headers and metadata bytes are checked
against the format (v1 ids recomputed here from their definition).
"""
import gzip
import hashlib
import io
import json
import random
import tarfile
import tracemalloc
from typing import Dict, List, Optional

import pytest

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import tarball_writer
from containerregistry.client.v2_2 import v2_compat
from containerregistry.testing import images

def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def v1_id(digest: str, parent: str, raw_config: Optional[str] = None) -> str:
    data = digest.split(':')[1] + ' ' + parent
    if raw_config:
        data += ' ' + raw_config
    return hashlib.sha256(data.encode()).hexdigest()


class PartsImage(docker_image.DockerImage):
    """Like rules_docker's FromParts: only the five accessors it defines."""

    def __init__(self, config: bytes, tars: List[bytes],
                 manifest_layers: Optional[List[dict]] = None):
        self._config = config.decode()
        self._blobs = {}
        self._tars = {}
        layers = []
        for tar in tars:
            blob = images.gzip_bytes(tar)
            self._blobs[sha256(blob)] = blob
            self._tars[sha256(blob)] = tar
            layers.append({'mediaType': docker_http.LAYER_MIME,
                           'size': len(blob), 'digest': sha256(blob)})
        if manifest_layers is not None:
            layers = manifest_layers
        self._manifest = json.dumps({
            'schemaVersion': 2, 'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
            'config': {'mediaType': docker_http.CONFIG_JSON_MIME,
                       'size': len(config), 'digest': sha256(config)},
            'layers': layers}, sort_keys=True)
        self.calls: List[str] = []

    def manifest(self) -> str:
        return self._manifest

    def config_file(self) -> str:
        return self._config

    def uncompressed_blob(self, digest: str) -> bytes:
        self.calls.append('uncompressed_blob')
        if digest not in self._tars:
            return b''
        return self._tars[digest]

    def blob(self, digest: str) -> bytes:
        self.calls.append('blob')
        return self._blobs[digest]

    def blob_size(self, digest: str) -> int:
        return len(self._blobs[digest])

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


class StreamOnlyImage(docker_image.DockerImage):
    """A source that streams gzip blobs but cannot tell uncompressed sizes."""

    def __init__(self, config: bytes, blobs: List[bytes]):
        self._config = config.decode()
        self._blobs = {sha256(b): b for b in blobs}
        self._manifest = json.dumps({
            'schemaVersion': 2, 'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
            'config': {'mediaType': docker_http.CONFIG_JSON_MIME,
                       'size': len(config), 'digest': sha256(config)},
            'layers': [{'mediaType': docker_http.LAYER_MIME, 'size': len(b),
                        'digest': sha256(b)} for b in blobs]}, sort_keys=True)
        self.streamed: List[str] = []

    def manifest(self) -> str:
        return self._manifest

    def config_file(self) -> str:
        return self._config

    def blob(self, digest: str) -> bytes:
        raise AssertionError('blob() must not be used')

    def blob_stream(self, digest: str):
        self.streamed.append(digest)
        return io.BytesIO(self._blobs[digest])

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


def make_config(tars: List[bytes], history: Optional[List[dict]] = None,
                **extra) -> bytes:
    config = {'architecture': 'amd64', 'os': 'linux', 'created': images.CREATED,
              'config': {'Cmd': ['/bin/sh']},
              'rootfs': {'type': 'layers',
                         'diff_ids': [sha256(t) for t in tars]},
              'history': history if history is not None else [
                  {'created': images.CREATED, 'created_by': 'step %d' % i}
                  for i in range(len(tars))]}
    config.update(extra)
    return json.dumps(config, sort_keys=True).encode()


TARS = [images.make_layer(21), images.make_layer(22, 5000, 'text'),
        images.make_layer(23, 100)]


def write(path, tag_to_image, mode='w') -> str:
    with tarfile.open(str(path), mode) as tar:
        tarball_writer.multi_image_tarball(tag_to_image, tar)
    return str(path)


def members(path: str) -> Dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def skopeo_loads(tmp_path, path: str, name: str = '') -> dict:
    """skopeo's view of the archive: config, and diff_ids of layer contents."""
    ref = 'docker-archive:' + path + (':' + name if name else '')
    oci = tmp_path / ('oci-%d' % len(list(tmp_path.iterdir())))
    images.skopeo('copy', ref, 'oci:%s:x' % oci)
    index = json.loads((oci / 'index.json').read_text())
    manifest = json.loads((oci / 'blobs/sha256' / index['manifests'][0][
        'digest'].split(':')[1]).read_bytes())
    config = json.loads((oci / 'blobs/sha256' /
                         manifest['config']['digest'].split(':')[1]).read_bytes())
    contents = []
    for layer in manifest['layers']:
        data = (oci / 'blobs/sha256' / layer['digest'].split(':')[1]).read_bytes()
        if data[:2] == b'\x1f\x8b':
            data = gzip.decompress(data)
        contents.append(sha256(data))
    inspect = json.loads(images.skopeo('inspect', ref).stdout)
    return {'config': config, 'contents': contents, 'inspect': inspect}


def test_layout_bytes_and_skopeo_reads_it(tmp_path):
    config = make_config(TARS)
    image = PartsImage(config, TARS)
    tag = docker_name.Tag('bazel/app:latest', strict=False)
    path = write(tmp_path / 'out.tar', {tag: image})

    raw = config.decode()
    digests = [sha256(images.gzip_bytes(t)) for t in TARS]
    ids = []
    parent = ''
    for i, digest in enumerate(digests):
        parent = v1_id(digest, parent, raw if i == len(digests) - 1 else None)
        ids.append(parent)
    config_name = hashlib.sha256(config).hexdigest() + '.json'
    expected_names = [config_name]
    for layer_id in reversed(ids):
        expected_names += [layer_id + '/VERSION', layer_id + '/layer.tar',
                           layer_id + '/json']
    expected_names += ['repositories', 'manifest.json']

    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    assert [m.name for m in infos] == expected_names
    for m in infos:
        assert (m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname) == (
            0o644, 0, 0, 0, '', ''), m.name
        assert m.isfile()

    files = members(path)
    assert files[config_name] == config
    for layer_id, tar_bytes in zip(ids, TARS):
        assert files[layer_id + '/VERSION'] == b'1.0'
        assert files[layer_id + '/layer.tar'] == tar_bytes
    assert json.loads(files[ids[0] + '/json']) == {
        'id': ids[0], 'created': images.CREATED,
        'container_config': {'Cmd': ['step 0']}}
    assert files[ids[1] + '/json'] == json.dumps({
        'id': ids[1], 'parent': ids[0], 'created': images.CREATED,
        'container_config': {'Cmd': ['step 1']}}, sort_keys=True).encode()
    cfg = json.loads(config)
    top = {'id': ids[2], 'parent': ids[1]}
    top.update({k: cfg[k] for k in ('architecture', 'os', 'config', 'created')})
    assert files[ids[2] + '/json'] == json.dumps(top, sort_keys=True).encode()
    assert files['repositories'] == json.dumps(
        {'bazel/app': {'latest': ids[2]}}, sort_keys=True).encode()
    assert files['manifest.json'] == json.dumps([{
        'Config': config_name,
        'Layers': [i + '/layer.tar' for i in ids],
        'RepoTags': ['bazel/app:latest']}], sort_keys=True).encode()
    assert image.calls == ['uncompressed_blob'] * 3

    seen = skopeo_loads(tmp_path, path)
    assert seen['config']['rootfs']['diff_ids'] == cfg['rootfs']['diff_ids']
    assert seen['contents'] == cfg['rootfs']['diff_ids']
    assert seen['inspect']['Layers'] == cfg['rootfs']['diff_ids']


def test_empty_layers_are_throwaway(tmp_path):
    history = [{'created_by': 'ADD base'},
               {'created_by': 'ENV A=1', 'empty_layer': True},
               {'created_by': 'RUN x', 'comment': 'c', 'author': 'me'},
               {'created_by': 'CMD y', 'empty_layer': True}]
    config = make_config(TARS[:2], history)
    image = PartsImage(config, TARS[:2])
    path = write(tmp_path / 'out.tar',
                 {docker_name.Tag('r/e:1', strict=False): image})
    d0, d1 = [sha256(images.gzip_bytes(t)) for t in TARS[:2]]
    i0 = v1_id(d0, '')
    i1 = v1_id(v2_compat.EMPTY_TAR_DIGEST, i0)
    i2 = v1_id(d1, i1)
    i3 = v1_id(v2_compat.EMPTY_TAR_DIGEST, i2, config.decode())
    files = members(path)
    assert {n.split('/')[0] for n in files if '/' in n} == {i0, i2}
    assert json.loads(files[i2 + '/json']) == {
        'id': i2, 'parent': i1, 'container_config': {'Cmd': ['RUN x']},
        'comment': 'c', 'author': 'me'}
    assert json.loads(files['repositories']) == {'r/e': {'1': i3}}
    assert json.loads(files['manifest.json'])[0]['Layers'] == [
        i0 + '/layer.tar', i2 + '/layer.tar']
    seen = skopeo_loads(tmp_path, path)
    assert seen['contents'] == [sha256(t) for t in TARS[:2]]


def test_short_history_keeps_every_layer(tmp_path):
    config = make_config(TARS, history=[{'created_by': 'only one'}])
    path = write(tmp_path / 'out.tar',
                 {docker_name.Tag('r/s:1', strict=False): PartsImage(config, TARS)})
    layers = json.loads(members(path)['manifest.json'])[0]['Layers']
    assert len(layers) == 3
    assert skopeo_loads(tmp_path, path)['contents'] == [sha256(t) for t in TARS]
    no_history = json.loads(config)
    del no_history['history']
    config = json.dumps(no_history).encode()
    path = write(tmp_path / 'none.tar',
                 {docker_name.Tag('r/s:2', strict=False): PartsImage(config, TARS)})
    assert skopeo_loads(tmp_path, path)['contents'] == [sha256(t) for t in TARS]


def test_foreign_layers_become_layer_sources(tmp_path):
    foreign = {'mediaType': docker_http.FOREIGN_LAYER_MIME, 'size': 1234,
               'digest': 'sha256:' + 'e' * 64,
               'urls': ['https://example.com/base']}
    own = images.gzip_bytes(TARS[1])
    layers = [foreign, {'mediaType': docker_http.LAYER_MIME, 'size': len(own),
                        'digest': sha256(own)}]
    config = make_config([b'foreign-content', TARS[1]])
    image = PartsImage(config, [TARS[1]], manifest_layers=layers)
    path = write(tmp_path / 'out.tar',
                 {docker_name.Tag('r/f:1', strict=False): image})
    files = members(path)
    entry = json.loads(files['manifest.json'])[0]
    assert entry['LayerSources'] == {sha256(b'foreign-content'): foreign}
    base_id = v1_id(foreign['digest'], '')
    assert files[base_id + '/layer.tar'] == b''
    assert entry['Layers'][0] == base_id + '/layer.tar'
    plain = write(tmp_path / 'plain.tar', {
        docker_name.Tag('r/p:1', strict=False):
            PartsImage(make_config(TARS[:1]), TARS[:1])})
    assert 'LayerSources' not in json.loads(members(plain)['manifest.json'])[0]


def test_multi_image_shares_layers_and_reads_back(tmp_path):
    a = PartsImage(make_config(TARS[:2]), TARS[:2])
    b = PartsImage(make_config(TARS[:1] + TARS[2:], [
        {'created': images.CREATED, 'created_by': 'step 0'},
        {'created_by': 'other'}]), TARS[:1] + TARS[2:])
    ta = docker_name.Tag('r/a:1', strict=False)
    tb = docker_name.Tag('localhost:5000/r/b:2', strict=False)
    path = write(tmp_path / 'out.tar', {ta: a, tb: b})
    with tarfile.open(path) as tar:
        names = tar.getnames()
    base = v1_id(sha256(images.gzip_bytes(TARS[0])), '')
    assert names.count(base + '/layer.tar') == 1
    assert names[0].endswith('.json') and names[1].endswith('.json')
    entries = json.loads(members(path)['manifest.json'])
    assert [e['RepoTags'] for e in entries] == [['r/a:1'],
                                                ['localhost:5000/r/b:2']]
    assert entries[1]['Layers'][0] == base + '/layer.tar'
    repositories = json.loads(members(path)['repositories'])
    assert set(repositories) == {'r/a', 'localhost:5000/r/b'}
    for tag, image, tars in ((ta, a, TARS[:2]), (tb, b, TARS[:1] + TARS[2:])):
        with docker_image.FromTarball(path, name=tag) as img:
            assert img.config_file() == image.config_file()
            assert [img.uncompressed_layer(d) for d in reversed(img.diff_ids())] == tars
        seen = skopeo_loads(tmp_path, path, str(tag))
        assert seen['contents'] == [sha256(t) for t in tars]


def test_round_trip_through_from_tarball(tmp_path):
    config = make_config(TARS)
    first = write(tmp_path / 'first.tar',
                  {docker_name.Tag('r/rt:1', strict=False): PartsImage(config, TARS)})
    with docker_image.FromTarball(first) as img:
        digest = img.digest()
        manifest = img.manifest()
        second = write(tmp_path / 'second.tar', {
            docker_name.Tag('r/rt:1', strict=False): img})
    with docker_image.FromTarball(second) as img:
        assert img.digest() == digest
        assert img.manifest() == manifest
        third = write(tmp_path / 'third.tar.gz', {'r/rt:1': img}, mode='w:gz')
    # v1 ids hash blob digests: the first tarball's came from other gzip
    # settings, but from the second on the bytes are stable.
    assert members(first)['manifest.json'] != members(second)['manifest.json']
    assert members(second) == members(third)
    with docker_image.FromTarball(third) as again:
        assert again.digest() == digest


def test_streaming_source_of_unknown_size(tmp_path):
    blobs = [images.gzip_bytes(t) for t in TARS]
    image = StreamOnlyImage(make_config(TARS), blobs)
    path = write(tmp_path / 'out.tar',
                 {docker_name.Tag('r/st:1', strict=False): image})
    assert sorted(image.streamed) == sorted(sha256(b) for b in blobs)
    assert skopeo_loads(tmp_path, path)['contents'] == [sha256(t) for t in TARS]


def test_wrong_uncompressed_size_is_an_error(tmp_path):
    class Liar(PartsImage):
        def uncompressed_blob_stream(self, digest):
            return io.BytesIO(self._tars[digest])

        def uncompressed_blob_size(self, digest):
            return len(self._tars[digest]) - 1

    image = Liar(make_config(TARS[:1]), TARS[:1])
    with pytest.raises(tarball_writer.TarballWriteError, match='longer than'):
        write(tmp_path / 'out.tar', {docker_name.Tag('r/l:1', strict=False): image})

    class ShortLiar(Liar):
        def uncompressed_blob_size(self, digest):
            return len(self._tars[digest]) + 512

    image = ShortLiar(make_config(TARS[:1]), TARS[:1])
    with pytest.raises(tarball_writer.TarballWriteError, match='shorter than'):
        write(tmp_path / 'short.tar', {docker_name.Tag('r/l:1', strict=False): image})


def test_large_layer_streams_through(tmp_path):
    size = 24 << 20
    tar_path = tmp_path / 'big.tar'
    with open(tar_path, 'wb') as f:
        for i in range(size >> 20):
            f.write(random.Random(i).randbytes(1 << 20))
    gz_path = tmp_path / 'big.tar.gz'
    h = hashlib.sha256()
    diff = hashlib.sha256()
    with open(tar_path, 'rb') as src, open(gz_path, 'wb') as raw:
        with gzip.GzipFile(fileobj=raw, mode='wb', compresslevel=1, mtime=0) as dst:
            for chunk in iter(lambda: src.read(1 << 20), b''):
                diff.update(chunk)
                dst.write(chunk)
    with open(gz_path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    digest_file = tmp_path / '000.sha256'
    digest_file.write_text(h.hexdigest())
    config = json.dumps({'rootfs': {'type': 'layers',
                                    'diff_ids': ['sha256:' + diff.hexdigest()]},
                         'history': [{}]}).encode()
    out = tmp_path / 'out.tar'
    tracemalloc.start()
    try:
        with docker_image.FromDisk(config.decode(),
                                   [(str(digest_file), str(gz_path))]) as img:
            write(out, {docker_name.Tag('r/big:1', strict=False): img})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    with docker_image.FromTarball(str(out)) as img:
        with img.uncompressed_layer_stream('sha256:' + diff.hexdigest()) as f:
            check = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b''):
                check.update(chunk)
    assert check.hexdigest() == diff.hexdigest()


def test_tarball_takes_plain_string_names(tmp_path):
    path = tmp_path / 'out.tar'
    with tarfile.open(str(path), 'w') as tar:
        tarball_writer.tarball('r/str:7', PartsImage(make_config(TARS[:1]),
                                                     TARS[:1]), tar)
    assert json.loads(members(str(path))['manifest.json'])[0]['RepoTags'] == [
        'r/str:7']


def test_empty_tar_constants():
    assert sha256(v2_compat.EMPTY_TAR_BYTES) == v2_compat.EMPTY_TAR_DIGEST
    assert gzip.decompress(v2_compat.EMPTY_TAR_BYTES) == bytes(1024)
    assert sha256(bytes(1024)) == v2_compat.EMPTY_TAR_DIFF_ID
    with pytest.raises(v2_compat.BadDigestException):
        v2_compat.v1_layers({'layers': [{'digest': 'nocolon'}]},
                            json.dumps({'history': [{}]}))
