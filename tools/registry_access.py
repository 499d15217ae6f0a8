"""Image names, credentials and the transport, as the registry tools take
them from flags."""
import argparse
from typing import TYPE_CHECKING, Optional, Sequence, Union

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.tools import cli
from containerregistry.tools import errors

if TYPE_CHECKING:
    from containerregistry.transport import pooled_http


def parse_reference(text: str) -> Union[docker_name.Tag, docker_name.Digest]:
    """A strict digest reference if TEXT has an `@`, else a strict tag.

    Raises docker_name.BadNameException.
    """
    if '@' in text:
        return docker_name.Digest(text)
    return docker_name.Tag(text)


def credentials(names: Sequence[docker_name.Registry],
                config_dir: Optional[str]) -> Sequence[docker_creds.Provider]:
    """The credentials for each of NAMES, or a fatal one-line error.

    CONFIG_DIR (`--client-config-dir`) overrides $DOCKER_CONFIG.
    """
    try:
        if config_dir is not None:
            docker_creds.DefaultKeychain.setCustomConfigDir(config_dir)
    except Exception as e:  # pylint: disable=broad-except
        cli.fatal('Error resolving credentials for %s: %s', names[0],
                  errors.describe(e))
    found = []
    for name in names:
        try:
            found.append(docker_creds.DefaultKeychain.Resolve(name))
        except Exception as e:  # pylint: disable=broad-except
            cli.fatal('Error resolving credentials for %s: %s', name,
                      errors.describe(e))
    return found


def transport(args: argparse.Namespace,
              maxsize: int) -> 'pooled_http.Http':
    """The tool's `pooled_http.Http`, MAXSIZE connections per host, knowing
    the insecure registries of `--insecure-registry` and the environment; a
    malformed name in $CONTAINERREGISTRY_INSECURE_REGISTRIES is a fatal
    one-line error."""
    from containerregistry.transport import pooled_http
    try:
        return pooled_http.Http(
            maxsize=maxsize,
            insecure_registries=getattr(args, 'insecure_registry', None))
    except ValueError as e:
        cli.fatal('%s', e)
