"""transform.v1.metadata: a v1 layer's json from its parent's."""
import pytest

from containerregistry.transform.v1 import metadata


def test_base_layer():
    out = metadata.Override({}, metadata.Overrides(
        name='abc', size=12, entrypoint=['/bin/sh'], cmd=['-c', 'true'],
        user='nobody', env={'PATH': '/bin'}, labels={'b': '2', 'a': '1'},
        ports=['80', '53/udp'], volumes=['/data'], workdir='/w'))
    assert out == {
        'id': 'abc',
        'Size': 12,
        'config': {
            'Entrypoint': ['/bin/sh'],
            'Cmd': ['-c', 'true'],
            'User': 'nobody',
            'Env': ['PATH=/bin'],
            'Label': ['a=1', 'b=2'],
            'ExposedPorts': {'80/tcp': {}, '53/udp': {}},
            'Volumes': {'/data': {}},
            'WorkingDir': '/w',
        },
        'docker_version': '1.5.0',
        'architecture': 'amd64',
        'os': 'linux',
    }


def test_child_layer_inherits_and_expands():
    parent = {
        'id': 'p', 'Size': 3, 'container_config': {'Cmd': ['x']},
        'comment': None,
        'config': {'Env': ['PATH=/bin', 'HOME=/root'], 'Label': ['a=1'],
                   'Cmd': ['old']},
    }
    out = metadata.Override(parent, metadata.Overrides(
        name='c', parent='p', env={'PATH': '$PATH:/usr/bin', 'X': '${HOME}/x'},
        labels={'a': '2'}), docker_version='1.9', architecture='arm64',
        operating_system='windows')
    assert out == {
        'id': 'c', 'parent': 'p',
        'config': {'Env': ['HOME=/root', 'PATH=/bin:/usr/bin', 'X=/root/x'],
                   'Label': ['a=2'], 'Cmd': ['old']},
        'docker_version': '1.9', 'architecture': 'arm64', 'os': 'windows',
    }
    # The parent is not changed.
    assert parent['Size'] == 3 and 'container_config' in parent


def test_name_is_required():
    with pytest.raises(ValueError, match='Missing required option: name'):
        metadata.Override({}, metadata.Overrides())


def test_data_without_parent_is_refused():
    with pytest.raises(ValueError, match='Expected empty input object'):
        metadata.Override({'id': 'x'}, metadata.Overrides(name='y'))


def test_constructor_keyword_order_is_upstreams():
    o = metadata.Overrides('n', 'p', 1, ['e'], ['c'], 'u')
    assert (o.name, o.parent, o.size, o.entrypoint, o.cmd, o.user) == (
        'n', 'p', 1, ['e'], ['c'], 'u')
