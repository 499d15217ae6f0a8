"""puller on Docker manifest lists and OCI indexes: platform resolution.

The `digest` file must name the resolved CHILD manifest (rules_docker
compares it with the digest attribute byte for byte).
"""
import json

import pytest

from containerregistry.testing import images

AMD64 = {'os': 'linux', 'architecture': 'amd64'}
ARM64 = {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}
ARMV7 = {'os': 'linux', 'architecture': 'arm', 'variant': 'v7'}
ARMV6 = {'os': 'linux', 'architecture': 'arm', 'variant': 'v6'}
PPC = {'os': 'linux', 'architecture': 'ppc64le'}
WIN_1809 = {'os': 'windows', 'architecture': 'amd64', 'os.version': '10.0.17763.1234'}
WIN_2022 = {'os': 'windows', 'architecture': 'amd64', 'os.version': '10.0.20348.2',
            'os.features': ['win32k']}
I386 = {'os': 'linux', 'architecture': '386', 'features': ['sse4']}

# rules_docker passes every platform flag, empty ones as '' words.
RULES_DOCKER_EMPTY = ['--os-version', '', '--os-features', '', '--variant', '',
                      '--features', '']

CASES = [
    ('default', [], AMD64),
    ('os-arch', ['--os', 'linux', '--architecture', 'amd64'], AMD64),
    ('rules-docker-defaults', ['--os', 'linux', '--architecture', 'amd64']
     + RULES_DOCKER_EMPTY, AMD64),
    ('arm64-no-variant', ['--architecture', 'arm64'], ARM64),
    ('arm64-v8', ['--architecture', 'arm64', '--variant', 'v8'], ARM64),
    ('arm64-empty-variant', ['--os', 'linux', '--architecture', 'arm64']
     + RULES_DOCKER_EMPTY, ARM64),
    ('arm-v7', ['--architecture', 'arm', '--variant', 'v7'], ARMV7),
    ('arm-v6', ['--os', 'linux', '--architecture', 'arm', '--variant', 'v6'], ARMV6),
    ('rules-docker-arm-v7', ['--os', 'linux', '--os-version', '', '--os-features', '',
                             '--architecture', 'arm', '--variant', 'v7',
                             '--features', ''], ARMV7),
    ('ppc64le', ['--architecture', 'ppc64le'], PPC),
    ('windows-os-version', ['--os', 'windows', '--os-version', '10.0.17763.1234'],
     WIN_1809),
    ('windows-os-features', ['--os', 'windows', '--architecture', 'amd64',
                             '--os-version', '10.0.20348.2', '--os-features', 'win32k'],
     WIN_2022),
    ('os-features-space-joined', ['--os', 'windows', '--os-version', '10.0.20348.2',
                                  '--os-features', 'win32k other'], WIN_2022),
    ('features', ['--architecture', '386', '--features', 'sse4'], I386),
    ('features-space-joined', ['--architecture', '386', '--features', 'sse4 avx2'], I386),
    ('features-nargs', ['--architecture', '386', '--features', 'sse4', 'avx2'], I386),
]


@pytest.fixture(scope='module', params=['docker', 'oci'])
def index(request, registry):
    fmt = request.param
    return images.push_index(registry, 'test/platforms-%s:multi' % fmt, fmt=fmt,
                             attestation=True, seed=1)


def test_index_shape(index):
    assert index.media_type in (images.DOCKER_LIST, images.OCI_INDEX)
    assert json.loads(index.manifest)['mediaType'] == index.media_type
    assert [c.platform for c in index.children] == images.default_platforms()
    assert len(index.attestations) == len(index.children)


@pytest.mark.parametrize('args,expected', [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_resolve_child(index, pull, args, expected):
    child = index.child(**{k.replace('.', '_'): v for k, v in expected.items()})
    proc = pull(index.by_tag, *args)
    pull.assert_pulled(proc, child)
    assert pull.layout(proc.directory)['digest'] != index.digest.encode()


def test_resolve_by_index_digest(index, pull):
    child = index.child(os='linux', architecture='arm', variant='v6')
    proc = pull(index.by_digest, '--architecture', 'arm', '--variant', 'v6')
    pull.assert_pulled(proc, child)


def test_child_by_own_digest(index, pull):
    child = index.child(os='linux', architecture='ppc64le')
    pull.assert_pulled(pull(child.by_digest), child)


@pytest.mark.parametrize('args', [
    ['--architecture', 's390x'],
    ['--architecture', 'arm', '--variant', 'v5'],
    ['--os', 'windows', '--os-version', '10.0.99999.1'],
], ids=['no-arch', 'no-variant', 'no-os-version'])
def test_no_matching_child(index, pull, args):
    pull.assert_failed(pull(index.by_tag, *args))


def test_attestation_never_picked(index, pull):
    proc = pull(index.by_tag, '--os', 'unknown', '--architecture', 'unknown')
    pull.assert_failed(proc)


@pytest.mark.parametrize('fmt', ['docker', 'oci'])
def test_lowest_digest_wins(registry, repo_name, pull, fmt):
    platforms = [dict(AMD64), dict(ARM64), dict(AMD64), dict(AMD64)]
    index = images.push_index(registry, repo_name + ':dups', platforms=platforms,
                              fmt=fmt, seed=7)
    amd = [c for c in index.children if c.platform == AMD64]
    assert len({c.digest for c in amd}) == 3
    lowest = min(amd, key=lambda c: c.digest)
    pull.assert_pulled(pull(index.by_tag), lowest)


def test_index_with_multi_layer_children(registry, repo_name, pull):
    index = images.push_index(registry, repo_name + ':layers', fmt='oci', seed=9,
                              platforms=[AMD64, ARMV7], layers_per_child=4)
    pull.assert_pulled(pull(index.by_tag, '--architecture', 'arm', '--variant', 'v7'),
                       index.child(os='linux', architecture='arm', variant='v7'))
