"""The diff_id checks of `FromTarball`: each layer's tar must hash to what
the config says for it."""
from typing import Callable, Dict, List

from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import tarball_index
from containerregistry.client.v2_2 import tarball_layers


class DiffIdMismatchError(tarball_index.TarballError,
                          docker_digest.DigestMismatchedError):
    """A layer whose tar does not hash to the config's diff_id for it."""


def check_layers(tarball: str, members: List[str], diff_ids: List[str],
                 foreign: Dict[str, object],
                 blob_of: Callable[[str], tarball_layers.LayerBlob]) -> None:
    """Raises DiffIdMismatchError unless each layer of MEMBERS (base first)
    hashed to its diff_id; foreign layers (diff_ids in FOREIGN) hold only
    placeholders and are checked when read (`check_placeholder`)."""
    for index, (member, diff_id) in enumerate(zip(members, diff_ids)):
        if diff_id in foreign:
            continue
        found = blob_of(member).diff_id
        if found != diff_id:
            raise DiffIdMismatchError(
                '%s: layer %d (%s) does not match the config: its '
                'tar hashes to %s, the config says %s'
                % (tarball, index, member, found, diff_id))


def check_placeholder(tarball: str, member: str, digest: str, found: str,
                      diff_id: str) -> None:
    """Raises DiffIdMismatchError unless the placeholder MEMBER of foreign
    layer DIGEST hashed (FOUND) to the layer's DIFF_ID."""
    if found != diff_id:
        raise DiffIdMismatchError(
            '%s: the placeholder %s of foreign layer %s does not match '
            'the config: its tar hashes to %s, the config says %s'
            % (tarball, member, digest, found, diff_id))
