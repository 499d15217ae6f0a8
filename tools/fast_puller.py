"""puller.par: pulls an image from a registry into the fast on-disk layout.

A manifest list or OCI index is resolved to the child for the platform
flags, or, with `--format oci --all-platforms`, written whole with every
image it names, bytes as served. Layers download in parallel, stream to
disk and are checked against their digests; `--cache` shares verified
layers between pulls.
"""
import argparse
import logging
from typing import Optional

from containerregistry.tools import cli
from containerregistry.tools import errors
from containerregistry.tools import logging_setup
from containerregistry.tools import platform_args

USAGE = """puller.par [-h] --name NAME --directory DIRECTORY [--os OS]
                   [--os-version OS_VERSION]
                   [--os-features [OS_FEATURES [OS_FEATURES ...]]]
                   [--architecture ARCHITECTURE] [--variant VARIANT]
                   [--features [FEATURES [FEATURES ...]]]
                   [--client-config-dir CLIENT_CONFIG_DIR]
                   [--stderrthreshold STDERRTHRESHOLD]
                   [--cache CACHE] [--format {fast,oci}]
                   [--all-platforms] [--include-attestations]
                   [--log-file LOG_FILE]
                   [--insecure-registry HOST[:PORT]] [--timeout SECONDS]"""


def add_name_flag(target: argparse.ArgumentParser) -> None:
    """Adds `--name`, the image to pull (docker_puller.par takes it too)."""
    target.add_argument(
        '--name', action='store', required=True,
        help=('The name of the docker image to pull and save. '
              'Supports fully-qualified tag or digest references.'))


parser = cli.new_parser(
    prog='puller.par',
    description='Pull images from a Docker Registry, faaaaast.',
    usage=USAGE)

add_name_flag(parser)

parser.add_argument(
    '--directory', action='store', required=True,
    help="Where to save the image's files.")

platform_args.AddArguments(parser)

parser.add_argument(
    '--client-config-dir', action='store',
    help=('The path to the directory where the client configuration files '
          'are located. Overiddes the value from DOCKER_CONFIG'))

logging_setup.DefineCommandLineArgs(parser)

parser.add_argument(
    '--cache', action='store',
    help=('A directory of layers kept by digest and shared between pulls: '
          'layers found there are not downloaded again.'))

parser.add_argument(
    '--format', action='store', choices=['fast', 'oci'], default='fast',
    help=('The layout to write: "fast" (the default; config.json, digest, '
          'manifest.json and numbered layers, as rules_docker reads them) or '
          '"oci" (an OCI image layout, for skopeo, umoci and other OCI '
          'tools).'))

parser.add_argument(
    '--all-platforms', action='store_true',
    help=('With --format oci: write a manifest list or index whole, with '
          'every image it names, bytes and digests as served, instead of '
          'the image for one platform.'))

parser.add_argument(
    '--include-attestations', action='store_true',
    help=('With --all-platforms: also write the attestation manifests '
          '(provenance, SBOMs) the list names, which are left out '
          'otherwise.'))

logging_setup.DefineLogFileArg(parser)

cli.add_insecure_registry_flag(parser)

cli.add_timeout_flag(parser)

_THREADS = 8


def _flag_error(args) -> Optional[str]:
    """The one-line error for --all-platforms and --include-attestations
    given where they cannot apply."""
    if args.include_attestations and not args.all_platforms:
        return '--include-attestations requires --all-platforms.'
    if not args.all_platforms:
        return None
    if args.format != 'oci':
        return ('--all-platforms requires --format oci: the fast layout '
                'holds one image.')
    given = platform_args.given(args)
    if given:
        return ('--all-platforms writes every platform; it cannot be '
                'combined with %s.' % ', '.join(given))
    return None


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)
    cli.start_deadline(args)
    message = _flag_error(args)
    if message:
        cli.fatal(message)

    # Imported here so that --help and argument errors stay quick.
    from containerregistry.client import docker_name
    from containerregistry.tools import registry_access

    try:
        name = registry_access.parse_reference(args.name)
    except docker_name.BadNameException as e:
        cli.fatal('Error pulling and saving image %s: %s', args.name, e)
    creds, = registry_access.credentials([name], args.client_config_dir)

    transport = registry_access.transport(args, _THREADS)
    platform = platform_args.FromArgs(args)
    with cli.removed_on_failure(args.directory):
        _pull(args, name, creds, transport, platform)


def _pull(args, name, creds, transport, platform) -> None:
    from containerregistry.client.v2_2 import docker_image_list
    from containerregistry.client.v2_2 import save
    from containerregistry.tools import progress_line
    try:
        logging.info('Pulling %s', name)
        if args.all_platforms:
            with docker_image_list.open_whole(name, creds, transport) as whole, \
                    progress_line.on_stderr('Pulling', 'Pulled') as reporter:
                save.oci_layout_whole(
                    whole, args.directory, threads=_THREADS,
                    cache_directory=args.cache,
                    ref_name=getattr(name, 'tag', None),
                    include_attestations=args.include_attestations,
                    reporter=reporter)
            logging.info('Pulled %s into %s', name, args.directory)
            return
        with docker_image_list.open_image(name, creds, transport,
                                          platform) as image, \
                progress_line.on_stderr('Pulling', 'Pulled') as reporter:
            if args.format == 'oci':
                save.oci_layout(
                    image, args.directory, threads=_THREADS,
                    cache_directory=args.cache,
                    ref_name=getattr(name, 'tag', None), reporter=reporter)
            else:
                save.fast(image, args.directory, threads=_THREADS,
                          cache_directory=args.cache, reporter=reporter)
        logging.info('Pulled %s into %s', name, args.directory)
    except Exception as e:  # pylint: disable=broad-except
        logging.debug('Pull failed', exc_info=True)
        cli.fatal('Error pulling and saving image %s: %s', name,
                  errors.describe(e, output=args.directory))


if __name__ == '__main__':
    cli.run(main)
