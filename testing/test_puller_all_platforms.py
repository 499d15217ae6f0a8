"""puller.par --format oci --all-platforms, and pushing such a layout back.

The list or index is kept byte for byte (the registry's digest), with every
image it names; attestation entries stay in the list, their manifests and
blobs are written only with --include-attestations. skopeo and umoci read
the layout, and pusher.par publishes it again under the same digest.
"""
import json
import os
import subprocess

from containerregistry.testing import images
from containerregistry.testing import oci_layouts as ol
from containerregistry.testing import push_helpers as ph
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)

_PLATFORMS = [{'os': 'linux', 'architecture': 'amd64'},
              {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'},
              {'os': 'windows', 'architecture': 'amd64',
               'os.version': '10.0.17763.1234'}]


def _blob_names(layout):
    return sorted(os.listdir(os.path.join(layout, 'blobs', 'sha256')))


def _expected_blobs(index):
    """The digests of INDEX and of its images' manifests and blobs."""
    digests = {index.digest}
    for child in index.children:
        digests |= {child.digest, child.config_digest}
        digests |= {l.digest for l in child.layers}
    return digests


def _hex(digests):
    return sorted(d.split(':')[1] for d in digests)


def _attestation_blobs(layout, index):
    """The digests the attestation manifests of INDEX name (read back from
    LAYOUT), and their own."""
    found = set()
    for digest in index.attestations:
        manifest = json.loads(ol.read_blob(layout, digest))
        found |= {digest, manifest['config']['digest']}
        found |= {l['digest'] for l in manifest['layers']}
    return found


def _assert_whole(layout, index, tag):
    """LAYOUT holds INDEX as served, every child and blob intact."""
    entry, = ol.index_entries(layout)
    assert entry == {'mediaType': index.media_type, 'digest': index.digest,
                     'size': len(index.manifest),
                     'annotations': {ol.REF_NAME: tag}}
    assert ol.read_blob(layout, index.digest) == index.manifest
    for child in index.children:
        assert ol.read_blob(layout, child.digest) == child.manifest
        assert ol.read_blob(layout, child.config_digest) == child.config
        for layer in child.layers:
            assert ol.read_blob(layout, layer.digest) == layer.blob


def test_docker_list_is_kept_as_served(registry, repo_name, pull, tmp_path):
    index = images.push_index(registry, repo_name + ':multi', _PLATFORMS,
                              seed=41, layers_per_child=2)
    assert index.media_type == images.DOCKER_LIST
    proc = pull(index.by_tag, '--format', 'oci', '--all-platforms')
    assert proc.returncode == 0, proc.stderr
    layout = proc.directory
    _assert_whole(layout, index, 'multi')
    assert _blob_names(layout) == _hex(_expected_blobs(index))
    # What the README says of OCI tools and Docker's list type.
    refused = _skopeo('inspect', '--raw', 'oci:%s:multi' % layout)
    assert refused.returncode != 0
    assert 'no descriptor found for reference' in refused.stderr


def test_docker_list_is_pushed_back_under_its_digest(registry, repo_name, pull,
                                                      tools):
    index = images.push_index(registry, repo_name + ':multi', _PLATFORMS,
                              seed=42)
    proc = pull(index.by_tag, '--format', 'oci', '--all-platforms')
    assert proc.returncode == 0, proc.stderr
    layout = proc.directory
    assert tools.digest('--oci-layout', layout) == index.digest
    name = '%s/%s-copy:again' % (registry.host, repo_name)
    pushed = tools.pusher(name, '--oci-layout', layout)
    assert ph.published_digest(pushed, name) == index.digest
    assert ph.tag_digest(registry, repo_name + '-copy', 'again') == index.digest
    assert images.skopeo_inspect_raw(registry, name) == index.manifest
    for child in index.children:
        by_digest = '%s/%s-copy@%s' % (registry.host, repo_name, child.digest)
        assert images.skopeo_inspect_raw(registry, by_digest) == child.manifest


def _skopeo(*args):
    return subprocess.run(['skopeo', '--insecure-policy', *args],
                          capture_output=True, text=True, timeout=120,
                          env=images.skopeo_env())


def _umoci(*args):
    return subprocess.run(['umoci', *args], capture_output=True, text=True,
                          timeout=120)


def test_oci_index_without_attestations(registry, repo_name, pull, tools,
                                        tmp_path):
    """The index keeps its attestation entries (its digest is the
    registry's), but their manifests and blobs are left out: skopeo reads
    one platform, and the pusher refuses the incomplete layout up front."""
    index = images.push_index(registry, repo_name + ':att', _PLATFORMS,
                              fmt='oci', attestation=True, seed=43)
    assert len(index.attestations) == len(_PLATFORMS)
    proc = pull(index.by_tag, '--format', 'oci', '--all-platforms')
    assert proc.returncode == 0, proc.stderr
    layout = proc.directory
    _assert_whole(layout, index, 'att')
    assert _blob_names(layout) == _hex(_expected_blobs(index))
    assert json.loads(ol.read_blob(layout, index.digest))['manifests'][-1][
        'digest'] == index.attestations[-1]

    raw = _skopeo('inspect', '--raw', 'oci:%s:att' % layout)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.encode() == index.manifest
    one = tmp_path / 'one'
    copied = _skopeo('copy', 'oci:%s:att' % layout, 'dir:%s' % one)
    assert copied.returncode == 0, copied.stderr
    amd64 = index.child(os='linux', architecture='amd64')
    assert (one / 'manifest.json').read_bytes() == amd64.manifest
    assert _skopeo('copy', '--all', 'oci:%s:att' % layout,
                   'dir:%s' % (tmp_path / 'all')).returncode != 0

    name = '%s/%s-copy:att' % (registry.host, repo_name)
    refused = tools.pusher(name, '--oci-layout', layout)
    ph.one_line_failure(refused, index.attestations[0], 'is missing',
                        '--include-attestations')
    assert ph.tag_digest(registry, repo_name + '-copy', 'att') is None
    assert not ph.blob_exists(registry, repo_name + '-copy',
                              amd64.layers[0].digest)


def test_oci_index_with_attestations_round_trips(registry, repo_name, pull,
                                                 tools, tmp_path):
    """With --include-attestations the layout is complete: skopeo copies it
    whole, umoci reads its images, and the pusher publishes the same index
    digest with every child."""
    index = images.push_index(registry, repo_name + ':att', _PLATFORMS,
                              fmt='oci', attestation=True, seed=44,
                              layers_per_child=2)
    cache = str(tmp_path / 'cache')
    proc = pull(index.by_tag, '--format', 'oci', '--all-platforms',
                '--include-attestations', '--cache', cache)
    assert proc.returncode == 0, proc.stderr
    layout = proc.directory
    _assert_whole(layout, index, 'att')
    attested = _attestation_blobs(layout, index)
    assert _blob_names(layout) == _hex(_expected_blobs(index) | attested)
    for name in _blob_names(layout):
        assert images.sha256(ol.read_blob(layout, 'sha256:' + name)) == (
            'sha256:' + name)

    copied = tmp_path / 'all'
    proc = _skopeo('copy', '--all', 'oci:%s:att' % layout, 'dir:%s' % copied)
    assert proc.returncode == 0, proc.stderr
    assert (copied / 'manifest.json').read_bytes() == index.manifest
    for digest in index.attestations:
        assert (copied / (digest.split(':')[1] + '.manifest.json')
                ).read_bytes() == ol.read_blob(layout, digest)

    listed = _umoci('ls', '--layout', layout)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ['att']
    # umoci unpacks one image of a tag; name the arm64 child for it.
    arm64 = index.child(os='linux', architecture='arm64', variant='v8')
    with open(os.path.join(layout, 'index.json')) as f:
        top = json.load(f)
    top['manifests'].append({'mediaType': images.OCI_MANIFEST,
                             'digest': arm64.digest,
                             'size': len(arm64.manifest),
                             'annotations': {ol.REF_NAME: 'arm64'}})
    with open(os.path.join(layout, 'index.json'), 'w') as f:
        json.dump(top, f)
    bundle = tmp_path / 'bundle'
    unpacked = _umoci('unpack', '--rootless', '--image', '%s:arm64' % layout,
                      str(bundle))
    assert unpacked.returncode == 0, unpacked.stderr
    assert (bundle / 'rootfs').is_dir()

    name = '%s/%s-copy:att' % (registry.host, repo_name)
    pushed = tools.pusher(name, '--oci-layout', layout, '--oci-ref', 'att')
    assert ph.published_digest(pushed, name) == index.digest
    assert images.skopeo_inspect_raw(registry, name) == index.manifest
    for digest in index.attestations:
        back = '%s/%s-copy@%s' % (registry.host, repo_name, digest)
        assert images.skopeo_inspect_raw(registry, back) == ol.read_blob(
            layout, digest)
    assert tools.digest('--oci-layout', layout, '--oci-ref', 'att') == (
        index.digest)
    assert tools.digest('--oci-layout', layout, '--oci-ref', 'arm64') == (
        arm64.digest)


def test_single_image_is_kept_as_served(registry, repo_name, pull):
    """A Docker image is not relabelled with --all-platforms: the entry is
    the registry's manifest and digest."""
    pushed = images.push_image(registry, repo_name + ':one',
                               [images.make_layer(451)])
    proc = pull(pushed.by_tag, '--format', 'oci', '--all-platforms')
    assert proc.returncode == 0, proc.stderr
    layout = proc.directory
    entry, = ol.index_entries(layout)
    assert entry['mediaType'] == images.DOCKER_MANIFEST
    assert entry['digest'] == pushed.digest
    assert ol.read_blob(layout, pushed.digest) == pushed.manifest
    assert _blob_names(layout) == _hex(
        {pushed.digest, pushed.config_digest, pushed.layers[0].digest})


def test_failed_pull_leaves_the_layout_as_it_was(registry, repo_name, pull):
    """A child's damaged layer fails the pull: no index entry is added and
    the blobs it wrote are gone; an image already in the layout stays."""
    from containerregistry.testing import proxy as proxy_mod
    first = images.push_image(registry, repo_name + ':first',
                              [images.make_layer(461)], fmt='oci')
    index = images.push_index(registry, repo_name + ':multi', _PLATFORMS,
                              fmt='oci', seed=46)
    fresh = pull.new_dir()
    kept = pull(first.by_tag, '--format', 'oci')
    assert kept.returncode == 0, kept.stderr
    before = ol.index_entries(kept.directory)
    names = _blob_names(kept.directory)
    damaged = index.child(os='linux', architecture='arm64',
                          variant='v8').layers[0].digest
    proxy = proxy_mod.start_proxy(registry)
    try:
        proxy.corrupt_blob(damaged)
        by_proxy = '%s/%s:multi' % (proxy.host, repo_name)
        failed = [pull(by_proxy, '--format', 'oci', '--all-platforms',
                       directory=d) for d in (fresh, kept.directory)]
    finally:
        proxy.stop()
    for proc in failed:
        proc.directory = None  # a layout: checked below
        pull.assert_failed(proc, 'digest mismatch', damaged)
    # The lock file stays, as file_lock says; nothing else does.
    assert os.listdir(fresh) == ['index.json.lock']
    assert ol.index_entries(kept.directory) == before
    assert _blob_names(kept.directory) == names


def test_flag_errors(registry, repo_name, pull):
    name = '%s/%s:x' % (registry.host, repo_name)
    cases = [
        (['--all-platforms'], '--all-platforms requires --format oci'),
        (['--format', 'oci', '--include-attestations'],
         '--include-attestations requires --all-platforms'),
        (['--format', 'oci', '--all-platforms', '--architecture', 'arm64',
          '--variant', ''],
         'cannot be combined with --architecture.'),
    ]
    for flags, message in cases:
        proc = pull(name, *flags)
        pull.assert_failed(proc, message)
        assert not os.path.exists(proc.directory)


def test_nested_index_round_trips(registry, repo_name, pull, tools):
    """An index naming another index: both are kept, with every image."""
    inner = images.push_index(registry, repo_name + ':inner', _PLATFORMS[:2],
                              fmt='oci', seed=47)
    extra = images.push_image(registry, repo_name + ':extra',
                              [images.make_layer(471)], fmt='oci',
                              platform={'os': 'linux', 'architecture': 's390x'})
    outer = json.dumps({
        'schemaVersion': 2, 'mediaType': images.OCI_INDEX,
        'manifests': [
            {'mediaType': images.OCI_INDEX, 'digest': inner.digest,
             'size': len(inner.manifest)},
            {'mediaType': images.OCI_MANIFEST, 'digest': extra.digest,
             'size': len(extra.manifest),
             'platform': {'os': 'linux', 'architecture': 's390x'}}],
    }).encode()
    digest = images.put_manifest(registry, repo_name, 'outer', outer,
                                 images.OCI_INDEX)
    assert digest == images.sha256(outer)
    proc = pull('%s/%s:outer' % (registry.host, repo_name), '--format', 'oci',
                '--all-platforms')
    assert proc.returncode == 0, proc.stderr
    layout = proc.directory
    entry, = ol.index_entries(layout)
    assert entry['digest'] == digest
    assert _blob_names(layout) == _hex(
        _expected_blobs(inner) | {digest, extra.digest, extra.config_digest,
                                  extra.layers[0].digest})
    assert ol.read_blob(layout, digest) == outer

    name = '%s/%s-copy:outer' % (registry.host, repo_name)
    pushed = tools.pusher(name, '--oci-layout', layout)
    assert ph.published_digest(pushed, name) == digest
    assert images.skopeo_inspect_raw(registry, name) == outer
    back = '%s/%s-copy@%s' % (registry.host, repo_name, inner.digest)
    assert images.skopeo_inspect_raw(registry, back) == inner.manifest
