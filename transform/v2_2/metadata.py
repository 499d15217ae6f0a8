"""Derives a v2.2 image config from a base config and a set of overrides.

This is what rules_docker's `create_image_config` builds every image config
with, so the output must equal upstream's key for key: the digests of the
images people build depend on it. Two upstream quirks are kept on purpose:
new history entries are inserted at the front (in reverse order), and
`rootfs`/`history` are only written when layers are given.
"""
import collections
import hashlib
from typing import Any, Dict, List, Mapping, Optional

from containerregistry.transform import config_util

# Kept under its old name for callers of this module.
expand = config_util.expand

_OverridesT = collections.namedtuple('OverridesT', [  # type: ignore[name-match]
    'layers', 'entrypoint', 'cmd', 'env', 'labels', 'ports', 'volumes',
    'workdir', 'user', 'author', 'created_by', 'creation_time'
])

# Unix epoch 0, representable in 32 bits.
_DEFAULT_TIMESTAMP = '1970-01-01T00:00:00Z'

# A layer given as the sha256 of empty input stands for "no filesystem
# change": it gets a history entry but no diff_id.
_EMPTY_LAYER = hashlib.sha256(b'').hexdigest()


class Overrides(_OverridesT):
    """The image settings to lay over a base config.

    The tuple's field order and the constructor's keyword order differ, as
    upstream's did; positional callers rely on the constructor's.
    """

    def __new__(cls,
                layers: Optional[List[str]] = None,
                entrypoint: Optional[List[str]] = None,
                cmd: Optional[List[str]] = None,
                user: Optional[str] = None,
                labels: Optional[Mapping[str, str]] = None,
                env: Optional[Mapping[str, str]] = None,
                ports: Optional[List[str]] = None,
                volumes: Optional[List[str]] = None,
                workdir: Optional[str] = None,
                author: Optional[str] = None,
                created_by: Optional[str] = None,
                creation_time: Optional[str] = None) -> 'Overrides':
        return super().__new__(
            cls,
            layers=layers,
            entrypoint=entrypoint,
            cmd=cmd,
            user=user,
            labels=labels,
            env=env,
            ports=ports,
            volumes=volumes,
            workdir=workdir,
            author=author,
            created_by=created_by,
            creation_time=creation_time)

    def Override(self,
                 layers: Optional[List[str]] = None,
                 entrypoint: Optional[List[str]] = None,
                 cmd: Optional[List[str]] = None,
                 user: Optional[str] = None,
                 labels: Optional[Mapping[str, str]] = None,
                 env: Optional[Mapping[str, str]] = None,
                 ports: Optional[List[str]] = None,
                 volumes: Optional[List[str]] = None,
                 workdir: Optional[str] = None,
                 author: Optional[str] = None,
                 created_by: Optional[str] = None,
                 creation_time: Optional[str] = None) -> 'Overrides':
        """A copy where each given (truthy) value replaces the current one.

        Empty values keep the current one, so nothing can be cleared.
        """
        return Overrides(
            layers=layers or self.layers,
            entrypoint=entrypoint or self.entrypoint,
            cmd=cmd or self.cmd,
            user=user or self.user,
            labels=labels or self.labels,
            env=env or self.env,
            ports=ports or self.ports,
            volumes=volumes or self.volumes,
            workdir=workdir or self.workdir,
            author=author or self.author,
            created_by=created_by or self.created_by,
            creation_time=creation_time or self.creation_time)


def Override(data: Mapping[str, Any], options: Overrides,
             architecture: str = 'amd64',
             operating_system: str = 'linux') -> Dict[str, Any]:
    """A new image config: DATA's settings with OPTIONS laid over them.

    Args:
      data: the base image's config (a parsed config JSON), or {}.
      options: the Overrides to apply; `layers` are bare hex diff_ids,
        bottom first.
      architecture: written to `architecture` whatever DATA says.
      operating_system: written to `os` whatever DATA says.

    Returns:
      The config as a dict. Only `created`, `author`, `architecture`, `os`,
      `os.version`, `config` and (with layers) `rootfs` and `history` are
      kept from or added to DATA; other top-level keys are dropped.
    """
    defaults = config_util.deep_copy_skip_null(data)

    output: Dict[str, Any] = {}
    output['created'] = options.creation_time or _DEFAULT_TIMESTAMP
    output['author'] = options.author or 'Unknown'
    output['architecture'] = architecture
    output['os'] = operating_system
    if 'os.version' in defaults:
        output['os.version'] = defaults['os.version']

    config = defaults.get('config', {})
    output['config'] = config

    if options.entrypoint:
        config['Entrypoint'] = options.entrypoint
    if options.cmd:
        config['Cmd'] = options.cmd
    if options.user:
        config['User'] = options.user

    if options.env:
        environment = config_util.env_to_dict(config.get('Env', []))
        # Later values see earlier ones: {'A': 'x', 'B': '$A'} gives B=x.
        for key, value in options.env.items():
            environment[key] = config_util.expand(str(value), environment)
        config['Env'] = config_util.dict_to_env(environment)

    if options.labels:
        labels = config.get('Labels', {})
        for key, value in options.labels.items():
            labels[key] = value
        config['Labels'] = labels

    if options.ports:
        exposed = config.setdefault('ExposedPorts', {})
        for port in options.ports:
            port = str(port)
            # "80/tcp" and "53/udp" name their protocol; a bare port is tcp.
            exposed[port if '/' in port else port + '/tcp'] = {}

    if options.volumes:
        volumes = config.setdefault('Volumes', {})
        for volume in options.volumes:
            volumes[volume] = {}

    if options.workdir:
        config['WorkingDir'] = options.workdir

    if options.layers:
        # diff_ids run from the bottom-most layer to the top-most.
        diff_ids = defaults.get('rootfs', {}).get('diff_ids', [])
        diff_ids += ['sha256:%s' % layer for layer in options.layers
                     if layer != _EMPTY_LAYER]
        output['rootfs'] = {
            'type': 'layers',
            'diff_ids': diff_ids,
        }
        # Upstream inserts each entry at the front (so several new layers
        # land there in reverse); image digests depend on this order.
        history = defaults.get('history', [])
        for layer in options.layers:
            entry = {
                'created': options.creation_time or _DEFAULT_TIMESTAMP,
                'created_by': options.created_by or 'Unknown',
                'author': options.author or 'Unknown',
            }
            if layer == _EMPTY_LAYER:
                entry['empty_layer'] = True
            history.insert(0, entry)
        output['history'] = history

    return output
