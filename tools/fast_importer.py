"""importer.par: rewrites a docker-save tarball into the fast on-disk layout.

rules_docker's container_load runs it with `--format tar` and reads back
`config.json` and the `NNN.tar` layers. Every layer is still gzipped once,
since `digest` and `manifest.json` name the compressed blobs; that work
runs on several layers at once. Gzipped layers are never recompressed, and
each layer's tar is checked against the config's diff_id before any layer
is put in place. Temporary files live in a hidden directory inside the
output directory, so that with `--format tar` the tars inflated for that
check become the output by a hard link, not by a second inflate.
"""
import logging
import os

from containerregistry.tools import cli
from containerregistry.tools import errors
from containerregistry.tools import logging_setup

USAGE = """importer.par [-h] --tarball TARBALL [--format {tar,tar.gz}] --directory
                    DIRECTORY [--stderrthreshold STDERRTHRESHOLD]
                    [--log-file LOG_FILE]"""

parser = cli.new_parser(
    prog='importer.par',
    description='Import images from a tarball into our faaaaaast format.',
    usage=USAGE)

parser.add_argument(
    '--tarball', action='store', required=True,
    help=('The tarball containing the docker image to rewrite into our fast '
          'on-disk format.'))

parser.add_argument(
    '--format', action='store', default='tar', choices=['tar', 'tar.gz'],
    help='The form in which to save layers.')

parser.add_argument(
    '--directory', action='store', required=True,
    help="Where to save the image's files.")

logging_setup.DefineCommandLineArgs(parser)

logging_setup.DefineLogFileArg(parser)

_THREADS = 32


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)
    with cli.removed_on_failure(args.directory):
        _import(args)


def _import(args) -> None:
    # Imported here so that --help and argument errors stay quick.
    from containerregistry.client.v2_2 import save
    from containerregistry.client.v2_2 import tarball_image

    try:
        # A directory holding `digest` is a finished import; this one is
        # not finished until save writes it again.
        try:
            os.unlink(os.path.join(args.directory, 'digest'))
        except (FileNotFoundError, NotADirectoryError):
            pass
        os.makedirs(args.directory, exist_ok=True)
        for name in tarball_image.remove_stale_temp_dirs(args.directory):
            logging.info('Removed %s, left by an import that was killed',
                         os.path.join(args.directory, name))
        with tarball_image.FromTarball(
                args.tarball, threads=_THREADS, temp_dir=args.directory,
                keep_tars=args.format == 'tar') as image:
            # Compress and check every layer before any is put in place.
            image.manifest()
            logging.info('Importing %s (%s) into %s', args.tarball,
                         image.digest(), args.directory)
            if args.format == 'tar.gz':
                save.fast(image, args.directory, threads=_THREADS)
            else:
                save.uncompressed(image, args.directory, threads=_THREADS)
    except Exception as e:  # pylint: disable=broad-except
        logging.debug('Import failed', exc_info=True)
        cli.fatal('Error importing %s: %s', args.tarball,
                  errors.describe(e, output=args.directory))


if __name__ == '__main__':
    cli.run(main)
