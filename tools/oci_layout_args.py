"""`--oci-layout DIR` and `--oci-ref NAME`: an OCI image layout as the image.

pusher.par, flatten.par and digester.par read the image from such a layout
instead of from their file flags; combining the two is a usage error.
"""
import argparse
from typing import Optional, Sequence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--oci-layout', action='store', metavar='DIR',
        help=('An OCI image layout (as written by puller.par --format oci, '
              'skopeo or umoci) to read the image from, instead of the '
              'other image flags.'))
    parser.add_argument(
        '--oci-ref', action='store', metavar='NAME',
        help=('The image of --oci-layout whose '
              'org.opencontainers.image.ref.name is NAME; needed only when '
              'the layout holds more than one.'))


def flag_error(args: argparse.Namespace,
               image_flags: Sequence[str]) -> Optional[str]:
    """The one-line usage error for the layout flags, if they are misused.

    IMAGE_FLAGS are the tool's other ways of giving the image (`--config`).
    """
    if args.oci_ref is not None and args.oci_layout is None:
        return '--oci-ref requires --oci-layout.'
    if args.oci_layout is None:
        return None
    given = [flag for flag in image_flags
             if getattr(args, flag.lstrip('-').replace('-', '_'), None)]
    if given:
        return ('--oci-layout cannot be combined with %s: the layout is the '
                'whole image.' % ', '.join(given))
    return None


def open_image(args: argparse.Namespace):
    """The image --oci-layout and --oci-ref name (a FromOCILayout)."""
    from containerregistry.client.v2_2 import oci_layout_image
    return oci_layout_image.FromOCILayout(args.oci_layout, args.oci_ref)


def open_whole(args: argparse.Namespace):
    """What --oci-layout and --oci-ref name, whole: an image, or an index
    with every image it names (pushed and digested as the index)."""
    from containerregistry.client.v2_2 import oci_layout_image
    return oci_layout_image.open_layout(args.oci_layout, args.oci_ref)
