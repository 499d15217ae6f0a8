"""Checks that an image's parts agree, before a save calls it complete.

A registry (or a proxy) can serve a config that is not an object, or one
whose `rootfs.diff_ids` pair with fewer or more layers than the manifest
lists; readers pair layers with diff_ids by position, so such an image
would be written as complete but could not be used.
"""
from containerregistry.client.v2_2 import json_docs


class InconsistentImageError(Exception):
    """The config does not fit the manifest it came with."""


def check_config(config: str, layers: int, what: str) -> None:
    """Raises unless CONFIG is a JSON object whose `rootfs.diff_ids`, when
    given, count LAYERS. WHAT names the config in messages."""
    parsed = json_docs.parse_object(config, what, InconsistentImageError)
    rootfs = parsed.get('rootfs')
    if rootfs is None:
        return
    if not isinstance(rootfs, dict):
        raise InconsistentImageError('%s: rootfs is not a JSON object' % what)
    diff_ids = rootfs.get('diff_ids')
    if diff_ids is None:
        return
    if not isinstance(diff_ids, list):
        raise InconsistentImageError('%s: rootfs.diff_ids is not a list' % what)
    if len(diff_ids) != layers:
        # Imported only here: the disk reader brings the tarball and
        # compression modules, which a pull otherwise does not load.
        from containerregistry.client.v2_2 import disk_image
        raise disk_image.LayerCountError(len(diff_ids), layers)
