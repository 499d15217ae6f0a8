"""puller.par --format oci: an OCI image layout that OCI tools accept."""
import json
import os
import subprocess

from containerregistry.testing import images


def _blob(directory, digest):
    path = os.path.join(directory, 'blobs', 'sha256', digest.split(':')[1])
    with open(path, 'rb') as f:
        return f.read()


def _index(directory):
    with open(os.path.join(directory, 'index.json')) as f:
        return json.load(f)


def test_oci_image_is_written_as_served(registry, repo_name, pull):
    layers = [images.make_layer(801, 4000), images.make_layer(802, 2000)]
    pushed = images.push_image(registry, repo_name + ':v1', layers, fmt='oci')
    proc = pull(pushed.by_tag, '--format', 'oci')
    assert proc.returncode == 0, proc.stderr
    out = proc.directory
    with open(os.path.join(out, 'oci-layout')) as f:
        assert json.load(f) == {'imageLayoutVersion': '1.0.0'}
    index = _index(out)
    assert index['schemaVersion'] == 2
    assert index['manifests'] == [{
        'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'digest': pushed.digest, 'size': len(pushed.manifest),
        'annotations': {'org.opencontainers.image.ref.name': 'v1'}}]
    assert _blob(out, pushed.digest) == pushed.manifest
    assert _blob(out, pushed.config_digest) == pushed.config
    for layer in pushed.layers:
        assert _blob(out, layer.digest) == layer.blob
    names = sorted(os.listdir(os.path.join(out, 'blobs', 'sha256')))
    assert names == sorted(d.split(':')[1] for d in
                           [pushed.digest, pushed.config_digest]
                           + [l.digest for l in pushed.layers])


def test_docker_image_is_relabelled_and_read_by_skopeo_and_umoci(
        registry, repo_name, pull, tmp_path):
    layers = [images.make_layer(811, 3000)]
    pushed = images.push_image(registry, repo_name + ':d', layers)
    proc = pull(pushed.by_tag, '--format', 'oci')
    assert proc.returncode == 0, proc.stderr
    out = proc.directory
    entry = _index(out)['manifests'][0]
    manifest = json.loads(_blob(out, entry['digest']))
    assert manifest['mediaType'] == 'application/vnd.oci.image.manifest.v1+json'
    assert manifest['config']['mediaType'] == (
        'application/vnd.oci.image.config.v1+json')
    assert manifest['config']['digest'] == pushed.config_digest
    assert [l['digest'] for l in manifest['layers']] == [
        l.digest for l in pushed.layers]
    assert {l['mediaType'] for l in manifest['layers']} == {
        'application/vnd.oci.image.layer.v1.tar+gzip'}

    copied = tmp_path / 'skopeo-dir'
    subprocess.run(['skopeo', 'copy', 'oci:%s:d' % out, 'dir:%s' % copied],
                   check=True, capture_output=True)
    assert (copied / pushed.layers[0].hex).read_bytes() == pushed.layers[0].blob

    bundle = tmp_path / 'bundle'
    subprocess.run(['umoci', 'unpack', '--rootless', '--image', '%s:d' % out,
                    str(bundle)], check=True, capture_output=True)
    assert (bundle / 'rootfs').is_dir()


def test_layout_keeps_other_images(registry, repo_name, pull):
    one = images.push_image(registry, repo_name + ':one',
                            [images.make_layer(821, 1000)], fmt='oci')
    two = images.push_image(registry, repo_name + ':two',
                            [images.make_layer(822, 1000)], fmt='oci')
    out = pull.new_dir()
    for pushed in (one, two, one):
        proc = pull(pushed.by_tag, '--format', 'oci', directory=out)
        assert proc.returncode == 0, proc.stderr
    refs = {m['annotations']['org.opencontainers.image.ref.name']: m['digest']
            for m in _index(out)['manifests']}
    assert refs == {'one': one.digest, 'two': two.digest}


def test_failed_oci_pull_leaves_no_index(registry, repo_name, pull):
    proc = pull('%s/%s:missing' % (registry.host, repo_name), '--format', 'oci')
    assert proc.returncode == 1
    assert 'MANIFEST_UNKNOWN' in proc.stderr
    assert not os.path.exists(os.path.join(proc.directory, 'index.json'))


