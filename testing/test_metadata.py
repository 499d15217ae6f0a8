"""transform.v2_2.metadata: the config rules_docker builds images with.

Every expectation here is written out by hand from the rules (SPEC §2.10):
image digests depend on these exact dicts, key order and history order.
"""
import copy
import hashlib
import json
import os

from containerregistry.transform.v2_2 import metadata

EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
A = 'a' * 64
B = 'b' * 64
EPOCH = '1970-01-01T00:00:00Z'


def test_empty_layer_constant_is_sha256_of_nothing():
    assert hashlib.sha256(b'').hexdigest() == EMPTY


def test_overrides_field_and_constructor_order():
    assert metadata.Overrides._fields == (
        'layers', 'entrypoint', 'cmd', 'env', 'labels', 'ports', 'volumes',
        'workdir', 'user', 'author', 'created_by', 'creation_time')
    # Positional arguments follow the constructor's order, not the fields'.
    o = metadata.Overrides(['l'], ['e'], ['c'], 'u', {'k': 'v'}, {'E': '1'},
                           ['80'], ['/v'], '/w', 'me', 'by', 'when')
    assert o.layers == ['l'] and o.entrypoint == ['e'] and o.cmd == ['c']
    assert o.user == 'u' and o.labels == {'k': 'v'} and o.env == {'E': '1'}
    assert o.ports == ['80'] and o.volumes == ['/v'] and o.workdir == '/w'
    assert o.author == 'me' and o.created_by == 'by'
    assert o.creation_time == 'when'
    assert tuple(o) == (['l'], ['e'], ['c'], {'E': '1'}, {'k': 'v'}, ['80'],
                        ['/v'], '/w', 'u', 'me', 'by', 'when')
    assert metadata.Overrides() == (None,) * 12


def test_override_method_replaces_only_given_values():
    o = metadata.Overrides(cmd=['a'], user='root', author='x')
    p = o.Override(cmd=['b'], workdir='/w', user='', author=None)
    assert p == metadata.Overrides(cmd=['b'], user='root', author='x',
                                   workdir='/w')
    assert isinstance(p, metadata.Overrides)
    # Values cannot be cleared: empty means "keep".
    assert o.Override(cmd=[]).cmd == ['a']
    assert o == metadata.Overrides(cmd=['a'], user='root', author='x')


def test_nothing_to_override():
    assert metadata.Override({}, metadata.Overrides()) == {
        'created': EPOCH,
        'author': 'Unknown',
        'architecture': 'amd64',
        'os': 'linux',
        'config': {},
    }


def test_other_keys_dropped_and_no_rootfs_without_layers():
    base = {
        'architecture': 'arm64',
        'os': 'windows',
        'os.version': '10.0.17763.1',
        'created': '2020-01-01T00:00:00Z',
        'author': 'someone',
        'container': 'abc',
        'docker_version': '19.03',
        'container_config': {'Cmd': ['sh']},
        'config': {'Cmd': ['sh'], 'Env': ['A=1']},
        'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + A]},
        'history': [{'created_by': 'base'}],
    }
    assert metadata.Override(base, metadata.Overrides(),
                             architecture='ppc64le',
                             operating_system='linux') == {
        'created': EPOCH,
        'author': 'Unknown',
        'architecture': 'ppc64le',
        'os': 'linux',
        'os.version': '10.0.17763.1',
        'config': {'Cmd': ['sh'], 'Env': ['A=1']},
    }


def test_layers_extend_rootfs_and_history_goes_in_front_reversed():
    base = {
        'config': {},
        'rootfs': {'type': 'whatever', 'diff_ids': ['sha256:' + A]},
        'history': [{'created_by': 'base', 'created': '2019'}],
    }
    out = metadata.Override(base, metadata.Overrides(
        layers=[B, EMPTY], created_by='bazel build ...', author='Bazel',
        creation_time='2021-02-03T04:05:06Z'))
    assert out == {
        'created': '2021-02-03T04:05:06Z',
        'author': 'Bazel',
        'architecture': 'amd64',
        'os': 'linux',
        'config': {},
        'rootfs': {'type': 'layers',
                   'diff_ids': ['sha256:' + A, 'sha256:' + B]},
        'history': [
            # EMPTY was inserted last, so it comes first.
            {'created': '2021-02-03T04:05:06Z', 'created_by': 'bazel build ...',
             'author': 'Bazel', 'empty_layer': True},
            {'created': '2021-02-03T04:05:06Z', 'created_by': 'bazel build ...',
             'author': 'Bazel'},
            {'created_by': 'base', 'created': '2019'},
        ],
    }


def test_layers_on_an_empty_base_use_defaults():
    out = metadata.Override({}, metadata.Overrides(layers=[A]))
    assert out['rootfs'] == {'type': 'layers', 'diff_ids': ['sha256:' + A]}
    assert out['history'] == [
        {'created': EPOCH, 'created_by': 'Unknown', 'author': 'Unknown'}]


def test_only_empty_layers_give_empty_diff_ids():
    out = metadata.Override({}, metadata.Overrides(layers=[EMPTY, EMPTY]))
    assert out['rootfs'] == {'type': 'layers', 'diff_ids': []}
    assert out['history'] == [
        {'created': EPOCH, 'created_by': 'Unknown', 'author': 'Unknown',
         'empty_layer': True}] * 2


