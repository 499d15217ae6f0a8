"""puller edge cases: uncompressed OCI layers, odd configs, odd lists."""
import json

from containerregistry.testing import images


def _index(entries, media_type=images.OCI_INDEX):
    body = {'schemaVersion': 2, 'manifests': entries}
    if media_type:
        body['mediaType'] = media_type
    return json.dumps(body, indent=2).encode()


def _entry(built, platform=None, media_type=None):
    entry = {'mediaType': media_type or built.media_type, 'size': len(built.manifest),
             'digest': built.digest}
    if platform is not None:
        entry['platform'] = platform
    return entry


def test_uncompressed_oci_layers(registry, repo_name, pull):
    built = images.build_image([images.make_layer(600), images.make_layer(601, kind='text')],
                               fmt='oci', compressed=False)
    pushed = images.push_built(registry, repo_name + ':plain', built)
    assert json.loads(pushed.manifest)['layers'][0]['mediaType'] == images.OCI_LAYER_TAR
    proc = pull(pushed.by_tag)
    pull.assert_pulled(proc, pushed)
    assert pull.layout(proc.directory)['000.tar.gz'] == images.make_layer(600)


def test_config_bytes_kept_exactly(registry, repo_name, pull):
    layer = images.make_layer(610)
    base = images.build_image([layer])
    config = ('{\r\n  "os": "linux", "architecture": "amd64",\r\n'
              '  "config": {"Labels": {"name": "Zo\u00eb \u2603"}},\r\n'
              '  "rootfs": {"type": "layers", "diff_ids": ["%s"]}\r\n}\r\n'
              % images.sha256(layer)).encode('utf-8')
    manifest = json.loads(base.manifest)
    manifest['config'].update(digest=images.sha256(config), size=len(config))
    built = images.Built(manifest=json.dumps(manifest, separators=(',', ':')).encode(),
                         media_type=base.media_type, config=config,
                         layers=base.layers, platform=base.platform)
    pushed = images.push_built(registry, repo_name + ':crlf', built)
    assert pushed.config == config
    pull.assert_pulled(pull(pushed.by_tag), pushed)


def test_entry_without_platform_matches_any_target(registry, repo_name, pull):
    child = images.build_image([images.make_layer(620)], fmt='oci')
    top = _index([_entry(child)])
    digest = images.push_list_bytes(registry, repo_name + ':noplat', top, [child])
    pushed = images.read_back(registry, repo_name, child)
    name = '%s/%s:noplat' % (registry.host, repo_name)
    pull.assert_pulled(pull(name), pushed)
    pull.assert_pulled(pull(name, '--architecture', 's390x'), pushed)
    pull.assert_pulled(pull('%s/%s@%s' % (registry.host, repo_name, digest)), pushed)


def test_index_without_media_type(registry, repo_name, pull):
    amd = images.build_image([images.make_layer(630)], fmt='oci')
    arm = images.build_image([images.make_layer(631)], fmt='oci',
                             platform={'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'})
    top = _index([_entry(amd, {'architecture': 'amd64', 'os': 'linux'}),
                  _entry(arm, {'architecture': 'arm64', 'os': 'linux', 'variant': 'v8'})],
                 media_type=None)
    images.push_list_bytes(registry, repo_name + ':bare', top, [amd, arm])
    name = '%s/%s:bare' % (registry.host, repo_name)
    pull.assert_pulled(pull(name), images.read_back(registry, repo_name, amd))
    pull.assert_pulled(pull(name, '--architecture', 'arm64'),
                       images.read_back(registry, repo_name, arm))


def test_nested_index(registry, repo_name, pull):
    amd = images.build_image([images.make_layer(640)], fmt='oci')
    arm = images.build_image([images.make_layer(641)], fmt='oci',
                             platform={'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'})
    ppc = images.build_image([images.make_layer(642)], fmt='oci',
                             platform={'os': 'linux', 'architecture': 'ppc64le'})
    inner = _index([_entry(amd, {'architecture': 'amd64', 'os': 'linux'}),
                    _entry(arm, {'architecture': 'arm64', 'os': 'linux', 'variant': 'v8'})])
    inner_digest = images.push_list_bytes(registry, repo_name + ':inner', inner, [amd, arm])
    ppc_pushed = images.push_built(registry, repo_name + ':ppc', ppc)
    outer = _index([{'mediaType': images.OCI_INDEX, 'size': len(inner),
                     'digest': inner_digest},
                    _entry(ppc, {'architecture': 'ppc64le', 'os': 'linux'})])
    images.put_manifest(registry, repo_name, 'outer', outer, images.OCI_INDEX)
    name = '%s/%s:outer' % (registry.host, repo_name)
    pull.assert_pulled(pull(name, '--architecture', 'arm64', '--variant', 'v8'),
                       images.read_back(registry, repo_name, arm))
    pull.assert_pulled(pull(name), images.read_back(registry, repo_name, amd))
    pull.assert_pulled(pull(name, '--architecture', 'ppc64le'), ppc_pushed)


def test_docker_list_with_attestation_listed_first(registry, repo_name, pull):
    amd = images.build_image([images.make_layer(650)])
    att = images.build_attestation(amd, 650)
    top = json.dumps({
        'schemaVersion': 2, 'mediaType': images.DOCKER_LIST,
        'manifests': [
            {'mediaType': att.media_type, 'size': len(att.manifest), 'digest': att.digest,
             'platform': {'architecture': 'unknown', 'os': 'unknown'},
             'annotations': {'vnd.docker.reference.type': 'attestation-manifest',
                             'vnd.docker.reference.digest': amd.digest}},
            _entry(amd, {'architecture': 'amd64', 'os': 'linux'}),
        ]}).encode()
    images.push_list_bytes(registry, repo_name + ':att', top, [amd, att])
    name = '%s/%s:att' % (registry.host, repo_name)
    pull.assert_pulled(pull(name), images.read_back(registry, repo_name, amd))
