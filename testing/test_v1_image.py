"""v1 images and the v1 docker-save format (`client.v1`).

The v1 half of a docker-save tarball written by `v2_2.save` must read back
through `v1.docker_image.FromTarball` with the layer ids, chain and bytes
recomputed here from their definition; `v1.save` must write upstream's
members and bytes; a v1 image must serve as `tag_to_v1_image` for
`v2_2.save`, with skopeo as the independent reader of the result.
"""
import gzip
import hashlib
import io
import json
import random
import shutil
import tarfile
import tracemalloc
from typing import Dict, List, Optional

import pytest

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import disk_image
from containerregistry.client.v2_2 import save as v2_2_save
from containerregistry.testing import images

UPSTREAM_GZIP_MTIME = 1225856967
TARS = [images.make_layer(31), images.make_layer(32, 3000, 'text'),
        images.make_layer(33, 700)]
TAG = docker_name.Tag('bazel/app:v1', strict=False)


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def v1_id(blob_digest: str, parent: str, raw_config: str = '') -> str:
    """A v1 id as schema 1 conversion defines it."""
    data = blob_digest.split(':')[1] + ' ' + parent
    if raw_config:
        data += ' ' + raw_config
    return hashlib.sha256(data.encode()).hexdigest()


def make_config(tars: List[bytes]) -> str:
    return json.dumps({
        'architecture': 'amd64', 'os': 'linux', 'created': images.CREATED,
        'config': {'Cmd': ['/bin/sh']},
        'rootfs': {'type': 'layers', 'diff_ids': [sha256(t) for t in tars]},
        'history': [{'created': images.CREATED, 'created_by': 'step %d' % i}
                    for i in range(len(tars))]}, sort_keys=True)


def v22_image(tmp_path, tars: List[bytes] = TARS) -> disk_image.FromDisk:
    """A v2.2 image in the fast layout (what the puller writes)."""
    layers = []
    for i, tar in enumerate(tars):
        blob = images.gzip_bytes(tar)
        (tmp_path / ('%03d.tar.gz' % i)).write_bytes(blob)
        (tmp_path / ('%03d.sha256' % i)).write_text(sha256(blob)[7:])
        layers.append((str(tmp_path / ('%03d.sha256' % i)),
                       str(tmp_path / ('%03d.tar.gz' % i))))
    return disk_image.FromDisk(make_config(tars), layers)


def expected_ids(tars: List[bytes], raw_config: str) -> List[str]:
    """v1 ids, top first, of an image of TARS saved by v2_2.save."""
    ids = []
    parent = ''
    for i, tar in enumerate(tars):
        top = i == len(tars) - 1
        parent = v1_id(sha256(images.gzip_bytes(tar)), parent,
                       raw_config if top else '')
        ids.append(parent)
    return ids[::-1]


def save_v22(tmp_path, name: str = 'v22.tar') -> str:
    path = str(tmp_path / name)
    layout = tmp_path / ('fast-' + name)
    layout.mkdir()
    with v22_image(layout) as img, tarfile.open(path, 'w') as tar:
        v2_2_save.tarball(TAG, img, tar)
    return path


def members(path: str) -> Dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def write_tar(path, files: Dict[str, bytes]) -> str:
    with tarfile.open(str(path), 'w') as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_join_layers_imports():
    from containerregistry.client.v1 import docker_image as v1_image
    from containerregistry.client.v1 import save as v1_save
    for name in ('DockerImage', 'FromShardedTarball', 'FromTarball', 'Random'):
        assert isinstance(getattr(v1_image, name), type), name
    assert callable(v1_save.multi_image_tarball)
    assert callable(v1_save.tarball)
    with pytest.raises(TypeError, match='abstract'):
        v1_image.DockerImage()


