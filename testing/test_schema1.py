"""Docker schema 1 (v2.1): signatures, digests, and pulling into the v2.2 layout.

The end-to-end tests push JWS-signed schema 1 images to the real registry
(with schema 1 enabled) and pull them with the puller, which must write a
valid schema 2 fast layout: the schema 1 blobs base first, a config whose
diff_ids are the sha256 of each layer's tar, and a manifest naming both.
"""
import base64
import gzip
import json
import os
import subprocess
import tempfile

import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2 import docker_digest as v2_digest
from containerregistry.client.v2 import docker_image as v2_image
from containerregistry.client.v2 import util as v2_util
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image_list
from containerregistry.client.v2_2 import v2_compat
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import schema1
from containerregistry.transport import pooled_http

sha256 = images.sha256


@pytest.fixture(scope='module')
def s1_registry():
    r = schema1.start_registry()
    yield r
    r.stop()


@pytest.fixture
def s1_proxy(s1_registry):
    p = proxy_mod.start_proxy(s1_registry)
    yield p
    p.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _image(seed: int = 0, **kwargs) -> schema1.Schema1Image:
    layers = [images.make_layer(seed + 1, 3000),
              images.make_layer(seed + 2, 4000, kind='text')]
    kwargs.setdefault('throwaway', [1, 2])
    return schema1.build(layers, **kwargs)


# Signatures and digests.


def test_detach_signatures_bytes_and_text():
    key_a, key_b = schema1.new_key(), schema1.new_key()
    img = _image(keys=[key_a, key_b])
    unsigned, sigs = v2_util.DetachSignatures(img.manifest)
    assert unsigned == img.payload
    assert sigs == json.loads(img.manifest)['signatures']
    assert [s['header']['jwk']['kid'] for s in sigs] == [
        schema1.key_id(key_a.public_key()), schema1.key_id(key_b.public_key())]
    text, _ = v2_util.DetachSignatures(img.manifest.decode())
    assert text == img.payload.decode()
    assert v2_digest.SignedManifestToSHA256(img.manifest) == sha256(img.payload)
    assert v2_digest.SignedManifestToSHA256(img.manifest.decode()) == sha256(img.payload)
    assert sha256(img.manifest) != sha256(img.payload)


def test_detach_signatures_counts_bytes_not_characters():
    manifest = {'schemaVersion': 1, 'name': 'test/unicode', 'tag': 'é',
                'fsLayers': [], 'history': []}
    payload = json.dumps(manifest, indent=3, ensure_ascii=False).encode('utf8')
    signed = schema1.sign(payload)
    assert v2_util.DetachSignatures(signed.decode('utf8'))[0] == payload.decode('utf8')
    assert v2_digest.SignedManifestToSHA256(signed.decode('utf8')) == sha256(payload)


def test_signatures_must_agree_on_the_protected_region():
    img = _image()
    parsed = json.loads(img.manifest)
    sig = dict(parsed['signatures'][0])
    sig['protected'] = _b64(json.dumps({'formatLength': 10,
                                        'formatTail': _b64(b'\n}')}).encode())
    parsed['signatures'].append(sig)
    doctored = schema1.sign(json.dumps({k: v for k, v in parsed.items()
                                        if k != 'signatures'}, indent=3).encode())
    body = json.loads(doctored)
    body['signatures'] = parsed['signatures']
    with pytest.raises(v2_util.BadManifestException, match='disagree'):
        v2_util.DetachSignatures(json.dumps(body, indent=3))


@pytest.mark.parametrize('body', [
    b'{"schemaVersion": 1, "fsLayers": [], "history": []}',
    b'{"schemaVersion": 1, "signatures": []}',
    b'{"schemaVersion": 1, "signatures": [{"header": {}}]}',
    b'{"schemaVersion": 1, "signatures": [{"protected": "!!"}]}',
    b'not json',
])
def test_detach_signatures_rejects_unsigned_or_malformed(body):
    with pytest.raises(v2_util.BadManifestException):
        v2_util.DetachSignatures(body)


def test_fields_outside_the_signed_region_are_rejected():
    img = _image()
    # A second `fsLayers` after the signatures: JSON readers take the last
    # one, but the digest only covers the payload.
    smuggled = img.manifest[:-2] + b',\n   "fsLayers": []\n}'
    assert json.loads(smuggled)['fsLayers'] == []
    with pytest.raises(v2_util.BadManifestException, match='outside'):
        v2_util.DetachSignatures(smuggled)


