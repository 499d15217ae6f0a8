"""flatten.par: writes an image's merged filesystem as one tar.

rules_docker's container_flatten runs it on the fast layout (and an
optional legacy base tarball) and reads back `--filesystem` (the tar) and
`--metadata` (the image config, verbatim). Whiteouts, opaque directories
and hardlinks are resolved as a container runtime resolves them (see
`client.v2_2.flatten`). Outputs are written under temporary names and
renamed once both are complete; a failed run leaves neither behind (see
`client.v2_2.outputs.Outputs`, also for devices, FIFOs and symlinks).
"""
import contextlib
import logging
import os
from typing import List, Optional

from containerregistry.tools import cli
from containerregistry.tools import errors
from containerregistry.tools import logging_setup
from containerregistry.tools import oci_layout_args

USAGE = """flatten.par [-h] [--tarball TARBALL] [--config CONFIG]
                   [--digest DIGEST] [--layer LAYER]
                   [--uncompressed_layer UNCOMPRESSED_LAYER]
                   [--diff_id DIFF_ID] [--filesystem FILESYSTEM]
                   [--metadata METADATA] [--stderrthreshold STDERRTHRESHOLD]
                   [--fetch-foreign-layers]
                   [--oci-layout DIR] [--oci-ref NAME]
                   [--log-file LOG_FILE]"""

parser = cli.new_parser(
    prog='flatten.par',
    description='Flatten container images.',
    usage=USAGE)

parser.add_argument(
    '--tarball', action='store',
    help='An optional legacy base image tarball.')

parser.add_argument(
    '--config', action='store',
    help='The path to the file storing the image config.')

parser.add_argument(
    '--digest', action='append',
    help='The list of layer digest filenames in order.')

parser.add_argument(
    '--layer', action='append',
    help='The list of compressed layer filenames in order.')

parser.add_argument(
    '--uncompressed_layer', action='append',
    help='The list of uncompressed layer filenames in order.')

parser.add_argument(
    '--diff_id', action='append',
    help='The list of diff_ids in order.')

parser.add_argument(
    '--filesystem', action='store',
    help='The name of where to write the filesystem tarball.')

parser.add_argument(
    '--metadata', action='store',
    help='The name of where to write the container startup metadata.')

logging_setup.DefineCommandLineArgs(parser)

parser.add_argument(
    '--fetch-foreign-layers', action='store_true',
    help=('Fetch foreign layers (Windows base layers) that the inputs hold '
          'only a placeholder for from the URLs their descriptors list '
          '(no credentials are sent; the bytes must match the digest).'))

oci_layout_args.add_arguments(parser)

logging_setup.DefineLogFileArg(parser)

_ERROR = 'Error flattening image: %s'
# What an OCI layout replaces.
_LAYOUT_EXCLUDES = ('--tarball', '--config', '--digest', '--layer',
                    '--uncompressed_layer', '--diff_id')


def _pairs(what: str, names: Optional[List[str]], other: str,
           contents: Optional[List[str]]) -> List[tuple]:
    names, contents = names or [], contents or []
    if len(names) != len(contents):
        cli.fatal(_ERROR, 'got %d --%s and %d --%s flags; they pair up in '
                  'order' % (len(names), what, len(contents), other))
    return list(zip(names, contents))


def _check_layer_count(image, given: int) -> None:
    """Layers pair with the config's diff_ids by position; counts must agree."""
    from containerregistry.client.v2_2 import disk_image
    try:
        listed = len(image.diff_ids())
    except ValueError as e:
        raise disk_image.DiskImageError(
            'the config is not valid JSON (%s)' % e) from e
    if listed != given:
        raise disk_image.DiskImageError(
            'the config lists %d layers (rootfs.diff_ids) but %d were given'
            % (listed, given))