def test_reads_the_v1_half_of_a_v22_save(tmp_path):
    from containerregistry.client.v1 import docker_image as v1_image
    path = save_v22(tmp_path)
    raw_config = make_config(TARS)
    ids = expected_ids(TARS, raw_config)
    with v1_image.FromTarball(path) as img:
        assert img.top() == ids[0]
        assert img.repositories() == {'bazel/app': {'v1': ids[0]}}
        assert img.ancestry(img.top()) == ids
        assert img.ancestry(ids[1]) == ids[1:]
        assert [img.parent(i) for i in ids] == ids[1:] + [None]
        for layer_id, tar in zip(ids, TARS[::-1]):
            assert img.uncompressed_layer(layer_id) == tar
            assert img.uncompressed_layer_size(layer_id) == len(tar)
            assert img.layer(layer_id) == gzip.compress(
                tar, compresslevel=9, mtime=UPSTREAM_GZIP_MTIME)
        assert [img.diff_id(i) for i in ids[::-1]] == json.loads(
            raw_config)['rootfs']['diff_ids']
        base = json.loads(img.json(ids[-1]))
        assert base == {'id': ids[-1], 'created': images.CREATED,
                        'container_config': {'Cmd': ['step 0']}}
        top = json.loads(img.json(ids[0]))
        assert (top['id'], top['parent'], top['os'], top['config']) == (
            ids[0], ids[1], 'linux', {'Cmd': ['/bin/sh']})
    with v1_image.FromTarball(path, name='bazel/app:v1',
                              compresslevel=1) as img:
        assert img.top() == ids[0]
        assert img.layer(ids[0]) == gzip.compress(
            TARS[-1], compresslevel=1, mtime=UPSTREAM_GZIP_MTIME)


def test_reads_a_gzipped_outer_tarball(tmp_path):
    from containerregistry.client.v1 import docker_image as v1_image
    path = save_v22(tmp_path)
    gz = tmp_path / 'v22.tar.gz'
    with open(path, 'rb') as src, gzip.open(str(gz), 'wb') as dst:
        shutil.copyfileobj(src, dst)
    img = v1_image.FromTarball(str(gz))
    with img:
        assert [img.uncompressed_layer(i) for i in img.ancestry(img.top())] \
            == TARS[::-1]
    # Exiting removed the inflated copy; later use recreates it.
    assert img.uncompressed_layer(img.top()) == TARS[-1]


def test_v1_save_writes_upstreams_members(tmp_path):
    from containerregistry.client.v1 import docker_image as v1_image
    from containerregistry.client.v1 import save as v1_save
    source = save_v22(tmp_path)
    ids = expected_ids(TARS, make_config(TARS))
    out = str(tmp_path / 'v1.tar')
    with v1_image.FromTarball(source) as img, tarfile.open(out, 'w') as tar:
        jsons = [img.json(i) for i in ids]
        v1_save.tarball('other/name:2', img, tar)

    with tarfile.open(out) as tar:
        infos = tar.getmembers()
    names = []
    for layer_id in ids:
        names += [layer_id + '/VERSION', layer_id + '/layer.tar',
                  layer_id + '/json']
    assert [m.name for m in infos] == names + ['repositories', 'top']
    for m in infos:
        assert (m.isfile(), m.mode, m.mtime, m.uid, m.gid) == (
            True, 0o644, 0, 0, 0), m.name
    files = members(out)
    for layer_id, tar_bytes, text in zip(ids, TARS[::-1], jsons):
        assert files[layer_id + '/VERSION'] == b'1.0'
        assert files[layer_id + '/layer.tar'] == tar_bytes
        assert files[layer_id + '/json'] == text.encode()
    assert files['repositories'] == json.dumps(
        {'other/name': {'2': ids[0]}}, sort_keys=True).encode()
    assert files['top'] == ids[0].encode()

    with v1_image.FromTarball(out) as back:
        assert back.top() == ids[0]
        assert back.ancestry(back.top()) == ids
        assert [back.json(i) for i in ids] == jsons
        assert [back.uncompressed_layer(i) for i in ids] == TARS[::-1]


class _WithThrowaway:
    """A three-layer v1 chain whose middle layer is history only."""

    def __init__(self):
        self.chain = ['c' * 64, 'b' * 64, 'a' * 64]
        self.meta = {'c' * 64: {'parent': 'b' * 64},
                     'b' * 64: {'parent': 'a' * 64, 'throwaway': True},
                     'a' * 64: {}}

    def top(self):
        return self.chain[0]

    def ancestry(self, layer_id):
        return self.chain[self.chain.index(layer_id):]

    def json(self, layer_id):
        return json.dumps(dict(self.meta[layer_id], id=layer_id), sort_keys=True)

    def uncompressed_layer(self, layer_id):
        return TARS[self.chain.index(layer_id)]


def test_v1_save_skips_throwaway_layers(tmp_path):
    """As upstream: a throwaway layer keeps its place in the chain (the
    parent links) but gets no directory in the tarball."""
    from containerregistry.client.v1 import save as v1_save
    image = _WithThrowaway()
    out = str(tmp_path / 'v1.tar')
    with tarfile.open(out, 'w') as tar:
        v1_save.tarball('r/x:1', image, tar)
    files = members(out)
    c, b, a = image.chain
    assert sorted(files) == sorted([
        c + '/VERSION', c + '/layer.tar', c + '/json',
        a + '/VERSION', a + '/layer.tar', a + '/json', 'repositories', 'top'])
    assert json.loads(files[c + '/json'])['parent'] == b
    assert files[a + '/layer.tar'] == TARS[2]


