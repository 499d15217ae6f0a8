"""Derives a v1 image layer's metadata (its `json`) from its parent's.

Kept for callers of upstream's v1 rules: the output equals upstream's key
for key, so ids and digests derived from it do not change.
"""
import collections
from typing import Any, Dict, Mapping

from containerregistry.transform import config_util

_OverridesT = collections.namedtuple('OverridesT', [  # type: ignore[name-match]
    'name', 'parent', 'size', 'entrypoint', 'cmd', 'env', 'labels', 'ports',
    'volumes', 'workdir', 'user'
])


class Overrides(_OverridesT):
    """What a layer changes in the image's metadata.

    The constructor's keyword order differs from the field order, as
    upstream's did; positional callers depend on it.
    """

    def __new__(cls, name=None, parent=None, size=None, entrypoint=None,
                cmd=None, user=None, labels=None, env=None, ports=None,
                volumes=None, workdir=None):
        return super().__new__(cls, name=name, parent=parent, size=size,
                               entrypoint=entrypoint, cmd=cmd, user=user,
                               labels=labels, env=env, ports=ports,
                               volumes=volumes, workdir=workdir)


def Override(data: Mapping[str, Any], options: Overrides,
             docker_version: str = '1.5.0', architecture: str = 'amd64',
             operating_system: str = 'linux') -> Dict[str, Any]:
    """A copy of the parent layer's DATA with OPTIONS applied.

    Raises ValueError when `options.name` is missing, or when DATA is not
    empty although no parent is named.
    """
    output = config_util.deep_copy_skip_null(dict(data))
    if not options.name:
        raise ValueError('Missing required option: name')
    output['id'] = options.name

    if options.parent:
        output['parent'] = options.parent
    elif data:
        raise ValueError('Expected empty input object when parent is '
                         'omitted, got: %s' % (data,))

    if options.size:
        output['Size'] = options.size
    else:
        output.pop('Size', None)

    config = output.setdefault('config', {})
    if options.entrypoint:
        config['Entrypoint'] = options.entrypoint
    if options.cmd:
        config['Cmd'] = options.cmd
    if options.user:
        config['User'] = options.user

    output['docker_version'] = docker_version
    output['architecture'] = architecture
    output['os'] = operating_system

    if options.env:
        environment = config_util.env_to_dict(config.get('Env', []))
        for key, value in options.env.items():
            environment[key] = config_util.expand(value, environment)
        config['Env'] = config_util.dict_to_env(environment)

    if options.labels:
        labels = config_util.env_to_dict(config.get('Label', []))
        labels.update(options.labels)
        config['Label'] = config_util.dict_to_env(labels)

    if options.ports:
        exposed = config.setdefault('ExposedPorts', {})
        for port in options.ports:
            exposed[port if '/' in port else port + '/tcp'] = {}

    if options.volumes:
        volumes = config.setdefault('Volumes', {})
        for volume in options.volumes:
            volumes[volume] = {}

    if options.workdir:
        config['WorkingDir'] = options.workdir

    # container_config describes the container that built the parent
    # layer; it must not carry over to this one.
    output.pop('container_config', None)
    return output