def test_manifest_digest_of_other_kinds():
    schema2 = images.build_image([images.make_layer(5)]).manifest
    assert v2_digest.ManifestToSHA256(schema2) == sha256(schema2)
    unsigned = _image(signed=False)
    assert v2_digest.ManifestToSHA256(unsigned.manifest) == sha256(unsigned.manifest)
    assert v2_digest.ManifestToSHA256(_image().manifest) == sha256(_image().payload)


def test_rename_and_sign():
    img = _image(name='test/old', tag='v1')
    renamed = v2_util.Rename(img.manifest,
                             docker_name.Tag('localhost:5000/test/new:v2'))
    parsed = json.loads(renamed)
    assert (parsed['name'], parsed['tag']) == ('test/new', 'v2')
    assert 'signatures' not in parsed
    assert renamed == json.dumps(parsed, sort_keys=True, indent=2)
    assert v2_util.Sign(renamed) is renamed


# The synthesized config.


def test_config_file_follows_upstream():
    compats = [
        {'id': 'a', 'created': 't0',
         'container_config': {'Cmd': ['/bin/sh', '-c', 'echo base']}},
        {'id': 'b', 'parent': 'a', 'created': 't1', 'throwaway': True,
         'container_config': {'Cmd': []}},
        {'id': 'c', 'parent': 'b', 'container_config': None},
        {'id': 'd', 'parent': 'c', 'created': 't3', 'architecture': 'arm64',
         'os': 'linux', 'docker_version': '1.13', 'container': 'x',
         'config': {'Cmd': ['sh']}, 'author': 'dropped',
         'container_config': {'Cmd': ['/bin/sh -c #(nop) CMD ["sh"]']}},
    ]
    diff_ids = ['sha256:' + c * 64 for c in '1234']
    text = v2_compat.config_file(compats, diff_ids)
    assert text == json.dumps({
        'architecture': 'arm64',
        'config': {'Cmd': ['sh']},
        'container': 'x',
        'container_config': {'Cmd': ['/bin/sh -c #(nop) CMD ["sh"]']},
        'created': 't3',
        'docker_version': '1.13',
        'history': [{'created': 't0', 'created_by': '/bin/sh'},
                    {'created': 't1'},
                    {},
                    {'created': 't3', 'created_by': '/bin/sh -c #(nop) CMD ["sh"]'}],
        'os': 'linux',
        'rootfs': {'diff_ids': diff_ids, 'type': 'layers'},
    }, sort_keys=True)
    assert text.startswith('{"architecture": "arm64", "config": ')


# V22FromV2 over an in-memory schema 1 image.


class _MemoryImage(schema1.MemoryImage):
    """schema1.MemoryImage, optionally serving other BLOBS; counts blob
    opens."""

    def __init__(self, img: schema1.Schema1Image, blobs=None):
        super().__init__(img)
        if blobs is not None:
            self._blobs = dict(blobs)
        self.opened = []

    def blob(self, digest: str) -> bytes:
        self.opened.append(digest)
        return super().blob(digest)


@pytest.mark.parametrize('spool', [True, False])
def test_v22_from_v2_in_memory(spool):
    img = _image(seed=40, throwaway=[0, 2, 2])
    source = _MemoryImage(img)
    with v2_compat.V22FromV2(source, threads=3, spool=spool) as v22:
        assert v22.fs_layers() == img.fs_layers
        assert source.opened == []  # nothing is read until asked for
        config = json.loads(v22.config_file())
        assert config['rootfs']['diff_ids'] == [e.diff_id for e in img.entries]
        assert list(reversed(v22.diff_ids())) == [e.diff_id for e in img.entries]
        non_empty = [e.digest for e in img.entries if not e.throwaway]
        assert sorted(source.opened) == sorted(non_empty)
        manifest = json.loads(v22.manifest())
        assert manifest['layers'] == [
            {'digest': e.digest, 'mediaType': docker_http.LAYER_MIME,
             'size': len(e.blob)} for e in img.entries]
        assert v22.digest() == sha256(v22.manifest().encode())
        assert v22.media_type() == docker_http.MANIFEST_SCHEMA2_MIME
        for entry in img.entries:
            assert v22.blob(entry.digest) == entry.blob
            assert v22.blob_size(entry.digest) == len(entry.blob)
        if spool:
            # Each blob was read from the source once, for its diff_id; the
            # layer reads got the spooled copy.
            assert sorted(source.opened) == sorted(non_empty)
        else:
            assert sorted(source.opened) == sorted(non_empty * 2)
        # Once the spooled copies are used up, reads go back to the source.
        for entry in img.entries:
            assert v22.uncompressed_blob(entry.digest) == entry.tar
        assert source.opened.count(v2_compat.EMPTY_TAR_DIGEST) == 0


