"""pusher.par: pushes an image given as files (rules_docker's container_push).

The image is a config file plus `.tar.gz` layers with their digest files,
optionally on top of a docker-save tarball (`--tarball`) or of a base
manifest's foreign layers (`--manifest`). Local inputs are all checked
before the first request. Blobs the registry has are skipped, the rest
stream from disk, and the manifest goes last, so a failed push never moves
the tag. On success the only stdout line (besides stamping messages) is
`<name> was published with digest: sha256:<hex>`. `--name` may be a tag
or a digest reference (`repo@sha256:...`, as digester.par computes it),
which publishes the manifest without a tag.

The input handling is shared with digester.par, which must report the
digest this tool publishes for the same inputs.
"""
import argparse
import hashlib
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

from containerregistry.tools import cli
from containerregistry.tools import errors
from containerregistry.tools import logging_setup
from containerregistry.tools import oci_layout_args

USAGE = """pusher.par [-h] --name NAME [--tarball TARBALL] [--config CONFIG]
                   [--manifest MANIFEST] [--digest DIGEST] [--layer LAYER]
                   [--stamp-info-file STAMP_INFO_FILE] [--oci]
                   [--client-config-dir CLIENT_CONFIG_DIR]
                   [--stderrthreshold STDERRTHRESHOLD]
                   [--oci-layout DIR] [--oci-ref NAME]
                   [--log-file LOG_FILE]
                   [--insecure-registry HOST[:PORT]] [--timeout SECONDS]"""

def add_name_flag(target: argparse.ArgumentParser) -> None:
    """Adds `--name`, where to push (docker_pusher.par takes it too)."""
    target.add_argument(
        '--name', action='store', required=True,
        help='The name of the docker image to push.')


def add_stamp_and_oci_flags(target: argparse.ArgumentParser) -> None:
    """Adds `--stamp-info-file` and `--oci` (docker_pusher.par takes them
    too, and hands them on)."""
    target.add_argument(
        '--stamp-info-file', action='append', required=False,
        help=('A list of files from which to read substitutions to make in '
              'the provided --name, e.g. {BUILD_USER}'))
    target.add_argument(
        '--oci', action='store_true',
        help='Push the image with an OCI Manifest.')


parser = cli.new_parser(
    prog='pusher.par',
    description='Push images to a Docker Registry, faaaaaast.',
    usage=USAGE)

add_name_flag(parser)

# The name of this flag was chosen for compatibility with docker_pusher.
parser.add_argument(
    '--tarball', action='store',
    help='An optional legacy base image tarball.')

parser.add_argument(
    '--config', action='store',
    help='The path to the file storing the image config.')

parser.add_argument(
    '--manifest', action='store', required=False,
    help='The path to the file storing the image manifest.')

parser.add_argument(
    '--digest', action='append',
    help='The list of layer digest filenames in order.')

parser.add_argument(
    '--layer', action='append',
    help='The list of layer filenames in order.')

add_stamp_and_oci_flags(parser)

parser.add_argument(
    '--client-config-dir', action='store',
    help=('The path to the directory where the client configuration files '
          'are located. Overiddes the value from DOCKER_CONFIG'))

logging_setup.DefineCommandLineArgs(parser)

oci_layout_args.add_arguments(parser)

logging_setup.DefineLogFileArg(parser)

cli.add_insecure_registry_flag(parser)

cli.add_timeout_flag(parser)

_THREADS = 8


class StampError(ValueError):
    """The stamp values cannot be substituted into the name."""


def _read_stamp_values(files: Sequence[str]) -> Dict[str, str]:
    """KEY -> VALUE from Bazel status files (`KEY VALUE` lines).

    The value is everything after the first space. Blank lines are skipped
    and a line that is only a key gives an empty value, as Bazel reads its
    own status lines (upstream crashed on both). A repeated key warns on
    stdout, as upstream did, and the last value wins.
    """
    values: Dict[str, str] = {}
    for path in files:
        try:
            with open(path, 'r', encoding='utf8') as info:
                lines = info.readlines()
        except UnicodeDecodeError as e:
            raise StampError('stamp info file %s is not UTF-8 text (%s)'
                             % (path, e.reason)) from e
        for line in lines:
            line = line.rstrip('\r\n')
            if not line.strip():
                continue
            key, _, value = line.partition(' ')
            if key in values:
                cli.say('WARNING: Duplicate value for key "%s": '
                        'using "%s"' % (key, value))
            values[key] = value
    return values


def _stamped(name: str, files: Optional[Sequence[str]]) -> str:
    """NAME with `{KEY}` stamp references filled in from FILES.

    Prints `<name> was resolved to <result>` on stdout when FILES are given
    (upstream's message). Raises StampError for a reference no file
    defines or for stray braces, OSError for an unreadable file.
    """
    values = _read_stamp_values(files or [])
    try:
        formatted = name.format(**values)
    except KeyError as e:
        if files:
            raise StampError('no value for {%s} in the stamp info files %s'
                             % (e.args[0], ', '.join(files))) from None
        raise StampError('{%s} needs a value from --stamp-info-file'
                         % e.args[0]) from None
    except (ValueError, IndexError, AttributeError) as e:
        raise StampError('cannot substitute stamp values into the name '
                         '(use {KEY} references only): %s' % e) from None
    if files:
        cli.say('{name} was resolved to {fname}'.format(
            name=name, fname=formatted))
    return formatted


def Tag(name: str, files: Optional[Sequence[str]]):
    """NAME, stamped from FILES (see `_stamped`), as a strict Tag (upstream's).

    Raises docker_name.BadNameException for an invalid result.
    """
    from containerregistry.client import docker_name
    return docker_name.Tag(_stamped(name, files))


def Reference(name: str, files: Optional[Sequence[str]]):
    """NAME, stamped from FILES, as a Digest if it has an `@`, else a Tag."""
    from containerregistry.tools import registry_access
    return registry_access.parse_reference(_stamped(name, files))


# What an OCI layout replaces: its manifest is published unchanged.
LAYOUT_EXCLUDES = ('--tarball', '--config', '--manifest', '--digest',
                   '--layer', '--oci')


def flag_error(args: argparse.Namespace) -> Optional[str]:
    """Upstream's message for an invalid combination of image flags."""
    if args.oci_layout is not None or args.oci_ref is not None:
        return oci_layout_args.flag_error(args, LAYOUT_EXCLUDES)
    if not args.config and (args.layer or args.digest):
        return 'Using --layer or --digest requires --config to be specified.'
    if not args.config and not args.tarball:
        return 'Either --config or --tarball must be specified.'
    if len(args.digest or []) != len(args.layer or []):
        return '--digest and --layer must have matching lengths.'
    return None


class InputError(ValueError):
    """An input file is missing, unreadable or malformed."""


def _read_text(path: str, what: str) -> str:
    """The text of PATH; text mode, as upstream read it (CRLF becomes LF)."""
    try:
        with open(path, 'r', encoding='utf8') as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise InputError('%s file %s is not UTF-8 text (%s)'
                         % (what, path, e.reason)) from e
    except OSError as e:
        raise InputError('cannot read %s file %s: %s'
                         % (what, path, e.strerror or e)) from e


