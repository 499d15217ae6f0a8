"""Manifest synthesis for `FromTarball`: which image of the tarball, and
its v2.2 manifest.

docker save writes no v2.2 manifest: it is made from the chosen entry of
manifest.json, the config and each layer's blob (see `tarball_layers`).
Foreign layers (a Windows base, as rules_docker's join_layers writes it)
are listed in the entry's `LayerSources`, keyed by diff_id: the manifest
keeps that descriptor, and the member is only a placeholder.
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional, Tuple, Union

from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2 import tarball_diff_ids
from containerregistry.client.v2_2 import tarball_index
from containerregistry.client.v2_2 import tarball_layers

TarballError = tarball_index.TarballError


@dataclasses.dataclass(frozen=True)
class Synthesized:
    """The manifest, and what reads need to know of its blobs."""
    manifest: Dict[str, Any]
    blob_names: Dict[str, str]  # layer digest -> member
    sizes: Dict[str, int]  # layer digest -> size
    # Foreign layer digest -> (its diff_id, its LayerSources descriptor).
    foreign: Dict[str, Tuple[str, Dict[str, Any]]]


def _resolve_tag(archive: tarball_index.Archive, tarball: str,
                 entries: List[Dict[str, Any]]) -> str:
    """The single repo:tag of the legacy `repositories` file."""
    tags = sorted(t for e in entries for t in (e.get('RepoTags') or []))
    hint = ' (tags: %s)' % ', '.join(tags) if tags else ''
    try:
        repositories = archive.read_json('repositories')
    except TarballError as e:
        raise TarballError(
            '%s holds %d images; give a name to choose one%s'
            % (tarball, len(entries), hint)) from e
    if not isinstance(repositories, dict) or len(repositories) != 1:
        raise TarballError(
            '%s holds %d images and its repositories file does not name '
            'a single one; give a name to choose one%s'
            % (tarball, len(entries), hint))
    (repo, repo_tags), = repositories.items()
    if not isinstance(repo_tags, dict) or len(repo_tags) != 1:
        raise TarballError(
            '%s holds %d images and its repositories file does not name '
            'a single tag; give a name to choose one%s'
            % (tarball, len(entries), hint))
    (tag, _), = repo_tags.items()
    return '%s:%s' % (repo, tag)


def choose_entry(archive: tarball_index.Archive, tarball: str,
                 name: Optional[Union[docker_name.Tag, str]]
                 ) -> Dict[str, Any]:
    """The entry of manifest.json that NAME picks (the only one, or the
    one the legacy `repositories` file names, when NAME is not given),
    checked: `Config`, `Layers` and `LayerSources`."""
    if 'manifest.json' not in archive.entries:
        raise TarballError('%s has no manifest.json (not a docker-save '
                           'tarball of a v2.2 image)' % tarball)
    entries = archive.read_json('manifest.json')
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) for e in entries):
        raise TarballError('%s: manifest.json is not a list of images'
                           % tarball)
    if len(entries) != 1 and not name:
        name = _resolve_tag(archive, tarball, entries)
    chosen = None
    for entry in entries:
        if not name or str(name) in (entry.get('RepoTags') or []):
            chosen = entry
    if chosen is None or not chosen.get('Config'):
        tags = sorted(t for e in entries for t in (e.get('RepoTags') or []))
        raise TarballError('Unable to find %s in provided tarball %s%s'
                           % (name, tarball,
                              ' (tags: %s)' % ', '.join(tags)
                              if tags else ''))
    layers = chosen.get('Layers') or []
    sources = chosen.get('LayerSources') or {}
    if (not isinstance(chosen['Config'], str)
            or not isinstance(layers, list)
            or not all(isinstance(l, str) for l in layers)
            or not isinstance(sources, dict)):
        raise TarballError('%s: malformed manifest.json entry' % tarball)
    for ref in [chosen['Config']] + layers:
        if tarball_index.normalize(ref) is None:
            raise TarballError('%s: manifest.json refers to %r, '
                               'outside the archive' % (tarball, ref))
    return {'Config': chosen['Config'], 'Layers': layers,
            'LayerSources': sources}


def synthesize(tarball: str, entry: Dict[str, Any], config_text: str,
               layers: tarball_layers.LayerCompressor) -> Synthesized:
    """The v2.2 manifest of ENTRY; every own layer is compressed and checked."""
    config_bytes = config_text.encode('utf8')
    try:
        config = json.loads(config_text)
    except ValueError as e:
        raise TarballError('%s: the config is not valid JSON (%s)'
                           % (tarball, e)) from e
    rootfs = config.get('rootfs') if isinstance(config, dict) else None
    diff_ids = rootfs.get('diff_ids') if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise TarballError('%s: the config has no rootfs.diff_ids' % tarball)
    members = entry['Layers']
    sources = entry['LayerSources']
    if len(members) != len(diff_ids):
        raise TarballError(
            '%s: manifest.json lists %d layers but the config has %d '
            'diff_ids' % (tarball, len(members), len(diff_ids)))
    layers.compress_all(sorted(set(m for m, d in zip(members, diff_ids)
                                   if d not in sources)))
    tarball_diff_ids.check_layers(tarball, members, diff_ids, sources,
                                  layers.compress)

    descriptors = []
    blob_names: Dict[str, str] = {}
    sizes: Dict[str, int] = {}
    foreign: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    for member, diff_id in zip(members, diff_ids):
        source = sources.get(diff_id)
        if source is not None:
            descriptor = _source_descriptor(tarball, diff_id, source)
            foreign[descriptor['digest']] = (diff_id, descriptor)
        else:
            blob = layers.compress(member)
            descriptor = {'digest': blob.digest,
                          'mediaType': media_types.LAYER_MIME,
                          'size': blob.size}
        blob_names[descriptor['digest']] = member
        sizes[descriptor['digest']] = descriptor['size']
        descriptors.append(descriptor)
    manifest = {
        'mediaType': media_types.MANIFEST_SCHEMA2_MIME,
        'schemaVersion': 2,
        'config': {
            'digest': docker_digest.SHA256(config_bytes),
            'mediaType': media_types.CONFIG_JSON_MIME,
            'size': len(config_bytes),
        },
        'layers': descriptors,
    }
    return Synthesized(manifest, blob_names, sizes, foreign)


def _source_descriptor(tarball: str, diff_id: str,
                       source: Any) -> Dict[str, Any]:
    """The manifest's descriptor for a LayerSources entry, checked."""
    what = '%s: LayerSources[%s]' % (tarball, diff_id)
    if not isinstance(source, dict):
        raise TarballError('%s is not a JSON object' % what)
    docker_digest.check_form(source.get('digest'), what)
    size, media_type = source.get('size'), source.get('mediaType')
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise TarballError('%s has an invalid size %s'
                           % (what, json.dumps(size)[:100]))
    if not isinstance(media_type, str) or not media_type:
        raise TarballError('%s has no mediaType' % what)
    urls = source.get('urls')
    if urls is not None and not (isinstance(urls, list) and all(
            isinstance(url, str) for url in urls)):
        raise TarballError('%s: urls is not a list of strings' % what)
    descriptor = {'digest': source['digest'], 'mediaType': media_type,
                  'size': size}
    if urls:
        descriptor['urls'] = urls
    return descriptor