def test_v22_from_v2_damaged_blob_is_a_digest_mismatch():
    img = _image(seed=50)
    damaged = dict(img.blobs())
    target = img.entries[0]
    blob = bytearray(target.blob)
    blob[len(blob) // 2] ^= 0xff  # inside the deflate data: inflating fails
    damaged[target.digest] = bytes(blob)
    with v2_compat.V22FromV2(_MemoryImage(img, damaged)) as v22:
        with pytest.raises(docker_digest.DigestMismatchedError,
                           match='digest mismatch'):
            v22.config_file()


def test_v22_from_v2_history_must_match_layers():
    img = _image(seed=60)
    parsed = json.loads(img.payload)
    parsed['history'].pop()
    broken = schema1.Schema1Image(manifest=schema1.sign(json.dumps(parsed, indent=3).encode()),
                                  payload=b'', entries=img.entries)
    with v2_compat.V22FromV2(_MemoryImage(broken)) as v22:
        with pytest.raises(v2_util.BadManifestException, match='history'):
            v22.manifest()


def test_v2_from_v22_round_trip():
    img = _image(seed=70, throwaway=[1])
    with v2_compat.V22FromV2(_MemoryImage(img)) as v22:
        v2 = v2_compat.V2FromV22(v22)
        parsed = json.loads(v2.manifest())
        assert (parsed['name'], parsed['tag']) == ('unused', 'unused')
        assert v2.fs_layers() == img.fs_layers
        assert v2.digest() == sha256(v2.manifest().encode())
        assert v2.blob(v2_compat.EMPTY_TAR_DIGEST) == schema1.empty_tar_gz()
        assert v2.uncompressed_blob(img.entries[0].digest) == img.entries[0].tar
        layers = v2_compat.v1_layers(v22.manifest(), v22.config_file())
        assert [h['v1Compatibility'] for h in reversed(parsed['history'])] == [
            l.v1_compatibility for l in layers]
        # The v2.2 image knows its diff_ids; a plain schema 1 image doesn't.
        assert [v2.diff_id(e.digest) for e in img.entries] == [
            e.diff_id for e in img.entries]
        assert v2.diff_id(v2_compat.EMPTY_TAR_DIGEST) == (
            v2_compat.EMPTY_TAR_DIFF_ID)
        assert _MemoryImage(img).diff_id(img.entries[0].digest) is None


# Against the real registry.


def test_registry_agrees_on_the_payload_digest(s1_registry, repo_name):
    img = _image(seed=80)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    assert pushed.digest == v2_digest.SignedManifestToSHA256(img.manifest)
    served, ctype = images.Client(s1_registry).manifest(
        pushed.repo, 'v1', accept=schema1.SIGNED_MIME)
    assert ctype == schema1.SIGNED_MIME
    # The registry re-signed it with its own key, over the same payload.
    assert served != img.manifest
    assert v2_util.DetachSignatures(served)[0] == img.payload


def test_registry_rejects_a_bad_signature(s1_registry, repo_name):
    img = _image(seed=85)
    parsed = json.loads(img.manifest)
    sig = parsed['signatures'][0]
    sig['signature'] = sig['signature'][:-4] + ('AAAA' if sig['signature'][-4:] != 'AAAA'
                                                else 'BBBB')
    body = img.manifest[:img.manifest.index(b'"signatures"')] + \
        b'"signatures": ' + json.dumps([sig], indent=3).encode() + b'\n}'
    bad = schema1.Schema1Image(manifest=body, payload=img.payload,
                               entries=img.entries)
    with pytest.raises(RuntimeError, match='400'):
        schema1.push(s1_registry, repo_name + ':bad', bad)


def _check_layout(directory: str, img: schema1.Schema1Image) -> dict:
    files = {}
    for entry in sorted(os.listdir(directory)):
        with open(os.path.join(directory, entry), 'rb') as f:
            files[entry] = f.read()
    n = len(img.entries)
    expected = {'config.json', 'digest', 'manifest.json'}
    expected |= {'%03d.tar.gz' % i for i in range(n)}
    expected |= {'%03d.sha256' % i for i in range(n)}
    assert set(files) == expected

    # Layers: the schema 1 blobs, base first, throwaway ones included.
    for i, entry in enumerate(img.entries):
        assert files['%03d.tar.gz' % i] == entry.blob, i
        assert files['%03d.sha256' % i] == entry.digest.split(':')[1].encode(), i

    # The config: a v2.2 config whose diff_ids are the layers' tars.
    config = json.loads(files['config.json'])
    assert files['config.json'] == json.dumps(config, sort_keys=True).encode()
    assert config['rootfs'] == {
        'type': 'layers',
        'diff_ids': [sha256(gzip.decompress(files['%03d.tar.gz' % i]))
                     for i in range(n)]}
    assert config['rootfs']['diff_ids'] == [e.diff_id for e in img.entries]
    compats = [json.loads(e.v1_compatibility) for e in img.entries]
    assert config['history'] == [
        {'created': c['created'], 'created_by': '/bin/sh'} for c in compats]
    for key in ('architecture', 'os', 'config', 'container', 'docker_version',
                'created', 'container_config'):
        assert config[key] == compats[-1][key], key

    # The manifest: schema 2, naming the config and the layers.
    manifest = json.loads(files['manifest.json'])
    assert files['manifest.json'] == json.dumps(manifest, sort_keys=True).encode()
    assert manifest == {
        'schemaVersion': 2,
        'mediaType': docker_http.MANIFEST_SCHEMA2_MIME,
        'config': {'mediaType': docker_http.CONFIG_JSON_MIME,
                   'size': len(files['config.json']),
                   'digest': sha256(files['config.json'])},
        'layers': [{'mediaType': docker_http.LAYER_MIME,
                    'size': len(e.blob), 'digest': e.digest}
                   for e in img.entries],
    }
    assert files['digest'] == sha256(files['manifest.json']).encode()
    return files


def test_pull_schema1_by_tag_and_digest(s1_registry, repo_name, pull):
    img = _image(seed=100)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    mark = s1_registry.mark()
    by_tag = pull(pushed.by_tag)
    assert by_tag.returncode == 0, by_tag.stderr
    assert by_tag.stdout == ''
    files = _check_layout(by_tag.directory, img)

    # Each layer blob is fetched once (its diff_id is found on the way);
    # the empty-tar blob is not fetched at all.
    gets = s1_registry.blob_gets(mark)
    non_empty = {e.digest for e in img.entries if not e.throwaway}
    assert sorted(gets) == sorted('/v2/%s/blobs/%s' % (pushed.repo, d)
                                  for d in non_empty)
    manifests = [p for m, p in s1_registry.requests_since(mark)
                 if '/manifests/' in p]
    assert manifests == ['/v2/%s/manifests/v1' % pushed.repo]

    by_digest = pull(pushed.by_digest)
    assert by_digest.returncode == 0, by_digest.stderr
    assert _check_layout(by_digest.directory, img) == files


def test_pull_schema1_diff_ids_match_skopeo(s1_registry, repo_name, pull, tmp_path):
    """containers/image converts schema 1 on its own: same diff_ids."""
    img = _image(seed=110)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    proc = pull(pushed.by_tag)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(proc.directory, 'config.json'), 'rb') as f:
        ours = json.load(f)['rootfs']['diff_ids']
    oci = str(tmp_path / 'oci')
    images.skopeo('copy', '--src-tls-verify=false', 'docker://' + pushed.by_tag,
                  'oci:' + oci + ':x')
    with open(os.path.join(oci, 'index.json')) as f:
        top = json.load(f)['manifests'][0]['digest']

    def blob(digest):
        with open(os.path.join(oci, 'blobs', 'sha256', digest.split(':')[1]), 'rb') as f:
            return f.read()
    theirs = json.loads(blob(json.loads(blob(top))['config']['digest']))
    # containers/image drops throwaway entries; ours keeps them, as upstream.
    kept = [d for d, e in zip(ours, img.entries) if not e.throwaway]
    assert theirs['rootfs']['diff_ids'] == kept


