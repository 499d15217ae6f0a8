"""Schema 1 pushes, appends, extract, v1 compatibility, and the tarball tools.

Pushes go to the real registry with schema 1 enabled (which checks every
signature and that every fsLayers blob exists) and are read back from it.
docker_puller's tarballs are read by skopeo and by FromTarball;
docker_pusher's pushes are read back from the registry.
"""
import argparse
import base64
import gzip
import importlib
import io
import json
import os
import random
import tarfile

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    encode_dss_signature)

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v1 import docker_image as v1_image
from containerregistry.client.v2 import append
from containerregistry.client.v2 import docker_digest as v2_digest
from containerregistry.client.v2 import docker_image as v2_image
from containerregistry.client.v2 import docker_session
from containerregistry.client.v2 import signing
from containerregistry.client.v2 import util as v2_util
from containerregistry.client.v2 import v1_compat
from containerregistry.client.v2_2 import docker_image as v2_2_image
from containerregistry.client.v2_2 import v2_compat
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import schema1
from containerregistry.tools import cli
from containerregistry.transport import pooled_http

sha256 = images.sha256
ANONYMOUS = docker_creds.Anonymous()


@pytest.fixture(scope='module')
def s1_registry():
    r = schema1.start_registry()
    yield r
    r.stop()


def _image(seed: int, **kwargs) -> schema1.Schema1Image:
    layers = [images.make_layer(seed + 1, 3000),
              images.make_layer(seed + 2, 2000, kind='text')]
    kwargs.setdefault('throwaway', [1])
    return schema1.build(layers, **kwargs)


def _served(registry, repo: str, ref: str):
    """(signed payload, Docker-Content-Digest) the registry serves for REF."""
    client = images.Client(registry)
    status, headers, body = client.request(
        'GET', repo, 'manifests/' + ref, headers={'Accept': schema1.SIGNED_MIME})
    assert status == 200, body
    assert headers['Content-Type'] == schema1.SIGNED_MIME
    return schema1.payload_of(body), headers['Docker-Content-Digest']


def _push(registry, ref: str, image, **kwargs) -> docker_name.Tag:
    name = docker_name.Tag('%s/%s' % (registry.host, ref))
    with docker_session.Push(name, ANONYMOUS, pooled_http.Http(),
                             **kwargs) as session:
        session.upload(image)
    return name


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


# Signing.


@pytest.mark.parametrize('text', [True, False])
def test_sign_is_a_libtrust_signature_over_the_exact_bytes(text):
    manifest = json.dumps({'schemaVersion': 1, 'name': 'a/b', 'tag': 'é',
                           'fsLayers': [], 'history': []}, sort_keys=True)
    raw = manifest.encode('utf8')
    signed = signing.sign(manifest if text else raw)
    assert isinstance(signed, str if text else bytes)
    payload, sigs = v2_util.DetachSignatures(signed)
    assert payload == (manifest if text else raw)
    assert v2_digest.ManifestToSHA256(signed) == sha256(raw)

    sig, = sigs
    jwk = sig['header']['jwk']
    assert (sig['header']['alg'], jwk['kty'], jwk['crv']) == ('ES256', 'EC', 'P-256')
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64decode(jwk['x']), 'big'),
        int.from_bytes(_b64decode(jwk['y']), 'big'),
        ec.SECP256R1()).public_key()
    assert jwk['kid'] == schema1.key_id(key)
    rs = _b64decode(sig['signature'])
    key.verify(encode_dss_signature(int.from_bytes(rs[:32], 'big'),
                                    int.from_bytes(rs[32:], 'big')),
               (sig['protected'] + '.' + schema1.b64url(raw)).encode('ascii'),
               ec.ECDSA(hashes.SHA256()))
    # A new key every time.
    assert json.loads(signing.sign(manifest))['signatures'][0]['header'] != (
        sig['header'])


@pytest.mark.parametrize('body', [b'{}', b'[1]', schema1.build([]).manifest])
def test_sign_refuses_what_it_cannot_sign(body):
    with pytest.raises(ValueError):
        signing.sign(body)


