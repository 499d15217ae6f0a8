"""appender.par: appends a tarball as a new layer to an image in a registry.

Only the base's manifest and config are fetched (a manifest list resolves
to linux/amd64). The tarball streams from disk; base layers are neither
downloaded nor uploaded again: the push skips the blobs the destination
already has and mounts the others from the source repository when both
are in the same registry. Only across registries are base layers copied,
streaming from the source.
"""
import logging
import os

from containerregistry.tools import cli
from containerregistry.tools import errors
from containerregistry.tools import logging_setup

USAGE = """appender.par [-h] --src-image SRC_IMAGE --tarball TARBALL --dst-image
                    DST_IMAGE [--stderrthreshold STDERRTHRESHOLD]
                    [--client-config-dir CLIENT_CONFIG_DIR]
                    [--log-file LOG_FILE]
                    [--insecure-registry HOST[:PORT]] [--timeout SECONDS]"""

parser = cli.new_parser(
    prog='appender.par',
    description='Append tarballs to an image in a Docker Registry.',
    usage=USAGE)

parser.add_argument(
    '--src-image', action='store', required=True,
    help='The name of the docker image to append to.')

parser.add_argument(
    '--tarball', action='store', required=True,
    help='The tarball to append.')

parser.add_argument(
    '--dst-image', action='store', required=True,
    help='The name of the new image.')

logging_setup.DefineCommandLineArgs(parser)

parser.add_argument(
    '--client-config-dir', action='store',
    help=('The path to the directory where the client configuration files '
          'are located. Overiddes the value from DOCKER_CONFIG'))

logging_setup.DefineLogFileArg(parser)

cli.add_insecure_registry_flag(parser)

cli.add_timeout_flag(parser)

_THREADS = 8


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)
    cli.start_deadline(args)

    # Imported here so that --help and argument errors stay quick.
    from containerregistry.client import docker_name
    from containerregistry.client.v2_2 import append
    from containerregistry.client.v2_2 import docker_image_list
    from containerregistry.client.v2_2 import docker_session
    from containerregistry.tools import progress_line
    from containerregistry.tools import registry_access

    try:
        src = registry_access.parse_reference(args.src_image)
    except docker_name.BadNameException as e:
        cli.fatal('Error appending to %s: %s', args.src_image, e)
    try:
        dst = docker_name.Tag(args.dst_image)
    except docker_name.BadNameException as e:
        cli.fatal('Error publishing %s: %s', args.dst_image, e)

    if not os.path.isfile(args.tarball) or not os.access(args.tarball,
                                                         os.R_OK):
        reason = ('does not exist' if not os.path.exists(args.tarball)
                  else 'is not a readable file')
        cli.fatal('Error appending to %s: tarball %s %s', src, args.tarball,
                  reason)

    src_creds, dst_creds = registry_access.credentials(
        [src, dst], args.client_config_dir)

    transport = registry_access.transport(args, _THREADS)
    try:
        logging.info('Reading %s ...', src)
        with docker_image_list.open_image(src, src_creds, transport) as base:
            try:
                image = append.Layer(base, args.tarball)
            except Exception as e:  # pylint: disable=broad-except
                logging.debug('Appending failed', exc_info=True)
                cli.fatal('Error appending to %s: %s', src, errors.describe(e))
            with image:
                try:
                    logging.info('Starting upload of %s ...', dst)
                    # Not a context manager: its exit would log a second
                    # error line for a failure reported below.
                    with progress_line.on_stderr('Pushing',
                                                 'Pushed') as reporter:
                        session = docker_session.Push(
                            dst, dst_creds, transport, threads=_THREADS,
                            mount=[src.as_repository()], reporter=reporter)
                        session.upload(image)
                    digest = image.digest()
                except Exception as e:  # pylint: disable=broad-except
                    logging.debug('Push failed', exc_info=True)
                    cli.fatal('Error publishing %s: %s', dst, errors.describe(e))
    except Exception as e:  # pylint: disable=broad-except
        logging.debug('Reading the base failed', exc_info=True)
        cli.fatal('Error appending to %s: %s', src, errors.describe(e))
    cli.say('{name} was published with digest: {digest}'.format(
        name=dst, digest=digest))


if __name__ == '__main__':
    cli.run(main)
