"""digester.par: the digest pusher.par would publish, computed offline.

rules_docker (container_image, container_push) records this digest and
compares it with what registries serve, so it is computed from the very
same image the pusher builds from the same flags: `sha256:<hex>` of the
synthesized manifest (the OCI one with `--oci`), written with no newline.
Layers are not read, only their sizes and digest files. With `--oci-layout`
it is the digest `index.json` names for the image, which the pusher
publishes unchanged.
"""
import logging

from containerregistry.tools import cli
from containerregistry.tools import errors
from containerregistry.tools import logging_setup
from containerregistry.tools import oci_layout_args

USAGE = """digester.par [-h] [--tarball TARBALL] --output-digest OUTPUT_DIGEST
                    [--config CONFIG] [--manifest MANIFEST] [--digest DIGEST]
                    [--layer LAYER] [--oci]
                    [--stderrthreshold STDERRTHRESHOLD]
                    [--oci-layout DIR] [--oci-ref NAME]
                    [--log-file LOG_FILE] [--timeout SECONDS]"""

parser = cli.new_parser(
    prog='digester.par',
    description='Calculate digest for a container image.',
    usage=USAGE)

parser.add_argument(
    '--tarball', action='store',
    help='An optional legacy base image tarball.')

parser.add_argument(
    '--output-digest', required=True, action='store',
    help='Filename to store digest in.')

parser.add_argument(
    '--config', action='store',
    help='The path to the file storing the image config.')

parser.add_argument(
    '--manifest', action='store',
    help='The path to the file storing the image manifest.')

parser.add_argument(
    '--digest', action='append',
    help='The list of layer digest filenames in order.')

parser.add_argument(
    '--layer', action='append',
    help='The list of layer filenames in order.')

parser.add_argument(
    '--oci', action='store_true',
    help='Image has an OCI Manifest.')

logging_setup.DefineCommandLineArgs(parser)

oci_layout_args.add_arguments(parser)

logging_setup.DefineLogFileArg(parser)

cli.add_timeout_flag(parser)


def write_atomically(path: str, text: str) -> None:
    """Writes TEXT to PATH so that readers see the old file or the complete
    new one, never a partial one (see `client.v2_2.outputs.Outputs`, also for
    devices, FIFOs and symlinks)."""
    from containerregistry.client.v2_2 import outputs as output_files
    with output_files.Outputs() as outputs:
        with outputs.open(path) as f:
            f.write(text.encode('utf8'))
        outputs.commit()


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)
    cli.start_deadline(args)

    # Imported here so that --help and argument errors stay quick.
    from containerregistry.client.v2_2 import outputs as output_files
    from containerregistry.client.v2_2 import oci_compat
    from containerregistry.tools import fast_pusher

    message = fast_pusher.flag_error(args)
    if message:
        cli.fatal(message)
    if not args.output_digest:
        cli.fatal('--output-digest is empty; it must name a file.')

    try:
        output_files.Outputs.check(args.output_digest)
        with fast_pusher.open_image(args) as image:
            if args.oci:
                digest = oci_compat.OCIFromV22(image).digest()
            else:
                digest = image.digest()
        write_atomically(args.output_digest, digest)
    except Exception as e:  # pylint: disable=broad-except
        logging.debug('Computing the digest failed', exc_info=True)
        cli.fatal('Error getting digest: %s',
                  errors.describe(e, output=args.output_digest))


if __name__ == '__main__':
    cli.run(main)