def _check_readable(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise InputError('%s file %s does not exist' % (what, path))
    if not os.path.isfile(path):
        raise InputError('%s file %s is not a regular file' % (what, path))
    if not os.access(path, os.R_OK):
        raise InputError('cannot read %s file %s: permission denied'
                         % (what, path))


def open_image(args: argparse.Namespace):
    """The image the pusher and digester flags describe.

    For `--oci-layout`, the image or the whole index its entry names (see
    `oci_layout_image.open_layout`), else a FromDisk.

    Everything local is checked here, cheaply: files exist and are
    readable, the config is a JSON object whose rootfs.diff_ids (if any)
    are one per layer of the manifest, the digest files hold a sha256, the
    base manifest's foreign layers are well-formed and the tarball is a
    docker-save tarball. Layers are not hashed: a digest file that does not
    match its layer is refused by the registry, or caught by its size when
    the registry has that blob already (and the manifest, which goes last,
    is then never written).
    """
    if args.oci_layout is not None:
        return oci_layout_args.open_whole(args)
    from containerregistry.client.v2_2 import disk_image
    from containerregistry.client.v2_2 import tarball_image

    digests: List[str] = args.digest or []
    layers: List[str] = args.layer or []
    if args.tarball:
        _check_readable(args.tarball, 'tarball')
    if args.config:
        config = _read_text(args.config, 'config')
    else:
        logging.info('Reading config from tarball %r', args.tarball)
        with tarball_image.FromTarball(args.tarball) as base:
            config = base.config_file()
    try:
        parsed = json.loads(config)
    except ValueError as e:
        raise InputError('config %s is not valid JSON: %s'
                         % (args.config or 'of ' + args.tarball, e)) from e
    if not isinstance(parsed, dict):
        raise InputError('config %s is not a JSON object'
                         % (args.config or 'of ' + args.tarball))
    manifest = _read_text(args.manifest, 'manifest') if args.manifest else None
    for path in digests:
        _check_readable(path, 'digest')
    for path in layers:
        _check_readable(path, 'layer')
    try:
        image = disk_image.FromDisk(config, list(zip(digests, layers)),
                                    legacy_base=args.tarball,
                                    foreign_layers_manifest=manifest)
    except disk_image.ForeignManifestError as e:
        raise InputError('manifest %s: %s' % (args.manifest, e)) from e
    try:
        # Synthesizing the manifest reads every remaining input (sizes,
        # the tarball's layers): any problem shows up now, offline.
        image.manifest()
    except disk_image.LayerCountError as e:
        image.__exit__(None, None, None)
        raise InputError(_count_message(args, e)) from e
    except BaseException:
        image.__exit__(None, None, None)
        raise
    return image


def _count_message(args: argparse.Namespace, err) -> str:
    """Names the config and where the layers it should list come from."""
    from containerregistry.client.v2_2 import disk_image

    config = args.config or 'of ' + args.tarball
    own = len(args.layer or [])
    base = err.layers - own
    if args.tarball:
        origin = '%d from --tarball, %d from --layer' % (base, own)
    elif base:
        origin = '%d foreign from --manifest, %d from --layer' % (base, own)
    else:
        origin = 'from --layer'
    return ('config %s lists %s in rootfs.diff_ids, but the image has %d '
            '(%s)' % (config, disk_image.layer_count(err.listed), err.layers,
                      origin))


def _digest_file_hex(path: str) -> str:
    """The bare hex a digest file holds (open_image has checked its form)."""
    from containerregistry.client.v2_2 import disk_image
    return disk_image.read_digest_file(path).split(':', 1)[1]


def _mismatched_layer(args: argparse.Namespace) -> Optional[str]:
    """Which --layer does not hash to its --digest file, if one does not.

    Only run after the registry refused a digest: it reads every layer.
    """
    for digest_path, layer_path in zip(args.digest or [], args.layer or []):
        try:
            expected = _digest_file_hex(digest_path)
            actual = hashlib.sha256()
            with open(layer_path, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    actual.update(chunk)
        except OSError:
            continue
        if actual.hexdigest() != expected:
            return ('layer %s does not match its digest file %s (which holds '
                    '%s; the layer is sha256:%s)' % (
                        layer_path, digest_path, expected,
                        actual.hexdigest()))
    return None


def _wrong_size_layer(err, args: argparse.Namespace) -> Optional[str]:
    """The --layer whose digest file names a registry blob of another size."""
    for digest_path, layer_path in zip(args.digest or [], args.layer or []):
        try:
            if 'sha256:' + _digest_file_hex(digest_path) != err.digest:
                continue
        except (OSError, ValueError):
            continue
        return ('layer %s does not match its digest file %s: the registry '
                'already has %s, which is %d bytes, and the layer is %d bytes'
                % (layer_path, digest_path, err.digest, err.found, err.listed))
    return None


def _push_error(err: BaseException, args: argparse.Namespace) -> str:
    """One line for a failed push, naming the layer behind DIGEST_INVALID
    or behind a registry blob of another size."""
    from containerregistry.client.v2_2 import docker_http
    from containerregistry.client.v2_2 import docker_session

    text = errors.describe(err)
    if isinstance(err, docker_session.BlobSizeError):
        return _wrong_size_layer(err, args) or text
    if isinstance(err, docker_http.V2DiagnosticException) and any(
            d.code == 'DIGEST_INVALID' for d in err.diagnostics):
        culprit = _mismatched_layer(args)
        if culprit:
            return '%s; the registry refused it: %s' % (culprit, text)
    return text


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)
    cli.start_deadline(args)

    # Imported here so that --help and argument errors stay quick.
    from containerregistry.client import docker_name
    from containerregistry.client.v2_2 import docker_session
    from containerregistry.client.v2_2 import oci_compat
    from containerregistry.tools import progress_line
    from containerregistry.tools import registry_access

    # A digest reference publishes the manifest untagged; digester.par
    # tells the digest beforehand.
    try:
        name = Reference(args.name, args.stamp_info_file)
    except Exception as e:  # pylint: disable=broad-except
        cli.fatal('Error publishing %s: %s', args.name, errors.describe(e))

    message = flag_error(args)
    if message:
        cli.fatal(message)

    try:
        image = open_image(args)
    except Exception as e:  # pylint: disable=broad-except
        logging.debug('Reading the image failed', exc_info=True)
        cli.fatal('Error publishing %s: %s', name, errors.describe(e))

    with image:
        creds, = registry_access.credentials([name], args.client_config_dir)

        to_push = oci_compat.OCIFromV22(image) if args.oci else image
        if isinstance(name, docker_name.Digest) and name.digest != to_push.digest():
            cli.fatal('Error publishing %s: the image\'s digest is %s, not the '
                      'one named', name, to_push.digest())
        transport = registry_access.transport(args, _THREADS)
        try:
            logging.info('Starting upload of %s ...', name)
            # Not used as a context manager: its exit would log a second
            # error line for a failure reported below.
            with progress_line.on_stderr('Pushing', 'Pushed') as reporter:
                session = docker_session.Push(name, creds, transport,
                                              threads=_THREADS,
                                              reporter=reporter)
                session.upload(to_push)
            digest = to_push.digest()
        except Exception as e:  # pylint: disable=broad-except
            logging.debug('Push failed', exc_info=True)
            cli.fatal('Error publishing %s: %s', name, _push_error(e, args))
        logging.info('Finished upload of: %s', name)
        cli.say('{name} was published with digest: {digest}'.format(
            name=name, digest=digest))


if __name__ == '__main__':
    cli.run(main)