def test_damaged_blob_in_the_layout_is_fetched_again(registry, repo_name, pull):
    """A second pull into a layout re-checks the blobs already there."""
    pushed = images.push_image(registry, repo_name + ':v',
                               [images.make_layer(821), images.make_layer(822)])
    first = pull(pushed.by_tag, '--format', 'oci')
    assert first.returncode == 0, first.stderr
    out = first.directory
    damaged = os.path.join(out, 'blobs', 'sha256',
                           pushed.layers[1].digest.split(':')[1])
    with open(damaged, 'wb') as f:
        f.write(b'garbage')
    again = pull(pushed.by_tag, '--format', 'oci', directory=out)
    assert again.returncode == 0, again.stderr
    assert _blob(out, pushed.layers[1].digest) == pushed.layers[1].blob
    assert _blob(out, pushed.layers[0].digest) == pushed.layers[0].blob


def test_cache_inside_the_layout_leaves_no_temporary_files(registry, repo_name,
                                                          pull):
    pushed = images.push_image(registry, repo_name + ':c', [images.make_layer(823)],
                               fmt='oci')
    out = pull.new_dir()
    blobs = os.path.join(out, 'blobs', 'sha256')
    proc = pull(pushed.by_tag, '--format', 'oci', '--cache', blobs, directory=out)
    assert proc.returncode == 0, proc.stderr
    names = os.listdir(blobs)
    assert sorted(names) == sorted(d.split(':')[1] for d in
                                   [pushed.digest, pushed.config_digest,
                                    pushed.layers[0].digest])
    assert _blob(out, pushed.layers[0].digest) == pushed.layers[0].blob


def test_concurrent_pulls_into_one_layout_keep_every_image(
        registry, repo_name, pull, tmp_path):
    """Twelve pullers at once, each its own image and tag, into one layout:
    each entry stays (they take turns with index.json), and skopeo and
    umoci read every image."""
    import subprocess as sp
    from containerregistry.testing import pars
    shared = images.make_layer(830, 3000)
    pushed = [images.push_image(registry, '%s:t%d' % (repo_name, i),
                                [shared, images.make_layer(840 + i, 1500)],
                                fmt='oci')
              for i in range(12)]
    out = pull.new_dir()
    procs = [sp.Popen(pars.tool_command('puller') + [
        '--name', p.by_tag, '--directory', out, '--format', 'oci'],
        env=pull.env, stdout=sp.PIPE, stderr=sp.PIPE, text=True)
        for p in pushed]
    try:
        ended = [(proc.communicate(timeout=180), proc.returncode)
                 for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [rc for _, rc in ended] == [0] * 12, [err for (_, err), _ in ended]
    refs = {m['annotations']['org.opencontainers.image.ref.name']: m['digest']
            for m in _index(out)['manifests']}
    assert refs == {'t%d' % i: p.digest for i, p in enumerate(pushed)}
    for i, p in enumerate(pushed):
        copied = tmp_path / ('skopeo-%d' % i)
        sp.run(['skopeo', 'copy', 'oci:%s:t%d' % (out, i), 'dir:%s' % copied],
               check=True, capture_output=True)
        assert (copied / p.layers[1].hex).read_bytes() == p.layers[1].blob
    bundle = tmp_path / 'bundle'
    sp.run(['umoci', 'unpack', '--rootless', '--image', '%s:t11' % out,
            str(bundle)], check=True, capture_output=True)
    assert (bundle / 'rootfs' / 'layer-851').is_dir()


def test_failed_pull_keeps_the_blobs_the_index_names(registry, repo_name, pull):
    """A failed pull takes back what it placed, but not a blob that an image
    already in the layout uses."""
    from containerregistry.testing import proxy as proxy_mod
    one = images.push_image(registry, repo_name + ':one',
                            [images.make_layer(860, 3000)], fmt='oci')
    two = images.push_image(registry, repo_name + ':two',
                            [images.make_layer(860, 3000),
                             images.make_layer(861)], fmt='oci')
    shared = one.layers[0].blob
    first = pull(one.by_tag, '--format', 'oci')
    assert first.returncode == 0, first.stderr
    out = first.directory
    index = _index(out)
    damaged = os.path.join(out, 'blobs', 'sha256', one.layers[0].hex)
    with open(damaged, 'wb') as f:
        f.write(b'garbage')
    proxy = proxy_mod.start_proxy(registry)
    try:
        proxy.corrupt_blob(two.layers[1].digest)
        failed = pull('%s/%s:two' % (proxy.host, two.repo), '--format', 'oci',
                      directory=out)
    finally:
        proxy.stop()
    failed.directory = None  # the layout stays, with its other image
    pull.assert_failed(failed, 'digest mismatch')
    assert proxy.count('GET', '/blobs/' + one.layers[0].digest) == 1
    assert _index(out) == index
    assert _blob(out, one.layers[0].digest) == shared
    assert not os.path.exists(os.path.join(out, 'blobs', 'sha256',
                                           two.layers[1].hex))