def test_multi_image_shares_layers(tmp_path):
    from containerregistry.client.v1 import docker_image as v1_image
    from containerregistry.client.v1 import save as v1_save
    r = random.Random(7)

    def sample(population, k):
        return bytes(r.choices(population, k=k))

    a = v1_image.Random(sample, num_layers=2)
    b = v1_image.Random(sample, num_layers=1)
    out = str(tmp_path / 'multi.tar')
    with tarfile.open(out, 'w') as tar:
        v1_save.multi_image_tarball({
            docker_name.Tag('r/a:1', strict=False): a,
            'r/a:2': a,
            docker_name.Tag('localhost:5000/r/b:x', strict=False): b}, tar)
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert len(names) == 3 * 3 + 1
    assert 'top' not in names
    files = members(out)
    assert json.loads(files['repositories']) == {
        'r/a': {'1': a.top(), '2': a.top()},
        'localhost:5000/r/b': {'x': b.top()}}
    with pytest.raises(v1_image.TarballError, match='give a name'):
        v1_image.FromTarball(out)
    with v1_image.FromTarball(out, name='localhost:5000/r/b:x') as back:
        assert back.top() == b.top()
        assert back.layer(back.top()) == b.layer(b.top())
    with pytest.raises(v1_image.TarballError,
                       match=r'no image tagged r/a:3 \(tags: localhost'):
        v1_image.FromTarball(out, name='r/a:3')


def test_v1_image_feeds_v22_save(tmp_path):
    from containerregistry.client.v1 import docker_image as v1_image
    source = save_v22(tmp_path, 'source.tar')
    ids = expected_ids(TARS, make_config(TARS))
    calls = []

    class Recording(v1_image.FromTarball):
        def ancestry(self, layer_id):
            calls.append(('ancestry', layer_id))
            return super().ancestry(layer_id)

    layout = tmp_path / 'layout'
    layout.mkdir()
    out = str(tmp_path / 'out.tar')
    with v22_image(layout) as v22, Recording(source) as v1, \
            tarfile.open(out, 'w') as tar:
        v2_2_save.multi_image_tarball({TAG: v22}, tar,
                                      tag_to_v1_image={TAG: v1})
    assert ('ancestry', ids[0]) in calls
    # The v1 image is the chain v2_2.save derives itself: same bytes.
    assert members(out) == members(source)
    files = members(out)
    manifest = json.loads(files['manifest.json'])
    assert manifest[0]['Layers'] == [i + '/layer.tar' for i in ids[::-1]]
    if shutil.which('skopeo'):
        inspect = json.loads(images.skopeo(
            'inspect', 'docker-archive:' + out).stdout)
        assert inspect['Layers'] == [sha256(t) for t in TARS]


def test_sharded_tarballs(tmp_path):
    from containerregistry.client.v1 import docker_image as v1_image
    source = members(save_v22(tmp_path))
    ids = expected_ids(TARS, make_config(TARS))
    shards = {}
    for n, layer_id in enumerate(ids):
        files = {layer_id + '/' + m: source[layer_id + '/' + m]
                 for m in ('json', 'layer.tar')}
        if n == 0:
            files['./repositories'] = source['repositories']
        shards[layer_id] = write_tar(tmp_path / ('shard%d.tar' % n), files)
    img = v1_image.FromShardedTarball(lambda i: shards[i], ids[0])
    with img:
        assert img.repositories() == {'bazel/app': {'v1': ids[0]}}
        assert img.ancestry(ids[0]) == ids
        assert [img.uncompressed_layer(i) for i in ids] == TARS[::-1]
        with pytest.raises(v1_image.TarballError,
                           match="no tarball holds layer 'f00'"):
            img.json('f00')


