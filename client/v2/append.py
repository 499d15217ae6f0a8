"""A schema 1 image with one more layer on top (`Layer`), as upstream's.

The new top history entry is a copy of the base's top one with a new
random v1 id, the old id as `parent`, and the given environment variables
and exposed port added to its `config`. Without a layer blob the entry is
`throwaway` and names the empty-tar blob, which `blob()` serves (upstream
served zero bytes under that digest, which no registry accepts).

The manifest is left unsigned, as upstream left it (`util.Sign`); a push
(`docker_session.Push`) signs it. Its digest is that of its bytes, which is
what the registry names it after the push.
"""
import json
import secrets
from typing import Optional

from containerregistry.client.v2 import docker_digest
from containerregistry.client.v2 import docker_image
from containerregistry.client.v2 import util
from containerregistry.client.v2_2 import v2_compat


def _unsigned(manifest: str) -> str:
    """MANIFEST's signed payload, or MANIFEST itself if it is unsigned."""
    if 'signatures' not in json.loads(manifest):
        return manifest
    return util.DetachSignatures(manifest)[0]


class Layer(docker_image.DockerImage):
    """BASE (a schema 1 image) with TAR_GZ, PORT and ENVS on top.

    TAR_GZ is the gzipped tar of the new layer (bytes), or empty for a
    layer that changes no file; PORT (e.g. `'8080/tcp'`) is exposed unless
    None; each of ENVS (`'KEY=value'`) replaces the base's KEY, if set, and
    goes after the base's variables.
    """

    def __init__(self, base: docker_image.DockerImage, tar_gz: Optional[bytes],
                 port: Optional[str], *envs: str):
        self._base = base
        manifest = json.loads(_unsigned(base.manifest()))
        try:
            compat = json.loads(manifest['history'][0]['v1Compatibility'])
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise util.BadManifestException(
                'The base manifest has no readable top history entry') from e

        if tar_gz:
            self._blob = bytes(tar_gz)
            self._blob_sum = docker_digest.SHA256(self._blob)
        else:
            self._blob = v2_compat.EMPTY_TAR_BYTES
            self._blob_sum = v2_compat.EMPTY_TAR_DIGEST
        compat['throwaway'] = not tar_gz
        compat['parent'] = compat['id']
        compat['id'] = secrets.token_hex(32)

        config = compat.get('config') or {}
        if envs:
            keys = set(env.split('=')[0] for env in envs)
            kept = [env for env in config.get('Env') or []
                    if env.split('=')[0] not in keys]
            config['Env'] = kept + list(envs)
        if port is not None:
            ports = config.get('ExposedPorts') or {}
            ports[port] = {}
            config['ExposedPorts'] = ports
        compat['config'] = config

        manifest['fsLayers'].insert(0, {'blobSum': self._blob_sum})
        manifest['history'].insert(
            0, {'v1Compatibility': json.dumps(compat, sort_keys=True)})
        self._manifest = util.Sign(json.dumps(manifest, sort_keys=True))

    def manifest(self) -> str:
        return self._manifest

    def blob_size(self, digest: str) -> int:
        if digest == self._blob_sum:
            return len(self._blob)
        return self._base.blob_size(digest)

    def blob(self, digest: str) -> bytes:
        if digest == self._blob_sum:
            return self._blob
        return self._base.blob(digest)

    def blob_stream(self, digest: str):
        if digest == self._blob_sum:
            return super().blob_stream(digest)
        return self._base.blob_stream(digest)

    def __enter__(self) -> 'Layer':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass
