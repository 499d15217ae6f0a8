"""Writes v1 images as a v1 `docker save` tarball.

Members, in upstream's order: per image, its layers top first, each once
(`<id>/VERSION` = `1.0`, `<id>/layer.tar`, `<id>/json`); then
`repositories` = `{repository: {tag: top id}}`; `tarball()` adds `top`,
the top layer's id. There is no `manifest.json`: that is the v2.2 half
(`v2_2.save`). Members are bare `TarInfo`s, as `v2_2.tarball_writer`
writes them, and layers stream from sources that can stream them.
"""
import json
import tarfile
from typing import Any, Dict, Mapping

from containerregistry.client import docker_name
from containerregistry.client.v1 import docker_image
from containerregistry.client.v2_2 import tarball_writer


def _tag(key: Any) -> docker_name.Tag:
    return docker_name.Tag(key, strict=False) if isinstance(key, str) else key


def _throwaway(raw_json: str) -> bool:
    try:
        return bool(json.loads(raw_json).get('throwaway'))
    except (ValueError, AttributeError) as e:
        raise docker_image.TarballError('bad v1 layer JSON: %s' % e) from e


def multi_image_tarball(tag_to_image: Mapping[Any, docker_image.DockerImage],
                        tar: tarfile.TarFile) -> None:
    """Writes the v1 images into the open TAR, keyed by `docker_name.Tag`s.

    Tags may also be strings (parsed non-strict, so registry-less names are
    fine). Layers shared between images are written once; throwaway layers
    (`"throwaway": true`, history-only) not at all, as upstream.
    """
    seen = set()
    repositories: Dict[str, Dict[str, str]] = {}
    for key, image in tag_to_image.items():
        tag = _tag(key)
        top = image.top()
        repositories.setdefault(str(tag.as_repository()), {})[tag.tag] = top
        for layer_id in image.ancestry(top):
            if layer_id in seen or _throwaway(image.json(layer_id)):
                continue
            seen.add(layer_id)
            tarball_writer.add_bytes(tar, layer_id + '/VERSION', b'1.0')
            reader, size = tarball_writer.open_v1_layer(image, layer_id)
            with reader:
                tarball_writer.add_stream(tar, layer_id + '/layer.tar',
                                          reader, size)
            tarball_writer.add_bytes(tar, layer_id + '/json',
                                     image.json(layer_id).encode('utf8'))
    tarball_writer.add_bytes(
        tar, 'repositories',
        json.dumps(repositories, sort_keys=True).encode('utf8'))


def tarball(name: Any, image: docker_image.DockerImage,
            tar: tarfile.TarFile) -> None:
    """Writes IMAGE, tagged NAME, into TAR, plus a `top` file naming its top."""
    multi_image_tarball({name: image}, tar)
    tarball_writer.add_bytes(tar, 'top', image.top().encode('utf8'))