def test_random_is_deterministic_for_a_seeded_sample():
    from containerregistry.client.v1 import docker_image as v1_image

    def build(**kw) -> v1_image.Random:
        r = random.Random(3)
        return v1_image.Random(lambda p, k: bytes(r.choices(p, k=k)), **kw)

    img = build(num_layers=4, layer_byte_size=100)
    again = build(num_layers=4, layer_byte_size=100)
    ids = img.ancestry(img.top())
    assert ids == again.ancestry(again.top())
    assert len(ids) == len(set(ids)) == 4
    assert all(len(i) == 64 and set(i) <= set('0123456789abcdef') for i in ids)
    assert img.repositories() == {'random/image': {'latest': ids[0]}}
    assert json.loads(img.json(ids[0])) == {'id': ids[0], 'parent': ids[1]}
    assert json.loads(img.json(ids[-1])) == {'id': ids[-1]}
    assert img.layer(ids[1]) == again.layer(ids[1])
    assert img.layer(ids[1])[4:8] == UPSTREAM_GZIP_MTIME.to_bytes(4, 'little')
    with tarfile.open(fileobj=io.BytesIO(img.uncompressed_layer(ids[1]))) as t:
        (member,) = t.getmembers()
        assert member.name.startswith('./') and member.size == 100
    assert img.diff_id(ids[1]) == sha256(img.uncompressed_layer(ids[1]))

    blobs = build(blobs=[b'one', b'two!'])
    contents = []
    for layer_id in blobs.ancestry(blobs.top()):
        with tarfile.open(
                fileobj=io.BytesIO(blobs.uncompressed_layer(layer_id))) as t:
            contents.append(t.extractfile(t.getmembers()[0]).read())
    assert contents == [b'one', b'two!']
    with pytest.raises(ValueError, match="unknown layer id 'nope'"):
        img.json('nope')


def test_bad_inputs(tmp_path):
    from containerregistry.client.v1 import docker_image as v1_image
    not_tar = tmp_path / 'not.tar'
    not_tar.write_bytes(b'this is not a tar archive at all' * 40)
    with pytest.raises(v1_image.TarballError, match='is not a tar archive'):
        v1_image.FromTarball(str(not_tar))

    bare = write_tar(tmp_path / 'bare.tar', {'abc/json': b'{"id": "abc"}'})
    with pytest.raises(v1_image.TarballError,
                       match='has no repositories file'):
        v1_image.FromTarball(bare)

    bad_repos = write_tar(tmp_path / 'badrepos.tar', {'repositories': b'{x'})
    with pytest.raises(v1_image.TarballError,
                       match='repositories is not valid JSON'):
        v1_image.FromTarball(bad_repos)

    dangling = write_tar(tmp_path / 'dangling.tar', {
        'repositories': b'{"r/x": {"1": "top"}}',
        'top/json': b'{"id": "top", "parent": "gone"}',
        'top/layer.tar': TARS[0],
        'bad/json': b'{"id": "bad", "parent": ',
    })
    with v1_image.FromTarball(dangling) as img:
        assert img.top() == 'top'
        assert img.diff_id('top') == sha256(TARS[0])
        with pytest.raises(v1_image.TarballError,
                           match="has no member 'gone/json'"):
            img.ancestry('top')
        with pytest.raises(v1_image.TarballError,
                           match="has no member 'gone/layer.tar'"):
            img.uncompressed_layer('gone')
        with pytest.raises(v1_image.TarballError,
                           match='bad/json is not valid JSON'):
            img.parent('bad')
        with pytest.raises(v1_image.TarballError,
                           match='points outside the archive'):
            img.json('../etc')


def test_layers_stream(tmp_path):
    """A large layer is copied and hashed without holding it in memory."""
    from containerregistry.client.v1 import docker_image as v1_image
    from containerregistry.client.v1 import save as v1_save
    size = 24 << 20
    layer = tmp_path / 'big'
    h = hashlib.sha256()
    with open(layer, 'wb') as f:
        for i in range(size >> 20):
            chunk = random.Random(i).randbytes(1 << 20)
            h.update(chunk)
            f.write(chunk)
    source = str(tmp_path / 'big.tar')
    with tarfile.open(source, 'w') as tar:
        for name, data in (('repositories', b'{"r/big": {"1": "b1g"}}'),
                           ('b1g/json', b'{"id": "b1g"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(str(layer), 'b1g/layer.tar')
    out = str(tmp_path / 'out.tar')
    tracemalloc.start()
    try:
        with v1_image.FromTarball(source) as img:
            diff_id: Optional[str] = img.diff_id('b1g')
            with tarfile.open(out, 'w') as tar:
                v1_save.tarball('r/big:1', img, tar)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert diff_id == 'sha256:' + h.hexdigest()
    with v1_image.FromTarball(out) as img:
        assert img.diff_id('b1g') == diff_id