# Pushing.


def test_push_schema1_and_read_back(s1_registry, repo_name):
    img = _image(seed=10)
    _push(s1_registry, repo_name + ':v1', schema1.MemoryImage(img), threads=4)
    payload, digest = _served(s1_registry, repo_name, 'v1')
    assert (payload, digest) == (img.payload, img.digest)
    assert _served(s1_registry, repo_name, img.digest) == (img.payload, img.digest)
    client = images.Client(s1_registry)
    for entry in img.entries:
        assert client.blob(repo_name, entry.digest) == entry.blob

    # Pushed again: the tag already names it, so nothing is written.
    mark = s1_registry.mark()
    _push(s1_registry, repo_name + ':v1', schema1.MemoryImage(img))
    assert [m for m, _ in s1_registry.requests_since(mark)
            if m not in ('GET', 'HEAD')] == []


def test_push_copies_between_repositories_by_mounting(s1_registry, repo_name):
    img = _image(seed=20)
    schema1.push(s1_registry, repo_name + '-src:v1', img)
    src = docker_name.Tag('%s/%s-src:v1' % (s1_registry.host, repo_name))
    mark = s1_registry.mark()
    with v2_image.FromRegistry(src, ANONYMOUS, pooled_http.Http()) as source:
        _push(s1_registry, repo_name + ':copy', source,
              mount=[src.as_repository()])
    assert _served(s1_registry, repo_name, 'copy') == (img.payload, img.digest)
    requests = s1_registry.requests_since(mark)
    mounts = [p for m, p in requests if m == 'POST']
    assert len(mounts) == len(img.blobs())
    assert all('mount=' in p for p in mounts)
    assert not [p for m, p in requests if m in ('PUT', 'PATCH')
                and '/blobs/' in p]


def test_push_unsigned_manifest_is_signed_on_the_way(s1_registry, repo_name):
    img = _image(seed=30, signed=False)
    _push(s1_registry, repo_name + ':v1', schema1.MemoryImage(img))
    assert _served(s1_registry, repo_name, 'v1') == (img.manifest, sha256(img.manifest))


def test_push_schema2_image_as_schema1(s1_registry, repo_name):
    pushed = images.push_image(s1_registry, repo_name + ':v2',
                               [images.make_layer(32), images.make_layer(33)])
    name = docker_name.Tag(pushed.by_tag)
    with v2_2_image.FromRegistry(name, ANONYMOUS, pooled_http.Http()) as v22:
        v2 = v2_compat.V2FromV22(v22)
        _push(s1_registry, repo_name + ':v1', v2)
    assert _served(s1_registry, repo_name, 'v1') == (v2.manifest().encode(),
                                                     v2.digest())
    client = images.Client(s1_registry)
    for layer in pushed.layers:
        assert client.blob(repo_name, layer.digest) == layer.blob


def test_push_by_digest_and_delete(s1_registry, repo_name):
    img = _image(seed=35)
    name = docker_name.Digest('%s/%s@%s' % (s1_registry.host, repo_name, img.digest))
    with docker_session.Push(name, ANONYMOUS, pooled_http.Http()) as session:
        session.upload(schema1.MemoryImage(img))
    assert _served(s1_registry, repo_name, img.digest) == (img.payload, img.digest)
    docker_session.Delete(name, ANONYMOUS, pooled_http.Http())
    status, _, _ = images.Client(s1_registry).request(
        'GET', repo_name, 'manifests/' + img.digest,
        headers={'Accept': schema1.SIGNED_MIME})
    assert status == 404


def test_push_refused_manifest_is_an_error(s1_registry, repo_name):
    img = _image(seed=38)
    blobs = img.blobs()
    missing = img.entries[0].digest
    del blobs[missing]

    class Missing(schema1.MemoryImage):
        def blob_set(self):
            return set(blobs)

    with pytest.raises(Exception, match='MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN'):
        _push(s1_registry, repo_name + ':v1', Missing(img))


# Appending.


def _pushed_base(registry, repo: str, seed: int):
    img = _image(seed=seed)
    schema1.push(registry, repo + ':base', img)
    name = docker_name.Tag('%s/%s:base' % (registry.host, repo))
    return img, v2_image.FromRegistry(name, ANONYMOUS, pooled_http.Http())


def test_append_layer_push_and_read_back(s1_registry, repo_name, tmp_path):
    img, base = _pushed_base(s1_registry, repo_name, seed=40)
    tar = schema1.tar_of({'app/hello.txt': b'hello\n'})
    blob = gzip.compress(tar, mtime=0)
    with base:
        layer = append.Layer(base, blob, '8080/tcp', 'PATH=/app', 'GREETING=hi')
        name = _push(s1_registry, repo_name + ':appended', layer)

    manifest = json.loads(layer.manifest())
    assert 'signatures' not in manifest
    assert layer.digest() == sha256(layer.manifest().encode())
    payload, digest = _served(s1_registry, repo_name, 'appended')
    assert (payload, digest) == (layer.manifest().encode(), layer.digest())

    assert [l['blobSum'] for l in manifest['fsLayers']] == [sha256(blob)] + img.fs_layers
    top = json.loads(manifest['history'][0]['v1Compatibility'])
    old_top = json.loads(img.entries[-1].v1_compatibility)
    assert top['parent'] == old_top['id']
    assert len(top['id']) == 64 and top['id'] != old_top['id']
    assert top['throwaway'] is False
    assert top['config']['Env'] == ['PATH=/app', 'GREETING=hi']
    assert top['config']['ExposedPorts'] == {'8080/tcp': {}}
    assert top['config']['Cmd'] == old_top['config']['Cmd']
    assert [h['v1Compatibility'] for h in manifest['history'][1:]] == [
        e.v1_compatibility for e in reversed(img.entries)]
    assert images.Client(s1_registry).blob(repo_name, sha256(blob)) == blob

    # What the registry serves extracts to the base's files and the new one.
    out = tmp_path / 'fs.tar'
    with v2_image.FromRegistry(name, ANONYMOUS, pooled_http.Http()) as pulled:
        with tarfile.open(out, 'w') as fs:
            v2_image.extract(pulled, fs)
    files = _files(out)
    assert files['app/hello.txt'] == b'hello\n'
    assert set(files) == {'app/hello.txt', 'layer-41/data.bin',
                          'layer-42/data.txt'}


def test_append_empty_layer_uploads_the_empty_tar(s1_registry, repo_name):
    img, base = _pushed_base(s1_registry, repo_name, seed=50)
    with base:
        layer = append.Layer(base, None, None)
        # A new repository, which has no empty-tar blob yet.
        _push(s1_registry, repo_name + '-2:empty', layer)
    manifest = json.loads(layer.manifest())
    assert manifest['fsLayers'][0] == {'blobSum': v2_compat.EMPTY_TAR_DIGEST}
    top = json.loads(manifest['history'][0]['v1Compatibility'])
    assert top['throwaway'] is True
    assert top['config'] == json.loads(img.entries[-1].v1_compatibility)['config']
    assert _served(s1_registry, repo_name + '-2', 'empty')[1] == layer.digest()
    assert images.Client(s1_registry).blob(
        repo_name + '-2', v2_compat.EMPTY_TAR_DIGEST) == v2_compat.EMPTY_TAR_BYTES


def test_append_env_replaces_and_appends():
    img = _image(seed=60, config={'Env': ['A=1', 'B=2'],
                                  'ExposedPorts': {'80/tcp': {}}})
    once = append.Layer(schema1.MemoryImage(img), b'', '443/tcp', 'A=3', 'C=4')
    twice = append.Layer(once, None, None, 'C=5')
    config = json.loads(json.loads(twice.manifest())['history'][0]
                        ['v1Compatibility'])['config']
    assert config['Env'] == ['B=2', 'A=3', 'C=5']
    assert config['ExposedPorts'] == {'80/tcp': {}, '443/tcp': {}}
    assert len(json.loads(twice.manifest())['fsLayers']) == len(img.entries) + 2