def _read_config(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _check_files(flag: str, pairs: List[tuple]) -> None:
    """Names a missing layer file by its flag before any work is done."""
    for _, path in pairs:
        try:
            os.stat(path)
        except OSError as e:
            raise OSError(e.errno, e.strerror,
                          '--%s %s' % (flag, path)) from e


def _missing_foreign_layer(err: BaseException):
    """The ForeignLayerUnavailableError behind ERR, if one is."""
    from containerregistry.client.v2_2 import docker_image
    return errors.find(err, lambda e: isinstance(
        e, docker_image.ForeignLayerUnavailableError))


def _with_foreign_layers(args, image):
    """IMAGE, fetching the foreign layers it lacks if the user asked."""
    if not args.fetch_foreign_layers:
        return contextlib.nullcontext(image)
    from containerregistry.client.v2_2 import foreign_layers
    from containerregistry.transport import pooled_http
    return foreign_layers.Fetching(image, pooled_http.Http())


def _extract(args, source, layers: int, outputs) -> None:
    """Writes the merged filesystem of SOURCE, which has LAYERS layers."""
    import tarfile
    from containerregistry.client.v2_2 import flatten

    with _with_foreign_layers(args, source) as image:
        _check_layer_count(image, layers)
        with outputs.open(args.filesystem) as f:
            with tarfile.open(fileobj=f, mode='w', format=tarfile.PAX_FORMAT,
                              encoding='utf-8') as tar:
                flatten.extract(image, tar)
        logging.info('Flattened %d layers into %s', len(image.diff_ids()),
                     args.filesystem)


def _write_filesystem(args, config_text: str, base_layers: int,
                      layers: List[tuple], uncompressed: List[tuple],
                      outputs) -> None:
    from containerregistry.client.v2_2 import disk_image

    _check_files('layer', layers)
    _check_files('uncompressed_layer', uncompressed)
    with disk_image.FromDisk(config_text, layers,
                             uncompressed_layers=uncompressed,
                             legacy_base=args.tarball) as disk:
        _extract(args, disk, base_layers + max(len(layers), len(uncompressed)),
                 outputs)


def _flatten_layout(args, outputs) -> bytes:
    """Writes the filesystem of the --oci-layout image; returns its config."""
    with oci_layout_args.open_image(args) as image:
        if args.filesystem:
            _extract(args, image, len(image.fs_layers()), outputs)
        return image.config_file().encode('utf-8')


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)

    layers = _pairs('digest', args.digest, 'layer', args.layer)
    uncompressed = _pairs('diff_id', args.diff_id, 'uncompressed_layer',
                          args.uncompressed_layer)
    message = oci_layout_args.flag_error(args, _LAYOUT_EXCLUDES)
    if message:
        cli.fatal(_ERROR, message)
    if not args.config and not args.tarball and args.oci_layout is None:
        cli.fatal(_ERROR, 'either --config or --tarball must be specified')
    for flag, path in (('filesystem', args.filesystem),
                       ('metadata', args.metadata)):
        if path == '':
            cli.fatal(_ERROR, '--%s is empty; it must name a file' % flag)
    if not args.filesystem and not args.metadata:
        cli.fatal(_ERROR, 'nothing to write: give --filesystem and/or '
                  '--metadata')

    # Imported here so that --help and argument errors stay quick.
    from containerregistry.client.v2_2 import disk_image
    from containerregistry.client.v2_2 import outputs as output_files
    from containerregistry.client.v2_2 import tarball_image

    outputs = output_files.Outputs()
    try:
        for path in (args.filesystem, args.metadata):
            if path:
                outputs.check(path)
        base_layers = 0
        config = None
        if args.oci_layout is not None:
            config = _flatten_layout(args, outputs)
        elif args.tarball:
            with tarball_image.FromTarball(args.tarball) as base:
                base_layers = len(base.diff_ids())
                if not args.config:
                    config = base.config_file().encode('utf-8')
        if config is None:
            config = _read_config(args.config)
        try:
            config_text = config.decode('utf-8')
        except UnicodeDecodeError as e:
            raise disk_image.DiskImageError(
                'the config %s is not UTF-8 text (%s)'
                % (args.config, e)) from e
        if args.filesystem and args.oci_layout is None:
            _write_filesystem(args, config_text, base_layers, layers,
                              uncompressed, outputs)
        if args.metadata:
            with outputs.open(args.metadata) as f:
                f.write(config)
        outputs.commit()
    except Exception as e:  # pylint: disable=broad-except
        outputs.discard()
        logging.debug('Flatten failed', exc_info=True)
        message = errors.describe(e, output=' and '.join(
            path for path in (args.filesystem, args.metadata) if path))
        missing = _missing_foreign_layer(e)
        if (missing is not None and missing.urls
                and not args.fetch_foreign_layers):
            message += ' (--fetch-foreign-layers fetches it from them)'
        cli.fatal(_ERROR, message)
    finally:
        outputs.discard()


if __name__ == '__main__':
    cli.run(main)
