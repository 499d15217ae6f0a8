"""docker_puller: pulls an image from a registry into a docker-save tarball.

The image is read as the puller reads it (a list or index resolved to the
platform flags' child, a schema 1 image converted) and written with
`tarball_writer`, tagged as named; a digest reference is tagged
`<repository>:i-was-a-digest`, as upstream, so the tarball still says where
the image came from. The tarball appears complete, or not at all.
"""
import logging
from typing import BinaryIO, cast

from containerregistry.tools import cli
from containerregistry.tools import errors
from containerregistry.tools import fast_puller
from containerregistry.tools import logging_setup
from containerregistry.tools import platform_args

USAGE = """docker_puller.par [-h] --name NAME --tarball TARBALL [--os OS]
                         [--os-version OS_VERSION]
                         [--os-features [OS_FEATURES [OS_FEATURES ...]]]
                         [--architecture ARCHITECTURE] [--variant VARIANT]
                         [--features [FEATURES [FEATURES ...]]]
                         [--stderrthreshold STDERRTHRESHOLD]
                         [--insecure-registry HOST[:PORT]]"""

parser = cli.new_parser(
    prog='docker_puller.par',
    description='Pull images from a Docker Registry.',
    usage=USAGE)

fast_puller.add_name_flag(parser)

parser.add_argument(
    '--tarball', action='store', required=True,
    help='Where to save the image tarball.')

platform_args.AddArguments(parser)

logging_setup.DefineCommandLineArgs(parser)

cli.add_insecure_registry_flag(parser)

_THREADS = 8
_DEFAULT_TAG = 'i-was-a-digest'


def tarball_tag(name):
    """The tag NAME gets in the tarball: NAME itself, or for a digest
    reference its repository with the tag `i-was-a-digest`."""
    from containerregistry.client import docker_name
    if isinstance(name, docker_name.Tag):
        return name
    return docker_name.Tag('%s:%s' % (name.as_repository(), _DEFAULT_TAG))


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)
    # Upstream's flags only: the deadline comes from the environment.
    cli.start_deadline(args)

    # Imported here so that --help and argument errors stay quick.
    from containerregistry.client import docker_name
    from containerregistry.tools import registry_access

    try:
        name = registry_access.parse_reference(args.name)
    except docker_name.BadNameException as e:
        cli.fatal('Error pulling and saving image %s: %s', args.name, e)
    creds, = registry_access.credentials([name], None)
    transport = registry_access.transport(args, _THREADS)
    _pull(args, name, creds, transport, platform_args.FromArgs(args))


def _pull(args, name, creds, transport, platform) -> None:
    import tarfile
    from containerregistry.client.v2_2 import docker_image_list
    from containerregistry.client.v2_2 import outputs as output_files
    from containerregistry.client.v2_2 import tarball_writer

    outputs = output_files.Outputs()
    try:
        outputs.check(args.tarball)
        logging.info('Pulling %s', name)
        with docker_image_list.open_image(name, creds, transport,
                                          platform) as image:
            with outputs.open(args.tarball) as f:
                # tarfile only writes to it, and asks tell().
                with tarfile.open(fileobj=cast(BinaryIO, f), mode='w') as tar:
                    tarball_writer.tarball(tarball_tag(name), image, tar)
        outputs.commit()
        logging.info('Pulled %s into %s', name, args.tarball)
    except Exception as e:  # pylint: disable=broad-except
        outputs.discard()
        logging.debug('Pull failed', exc_info=True)
        cli.fatal('Error pulling and saving image %s: %s', name,
                  errors.describe(e))
    finally:
        outputs.discard()


if __name__ == '__main__':
    cli.run(main)
