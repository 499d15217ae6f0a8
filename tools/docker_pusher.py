"""docker_pusher: pushes the image of a docker-save tarball to a registry.

This is pusher.par given only `--tarball`: the same manifest (so the same
digest as upstream's docker_pusher), stamping, `--oci`, checks, retries and
the same `<name> was published with digest: sha256:<hex>` line.
"""
from containerregistry.tools import cli
from containerregistry.tools import fast_pusher
from containerregistry.tools import logging_setup

USAGE = """docker_pusher.par [-h] --name NAME --tarball TARBALL
                         [--stamp-info-file STAMP_INFO_FILE] [--oci]
                         [--stderrthreshold STDERRTHRESHOLD]
                         [--insecure-registry HOST[:PORT]]"""

parser = cli.new_parser(
    prog='docker_pusher.par',
    description='Push images to a Docker Registry.',
    usage=USAGE)

fast_pusher.add_name_flag(parser)

parser.add_argument(
    '--tarball', action='store', required=True,
    help='Where to load the image tarball.')

fast_pusher.add_stamp_and_oci_flags(parser)

logging_setup.DefineCommandLineArgs(parser)

cli.add_insecure_registry_flag(parser)

# NAME stamped from the --stamp-info-file FILES, as a strict tag.
Tag = fast_pusher.Tag


def pusher_argv(args) -> list:
    """The pusher.par arguments that push what ARGS describe (the log
    level is set by then, and left alone by pusher.par)."""
    argv = ['--name', args.name, '--tarball', args.tarball]
    for path in args.stamp_info_file or []:
        argv += ['--stamp-info-file', path]
    if args.oci:
        argv.append('--oci')
    for registry in args.insecure_registry or []:
        argv += ['--insecure-registry', registry]
    return argv


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    logging_setup.Init(args=args)
    fast_pusher.main(pusher_argv(args))


if __name__ == '__main__':
    cli.run(main)