def test_pull_schema1_single_layer_no_throwaway(s1_registry, repo_name, pull):
    img = schema1.build([images.make_layer(120, 100)], throwaway=[])
    pushed = schema1.push(s1_registry, repo_name + ':one', img)
    proc = pull(pushed.by_tag)
    assert proc.returncode == 0, proc.stderr
    _check_layout(proc.directory, img)


def test_pull_schema1_tampered_blob(s1_registry, s1_proxy, repo_name, pull):
    img = _image(seed=130)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    s1_proxy.corrupt_blob(img.entries[2].digest)
    proc = pull('%s/%s:v1' % (s1_proxy.host, pushed.repo))
    line = pull.assert_failed(proc, 'digest mismatch', img.entries[2].digest)
    assert 'Error pulling and saving image' in line


def test_pull_schema1_tampered_manifest_by_digest(s1_registry, s1_proxy, repo_name,
                                                  pull):
    img = _image(seed=140)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    other = _image(seed=150)
    s1_proxy.replace_manifest(pushed.digest, other.manifest)
    proc = pull('%s/%s@%s' % (s1_proxy.host, pushed.repo, pushed.digest))
    pull.assert_failed(proc, 'digest mismatch')


def test_open_image_library_cleans_its_spool(s1_registry, repo_name, tmp_path,
                                             monkeypatch):
    img = _image(seed=160)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    spool_root = tmp_path / 'spool-root'
    spool_root.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(spool_root))
    name = docker_name.Tag(pushed.by_tag)
    with docker_image_list.open_image(name, docker_creds.Anonymous(),
                                      pooled_http.Http()) as image:
        assert isinstance(image, v2_compat.V22FromV2)
        assert image.diff_ids() == list(reversed([e.diff_id for e in img.entries]))
        assert len(os.listdir(spool_root)) == 1
        for entry in img.entries:
            assert image.blob(entry.digest) == entry.blob
    assert os.listdir(spool_root) == []