def test_exact_serialization():
    base = {'config': {'Env': ['PATH=/bin']},
            'rootfs': {'type': 'layers', 'diff_ids': []}, 'history': []}
    out = metadata.Override(base, metadata.Overrides(
        layers=[A], env={'PATH': '$PATH:/opt'}, ports=['8080'],
        entrypoint=['/app'], author='Bazel', created_by='bazel build ...'))
    text = json.dumps(out, sort_keys=True)
    assert text == (
        '{"architecture": "amd64", "author": "Bazel", "config": '
        '{"Entrypoint": ["/app"], "Env": ["PATH=/bin:/opt"], '
        '"ExposedPorts": {"8080/tcp": {}}}, "created": '
        '"1970-01-01T00:00:00Z", "history": [{"author": "Bazel", '
        '"created": "1970-01-01T00:00:00Z", "created_by": '
        '"bazel build ..."}], "os": "linux", "rootfs": {"diff_ids": '
        '["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
        'aaaa"], "type": "layers"}}')
    assert hashlib.sha256(text.encode()).hexdigest() == hashlib.sha256(
        text.encode('ascii')).hexdigest()


def test_env_expansion():
    base = {'config': {'Env': ['PATH=/usr/bin', 'HOME=/root', 'BARE']}}
    out = metadata.Override(base, metadata.Overrides(env={
        'PATH': '$PATH:/opt/bin',
        'X': '${HOME}/x',
        'Y': '$NOPE-${NOPE}-$-${}-$$',
        'Z': '$X$X',
        'HOME': '/home/$HOME',
        'W': '$HOME',
    }))
    assert out['config']['Env'] == [
        'BARE',
        'HOME=/home//root',
        'PATH=/usr/bin:/opt/bin',
        # Later values see earlier ones.
        'W=/home//root',
        'X=/root/x',
        'Y=$NOPE-${NOPE}-$-${}-$$',
        'Z=/root/x/root/x',
    ]


def test_env_expansion_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv('ONLY_IN_PROCESS', 'leak')
    before = dict(os.environ)
    out = metadata.Override({}, metadata.Overrides(
        env={'A': '$ONLY_IN_PROCESS', 'B': '$A'}))
    assert out['config']['Env'] == ['A=$ONLY_IN_PROCESS',
                                    'B=$ONLY_IN_PROCESS']
    assert dict(os.environ) == before


def test_substituted_text_is_not_expanded_again():
    assert metadata.expand('$A', {'A': '$B', 'B': 'no'}) == '$B'
    assert metadata.expand('${A}b$A_', {'A': 'x', 'A_': 'y'}) == 'xby'
    assert metadata.expand('${A B}', {'A B': 'spaced'}) == 'spaced'
    assert metadata.expand('$é', {'é': 'x'}) == '$é'
    assert metadata.expand('plain', {}) == 'plain'


def test_config_fields():
    base = {'config': {
        'ExposedPorts': {'22/tcp': {}},
        'Volumes': {'/data': {}},
        'Labels': {'old': '1', 'keep': 'k'},
        'Entrypoint': ['/old'],
        'WorkingDir': '/old',
        'User': 'old',
    }}
    out = metadata.Override(base, metadata.Overrides(
        entrypoint=['/bin/app', '-v'], cmd=['--flag'], user='nobody',
        labels={'old': '2', 'new': 'n'}, ports=['80', '53/udp'],
        volumes=['/cache'], workdir='/srv'))
    assert out['config'] == {
        'ExposedPorts': {'22/tcp': {}, '80/tcp': {}, '53/udp': {}},
        'Volumes': {'/data': {}, '/cache': {}},
        'Labels': {'old': '2', 'keep': 'k', 'new': 'n'},
        'Entrypoint': ['/bin/app', '-v'],
        'Cmd': ['--flag'],
        'WorkingDir': '/srv',
        'User': 'nobody',
    }


def test_nulls_are_dropped_from_nested_dicts_only():
    base = {
        'os.version': None,
        'config': {'Cmd': None, 'Env': None, 'Labels': {'a': None, 'b': 'c'},
                   'Entrypoint': ['x', None]},
        'history': [{'created_by': 'h', 'comment': None}],
        'rootfs': {'diff_ids': ['sha256:' + A]},
    }
    out = metadata.Override(base, metadata.Overrides(
        env={'A': '1'}, layers=[B]))
    assert out['config'] == {'Env': ['A=1'], 'Labels': {'b': 'c'},
                             'Entrypoint': ['x', None]}
    assert 'os.version' not in out
    # Lists are copied as they are, None inside them included.
    assert out['history'][1] == {'created_by': 'h', 'comment': None}
    assert out['rootfs']['diff_ids'] == ['sha256:' + A, 'sha256:' + B]


def test_input_is_not_modified():
    base = {'config': {'Env': ['A=1'], 'Labels': {'x': 'y'},
                       'ExposedPorts': {}},
            'rootfs': {'diff_ids': ['sha256:' + A]},
            'history': [{'created_by': 'base'}]}
    saved = copy.deepcopy(base)
    metadata.Override(base, metadata.Overrides(
        layers=[B], env={'A': '2'}, labels={'z': 'w'}, ports=['1']))
    assert base == saved


def test_expand_agrees_with_expandvars(monkeypatch):
    import posixpath
    environment = {'A': '1', 'B_2': '$A', 'LONG': 'x' * 10, '': 'empty'}
    samples = ['$A', '${A}', '$A$B_2', '${B_2}x', '$', '$$A', '${', '${A',
               '$A}', '${}', '$-A', 'a$Ab', '$LONG$LONGER', '${LONG}ER',
               '$9', '${A}${UNSET}$A', 'x${A}}', '$ A', '$A\n$A']
    monkeypatch.setattr(os, 'environ', environment)
    for sample in samples:
        assert metadata.expand(sample, environment) == posixpath.expandvars(
            sample), sample