# extract.


def _files(path) -> dict:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()
                if m.isreg()}


def test_extract_merges_layers_and_whiteouts(tmp_path):
    base = schema1.tar_of({'a': b'one', 'b': b'two', 'd/c': b'three'})
    top = schema1.tar_of({'a': b'uno', '.wh.b': b'', 'd/e': b'four'})
    img = schema1.build([base, top], throwaway=[1])
    out = tmp_path / 'fs.tar'
    with tarfile.open(out, 'w') as tar:
        v2_image.extract(schema1.MemoryImage(img), tar)
    assert _files(out) == {'a': b'uno', 'd/c': b'three', 'd/e': b'four'}
    with tarfile.open(out) as tar:
        assert not [n for n in tar.getnames() if n.endswith('b')]


def test_extract_checks_the_layers(tmp_path):
    img = _image(seed=70)
    blobs = dict(img.blobs())
    target = img.entries[0]
    damaged = bytearray(target.blob)
    damaged[len(damaged) // 2] ^= 0xff

    class Damaged(schema1.MemoryImage):
        def blob(self, digest):
            return bytes(damaged) if digest == target.digest else blobs[digest]

    with tarfile.open(tmp_path / 'fs.tar', 'w') as tar:
        with pytest.raises(Exception, match='digest mismatch|cannot be read'):
            v2_image.extract(Damaged(img), tar)


# v1 compatibility.


def test_v1_from_v2_reads_the_chain():
    img = _image(seed=80, throwaway=[0, 2])
    v1 = v1_compat.V1FromV2(schema1.MemoryImage(img))
    ids = [json.loads(e.v1_compatibility)['id'] for e in reversed(img.entries)]
    assert v1.top() == ids[0]
    assert v1.ancestry(v1.top()) == ids
    assert v1.ancestry(ids[2]) == ids[2:]
    assert v1.parent(ids[0]) == ids[1] and v1.parent(ids[-1]) is None
    for layer_id, entry in zip(ids, reversed(img.entries)):
        assert v1.json(layer_id) == entry.v1_compatibility
        assert v1.layer(layer_id) == entry.blob
        assert v1.uncompressed_layer(layer_id) == entry.tar
        assert v1.diff_id(digest=layer_id) == entry.diff_id
    assert v1.repositories() == {}
    with pytest.raises(ValueError, match='unknown layer id'):
        v1.layer('0' * 64)


def test_v1_from_v2_folds_a_repeated_id():
    img = _image(seed=85, signed=False)
    manifest = json.loads(img.manifest)
    manifest['fsLayers'].insert(1, manifest['fsLayers'][0])
    manifest['history'].insert(1, manifest['history'][0])
    doubled = schema1.Schema1Image(manifest=json.dumps(manifest).encode(),
                                   payload=b'', entries=img.entries)
    v1 = v1_compat.V1FromV2(schema1.MemoryImage(doubled))
    assert len(v1.ancestry(v1.top())) == len(img.entries)
    manifest['history'][1] = manifest['history'][2]
    clash = schema1.Schema1Image(manifest=json.dumps(manifest).encode(),
                                 payload=b'', entries=img.entries)
    with pytest.raises(v2_util.BadManifestException, match='listed twice'):
        v1_compat.V1FromV2(schema1.MemoryImage(clash))


def test_v2_from_v1_round_trip():
    img = _image(seed=90, throwaway=[0, 2])
    v1 = v1_compat.V1FromV2(schema1.MemoryImage(img))
    v2 = v1_compat.V2FromV1(v1)
    manifest = json.loads(v2.manifest())
    original = json.loads(img.payload)
    assert (manifest['name'], manifest['tag']) == ('unused', 'unused')
    assert manifest['fsLayers'] == original['fsLayers']
    assert manifest['history'] == original['history']
    assert v2.manifest() == json.dumps(manifest, sort_keys=True)
    assert v2.digest() == sha256(v2.manifest().encode())
    for entry in img.entries:
        assert v2.blob(entry.digest) == entry.blob
        assert v2.uncompressed_blob(entry.digest) == entry.tar

    # And back: the same chain, ids, JSON and layer bytes.
    again = v1_compat.V1FromV2(v2)
    assert again.ancestry(again.top()) == v1.ancestry(v1.top())
    for layer_id in v1.ancestry(v1.top()):
        assert again.json(layer_id) == v1.json(layer_id)
        assert again.layer(layer_id) == v1.layer(layer_id)


def test_v2_from_v1_of_a_v1_image_pushes(s1_registry, repo_name):
    rng = random.Random(95)
    source = v1_image.Random(lambda population, k: bytes(rng.choices(population, k=k)),
                             num_layers=3)
    v2 = v1_compat.V2FromV1(source)
    assert [l['blobSum'] for l in json.loads(v2.manifest())['fsLayers']] == [
        sha256(source.layer(i)) for i in source.ancestry(source.top())]
    _push(s1_registry, repo_name + ':v1', v2)
    assert _served(s1_registry, repo_name, 'v1') == (v2.manifest().encode(), v2.digest())
    back = v1_compat.V1FromV2(v2)
    assert back.ancestry(back.top()) == source.ancestry(source.top())
    for layer_id in source.ancestry(source.top()):
        assert back.json(layer_id) == source.json(layer_id)
        assert back.layer(layer_id) == source.layer(layer_id)


# docker_puller and docker_pusher.


def _run(tool: str, env, *args: str):
    proc = pars.run_tool(tool, *args, env=env, timeout=120)
    assert 'Traceback' not in proc.stderr, proc.stderr
    return proc


def test_docker_puller_writes_a_tarball_skopeo_reads(registry, repo_name,
                                                    tool_env, tmp_path):
    pushed = images.push_image(registry, repo_name + ':v1',
                               [images.make_layer(100), images.make_layer(101)])
    out = str(tmp_path / 'image.tar')
    proc = _run('docker_puller', tool_env, '--name', pushed.by_tag,
                '--tarball', out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '' and proc.stderr == ''

    config = images.skopeo('inspect', '--raw', '--config',
                           'docker-archive:' + out).stdout
    assert config == pushed.config
    with v2_2_image.FromTarball(out) as img:
        assert img.config_file().encode() == pushed.config
        assert [img.uncompressed_blob(d) for d in reversed(img.fs_layers())] == [
            l.tar for l in pushed.layers]
    with tarfile.open(out) as tar:
        entries = json.load(tar.extractfile('manifest.json'))
    assert entries[0]['RepoTags'] == [pushed.by_tag]

    by_digest = str(tmp_path / 'by-digest.tar')
    proc = _run('docker_puller', tool_env, '--name', pushed.by_digest,
                '--tarball', by_digest)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(by_digest) as tar:
        entries = json.load(tar.extractfile('manifest.json'))
    assert entries[0]['RepoTags'] == [
        '%s/%s:i-was-a-digest' % (registry.host, repo_name)]


def test_docker_puller_schema1(s1_registry, repo_name, tool_env, tmp_path):
    img = _image(seed=110)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    out = str(tmp_path / 'image.tar')
    proc = _run('docker_puller', tool_env, '--name', pushed.by_tag,
                '--tarball', out)
    assert proc.returncode == 0, proc.stderr
    with v2_2_image.FromTarball(out) as image:
        config = json.loads(image.config_file())
        assert config['rootfs']['diff_ids'] == [e.diff_id for e in img.entries]
        non_empty = [e for e in img.entries if not e.throwaway]
        assert [image.uncompressed_blob(d)
                for d in reversed(image.fs_layers())] == [e.tar for e in img.entries]
        assert len(non_empty) == 2


def test_docker_puller_failure_leaves_no_tarball(registry, repo_name, tool_env,
                                                 tmp_path):
    out = tmp_path / 'image.tar'
    proc = _run('docker_puller', tool_env, '--name',
                '%s/%s:missing' % (registry.host, repo_name), '--tarball', str(out))
    assert proc.returncode == 1
    line, = proc.stderr.strip().splitlines()
    assert 'Error pulling and saving image' in line and 'MANIFEST_UNKNOWN' in line
    assert os.listdir(tmp_path) == ['home']


def test_docker_pusher_pushes_a_tarball(registry, repo_name, tool_env, tmp_path):
    built = images.build_image([images.make_layer(120), images.make_layer(121)])
    tarball = str(tmp_path / 'in.tar')
    with tarfile.open(tarball, 'w') as tar:
        for name, data in [('config.json', built.config)] + [
                ('%d.tar' % i, l.tar) for i, l in enumerate(built.layers)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        manifest = json.dumps([{'Config': 'config.json', 'RepoTags': ['x/y:z'],
                                'Layers': ['%d.tar' % i
                                           for i in range(len(built.layers))]}])
        info = tarfile.TarInfo('manifest.json')
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest.encode()))
    with v2_2_image.FromTarball(tarball) as img:
        expected = img.digest()

    stamp = tmp_path / 'stamp.txt'
    stamp.write_text('BUILD_USER tester\n')
    name = '%s/%s:{BUILD_USER}' % (registry.host, repo_name)
    proc = _run('docker_pusher', tool_env, '--name', name, '--tarball', tarball,
                '--stamp-info-file', str(stamp))
    assert proc.returncode == 0, proc.stderr
    tag = '%s/%s:tester' % (registry.host, repo_name)
    assert proc.stdout.splitlines() == [
        '%s was resolved to %s' % (name, tag),
        '%s was published with digest: %s' % (tag, expected)]
    client = images.Client(registry)
    body, _ = client.manifest(repo_name, 'tester')
    assert sha256(body) == expected
    assert client.blob(repo_name, json.loads(body)['config']['digest']) == built.config

    # By digest: the manifest is published untagged.
    by_digest = '%s/%s@%s' % (registry.host, repo_name, expected)
    proc = _run('docker_pusher', tool_env, '--name', by_digest, '--tarball',
                tarball)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '%s was published with digest: %s\n' % (by_digest,
                                                                   expected)

    # --oci, and the failure line for a missing tarball.
    proc = _run('docker_pusher', tool_env, '--name', tag, '--tarball', tarball,
                '--oci')
    assert proc.returncode == 0, proc.stderr
    body, ctype = client.manifest(repo_name, 'tester')
    assert ctype == 'application/vnd.oci.image.manifest.v1+json'
    assert proc.stdout == '%s was published with digest: %s\n' % (tag, sha256(body))
    proc = _run('docker_pusher', tool_env, '--name', tag, '--tarball',
                str(tmp_path / 'missing.tar'))
    assert proc.returncode == 1
    line, = proc.stderr.strip().splitlines()
    assert 'Error publishing %s' % tag in line and 'missing.tar' in line


@pytest.mark.parametrize('tool, flags', [
    ('docker_puller', ['--name', '--tarball', '--os', '--os-version',
                       '--os-features', '--architecture', '--variant',
                       '--features', '--stderrthreshold',
                       '--insecure-registry']),
    ('docker_pusher', ['--name', '--tarball', '--stamp-info-file', '--oci',
                       '--stderrthreshold', '--insecure-registry']),
])
def test_tarball_tools_take_upstreams_flags(tool, flags, monkeypatch):
    monkeypatch.setenv('COLUMNS', '200')
    module = importlib.import_module('containerregistry.tools.' + tool)
    assert [a.option_strings[-1] for a in module.parser._actions] == ['--help'] + flags
    # The usage written out is the one argparse lays out for these flags.
    generated = argparse.ArgumentParser(
        prog=tool + '.par', parents=[module.parser], add_help=False,
        formatter_class=cli.HelpFormatter)
    assert module.parser.format_usage() == generated.format_usage()

    proc = pars.run_tool(tool, '--help')
    assert proc.returncode == 0 and proc.stderr == ''
    assert proc.stdout == module.parser.format_help()
    proc = pars.run_tool(tool, '--name', 'localhost:5000/a:b')
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.endswith('%s.par: error: the following arguments are '
                                'required: --tarball\n' % tool)