def _max_rss_kib(pull, name: str, tmp_path) -> int:
    out = str(tmp_path / ('rss-%d' % len(os.listdir(tmp_path))))
    proc = subprocess.run(
        ['/usr/bin/time', '-o', out, '-f', '%M'] + pars.tool_command('puller')
        + ['--name', name, '--directory', pull.new_dir()],
        capture_output=True, text=True, env=pull.env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        return int(f.read().split()[-1])


def test_pull_schema1_streams_layers(s1_registry, repo_name, pull, tmp_path):
    """A 48 MiB layer does not raise the puller's peak memory by its size."""
    small = schema1.push(s1_registry, repo_name + ':small',
                         schema1.build([images.make_layer(170, 1000)]))
    size = 48 << 20
    big_img = schema1.build([images.make_layer(171, size)], throwaway=[1])
    big = schema1.push(s1_registry, repo_name + ':big', big_img)
    baseline = _max_rss_kib(pull, small.by_tag, tmp_path)
    peak = _max_rss_kib(pull, big.by_tag, tmp_path)
    assert peak - baseline < (size >> 10) // 2, (baseline, peak)


def test_v2_from_registry_standalone(s1_registry, repo_name):
    img = _image(seed=180)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    creds, transport = docker_creds.Anonymous(), pooled_http.Http()
    for ref in (pushed.by_tag, pushed.by_digest):
        name = (docker_name.Digest(ref) if '@' in ref else docker_name.Tag(ref))
        with v2_image.FromRegistry(name, creds, transport) as v2:
            assert v2.exists()
            assert v2.digest() == pushed.digest
            assert v2.fs_layers() == img.fs_layers
            assert v2_util.DetachSignatures(v2.manifest())[0] == img.payload.decode()
            assert v2.tags() == ['v1']
            top = img.entries[-2]
            assert v2.blob(top.digest) == top.blob
            assert v2.uncompressed_blob(top.digest) == top.tar
            assert v2.blob_size(top.digest) == len(top.blob)
            assert v2.diff_id(top.digest) is None  # as upstream: schema 1
    missing = docker_name.Tag('%s/%s:nope' % (s1_registry.host, pushed.repo))
    with v2_image.FromRegistry(missing, creds, transport) as v2:
        assert not v2.exists()


def test_v2_from_registry_checks_the_manifest(s1_registry, s1_proxy, repo_name):
    img, other = _image(seed=190), _image(seed=191)
    pushed = schema1.push(s1_registry, repo_name + ':v1', img)
    s1_proxy.replace_manifest(pushed.digest, other.manifest)
    name = docker_name.Digest('%s/%s@%s' % (s1_proxy.host, pushed.repo, pushed.digest))
    with v2_image.FromRegistry(name, docker_creds.Anonymous(),
                               pooled_http.Http()) as v2:
        with pytest.raises(docker_digest.DigestMismatchedError,
                           match='digest mismatch'):
            v2.manifest()
