"""Manifest lists and OCI image indexes, and picking the image for a platform.

Among several children that match a platform, the one with the lowest digest
is picked (upstream's deterministic rule, which rules_docker relies on).
Children of unknown media types are passed over instead of failing the list.
"""
import abc
import contextlib
import json
import logging
from typing import (TYPE_CHECKING, Any, Dict, Iterator, List, Optional,
                    Sequence, Tuple, Union)

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import media_types
from containerregistry.client.v2_2.platform import Platform

# Only FromRegistry and open_image use the registry protocol, and load it
# when used: the offline lists (FromList, Delegate) need none of it.
if TYPE_CHECKING:
    from containerregistry.client.v2_2 import docker_http
    from containerregistry.client.v2_2 import registry_image

__all__ = ['Platform', 'DockerImageList', 'Delegate', 'FromRegistry',
           'FromList', 'DigestMismatchedError', 'InvalidMediaTypeError',
           'PlatformNotFoundError',
           'open_image', 'open_whole', 'is_attestation']

DigestMismatchedError = docker_digest.DigestMismatchedError


class InvalidMediaTypeError(Exception):
    """A manifest of a media type this client cannot read."""


class PlatformNotFoundError(Exception):
    """No image in the list matches the platform asked for."""


class DockerImageList(metaclass=abc.ABCMeta):
    """Interface for implementations that interact with Docker manifest lists."""

    def digest(self) -> str:
        """The digest of the manifest."""
        return docker_digest.SHA256(self.manifest().encode('utf8'))

    def media_type(self) -> str:
        """The media type of the manifest."""
        manifest = json.loads(self.manifest())
        return manifest.get('mediaType', media_types.OCI_IMAGE_INDEX_MIME)

    @abc.abstractmethod
    def manifest(self) -> str:
        """The JSON manifest referenced by the tag/digest, as text."""

    @abc.abstractmethod
    def resolve_all(self, target: Optional[Platform] = None
                    ) -> List[docker_image.DockerImage]:
        """The images that run on TARGET (default linux/amd64), by digest.

        Entries that are lists themselves are searched too: only images are
        returned. Every entry, whatever its platform, is what iterating the
        list gives.
        """

    def resolve(self, target: Optional[Platform] = None
                ) -> docker_image.DockerImage:
        """The single image for TARGET (default linux/amd64)."""
        target = target or Platform()
        results = self.resolve_all(target)
        if not results:
            raise PlatformNotFoundError(
                'Could not resolve manifest list to compatible manifest: '
                'no entry for %s among %s' % (_describe(dict(target)),
                                              self._available()))
        return results[0]

    def _available(self) -> str:
        try:
            entries = json.loads(self.manifest()).get('manifests', [])
        except ValueError:
            return 'an unreadable list'
        names = sorted(set(_describe(e.get('platform') or {})
                           for e in entries))
        return ', '.join(names) or 'no entries'

    @abc.abstractmethod
    def __enter__(self) -> 'DockerImageList':
        """Open the list for reading."""

    @abc.abstractmethod
    def __exit__(self, unused_type, unused_value, unused_traceback):
        """Close the list."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Tuple[Optional[Platform],
                                         docker_image.DockerImage]]:
        """Yields (platform, image) for each entry."""

    def entries(self) -> List[Tuple[Dict[str, Any], Any]]:
        """(descriptor, child) for each entry of the manifest, in order;
        the child is None where this client cannot read the entry.

        This default pairs the descriptors with what iterating gives, which
        holds for lists whose iteration yields every entry in order.
        """
        descriptors = json.loads(self.manifest()).get('manifests', [])
        children = [child for _, child in self]
        if len(children) != len(descriptors):
            raise InvalidMediaTypeError(
                'the list names %d manifests but gives %d'
                % (len(descriptors), len(children)))
        return list(zip(descriptors, children))


# What buildx marks its attestation manifests with (`unknown/unknown`).
_REFERENCE_TYPE = 'vnd.docker.reference.type'
_ATTESTATION = 'attestation-manifest'


def is_attestation(descriptor: Dict[str, Any]) -> bool:
    """Whether a list entry is an attestation manifest (provenance, SBOM)
    rather than an image for a platform."""
    annotations = descriptor.get('annotations')
    return (isinstance(annotations, dict)
            and annotations.get(_REFERENCE_TYPE) == _ATTESTATION)


def _describe(platform: Dict[str, Any]) -> str:
    text = '%s/%s' % (platform.get('os', '?'),
                      platform.get('architecture', '?'))
    if platform.get('variant'):
        text += '/' + platform['variant']
    if platform.get('os.version'):
        text += ' ' + platform['os.version']
    return text


class Delegate(DockerImageList):
    """Forwards calls to the underlying list."""

    def __init__(self, image: DockerImageList):
        self._image = image

    def manifest(self) -> str:
        return self._image.manifest()

    def media_type(self) -> str:
        return self._image.media_type()

    def resolve_all(self, target: Optional[Platform] = None
                    ) -> List[docker_image.DockerImage]:
        return self._image.resolve_all(target)

    def resolve(self, target: Optional[Platform] = None
                ) -> docker_image.DockerImage:
        return self._image.resolve(target)

    def __iter__(self):
        return iter(self._image)

    def __str__(self) -> str:
        return str(self._image)


_Child = Union['FromRegistry', 'registry_image.FromRegistry']


class FromRegistry(DockerImageList):
    """A manifest list or image index in a registry."""

    def __init__(self, name: Union[docker_name.Tag, docker_name.Digest],
                 basic_creds: docker_creds.Provider, transport,
                 accepted_mimes: Sequence[str] = (
                     media_types.MANIFEST_LIST_MIMES)):
        from containerregistry.client.v2_2 import registry_image  # pylint: disable=import-outside-toplevel
        self._image = registry_image.FromRegistry(name, basic_creds, transport,
                                                  accepted_mimes)
        self._name = name
        self._accepted_mimes = list(accepted_mimes)

    @classmethod
    def FromTransport(cls, name: Union[docker_name.Tag, docker_name.Digest],
                      transport: 'docker_http.Transport',
                      accepted_mimes: Sequence[str],
                      manifest: Optional[bytes] = None,
                      media_type: Optional[str] = None) -> 'FromRegistry':
        """A list sharing an authenticated Transport (no new ping/token)."""
        from containerregistry.client.v2_2 import registry_image  # pylint: disable=import-outside-toplevel
        image_list = cls(name, docker_creds.Anonymous(), None, accepted_mimes)
        image_list._image = registry_image.FromRegistry.FromTransport(
            name, transport, accepted_mimes, manifest, media_type)
        return image_list

    def manifest(self, validate: bool = True) -> str:
        return self._image.manifest(validate)

    def media_type(self) -> str:
        return self._image.media_type()

    def exists(self) -> bool:
        """True if the name refers to a list of an accepted type."""
        from containerregistry.client.v2_2 import docker_http  # pylint: disable=import-outside-toplevel
        try:
            manifest = json.loads(self.manifest(validate=False))
        except docker_http.V2DiagnosticException as err:
            if err.status == 404:
                return False
            raise
        return (manifest.get('schemaVersion') == 2
                and 'manifests' in manifest
                and self.media_type() in self._accepted_mimes)

    def _child(self, entry: Dict[str, Any]
               ) -> Tuple[docker_name.Digest, Optional[_Child]]:
        """The name of ENTRY's manifest, and the child reading it (None
        for a media type this client cannot read)."""
        from containerregistry.client.v2_2 import registry_image  # pylint: disable=import-outside-toplevel
        name = docker_name.Digest('{base}@{digest}'.format(
            base=self._name.as_repository(), digest=entry['digest']))
        media_type = entry.get('mediaType', '')
        transport = self._image.transport()
        if media_type in media_types.MANIFEST_LIST_MIMES:
            return name, FromRegistry.FromTransport(name, transport,
                                                    [media_type])
        if media_type in media_types.SUPPORTED_MANIFEST_MIMES:
            return name, registry_image.FromRegistry.FromTransport(
                name, transport, [media_type])
        return name, None

    def entries(self) -> List[Tuple[Dict[str, Any], Any]]:
        return [(entry, self._child(entry)[1])
                for entry in json.loads(self.manifest()).get('manifests', [])]

    def images(self) -> List[Tuple[docker_name.Digest, Optional[Platform],
                                   _Child]]:
        """(name, platform or None, child) for each entry it can read."""
        manifest = json.loads(self.manifest())
        results: List[Tuple[docker_name.Digest, Optional[Platform],
                            _Child]] = []
        for entry in manifest.get('manifests', []):
            name, child = self._child(entry)
            if child is None:
                logging.info('Passing over %s of media type %r', name,
                             entry.get('mediaType', ''))
                continue
            platform = (Platform(entry['platform'])
                        if entry.get('platform') else None)
            results.append((name, platform, child))
        return results

    def resolve_all_unordered(self, target: Optional[Platform] = None
                              ) -> Dict[docker_name.Digest,
                                        'registry_image.FromRegistry']:
        """Name -> image for each image (nested lists searched) that runs
        on TARGET (default linux/amd64)."""
        target = target or Platform()
        results: Dict[docker_name.Digest, 'registry_image.FromRegistry'] = {}
        for name, platform, child in self.images():
            if isinstance(child, DockerImageList):
                with child:
                    results.update(child.resolve_all_unordered(target))
            elif target.can_run(platform):
                results[name] = child
        return results

    def resolve_all(self, target: Optional[Platform] = None
                    ) -> List[docker_image.DockerImage]:
        # Sort by digest so the pick does not depend on the list's order.
        results = sorted(self.resolve_all_unordered(target).items(),
                         key=lambda name_image: str(name_image[0]))
        return [image for (_, image) in results]

    def __iter__(self):
        for _, platform, child in self.images():
            yield platform, child

    def __enter__(self) -> 'FromRegistry':
        self._image.__enter__()
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass

    def __str__(self) -> str:
        return '<docker_image_list.FromRegistry name: {}>'.format(
            str(self._name))


class FromList(DockerImageList):
    """A manifest list synthesized from (platform, image) pairs."""

    def __init__(self, images: Sequence[Tuple[Optional[Platform],
                                              docker_image.DockerImage]]):
        self._images = list(images)

    def manifest(self) -> str:
        entries = []
        for platform, image in self._images:
            entry = {
                'digest': image.digest(),
                'mediaType': image.media_type(),
                'size': len(image.manifest()),
            }
            if platform:
                entry['platform'] = dict(platform)
            entries.append(entry)
        return json.dumps({
            'mediaType': media_types.MANIFEST_LIST_MIME,
            'schemaVersion': 2,
            'manifests': entries,
        }, sort_keys=True)

    def resolve_all(self, target: Optional[Platform] = None
                    ) -> List[docker_image.DockerImage]:
        target = target or Platform()
        results = {}
        for platform, image in self._images:
            if isinstance(image, DockerImageList):
                # As FromRegistry does: a nested list is searched whatever
                # its entry says, and contributes images only.
                with image:
                    found = image.resolve_all(target)
            elif target.can_run(platform):
                found = [image]
            else:
                continue
            for child in found:
                results[child.digest()] = child
        return [results[digest] for digest in sorted(results)]

    def __iter__(self):
        return iter(self._images)

    def __enter__(self) -> 'FromList':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        pass


ALL_MANIFEST_MIMES = (media_types.MANIFEST_LIST_MIMES
                      + media_types.SUPPORTED_MANIFEST_MIMES)


def _media_type(manifest: Dict[str, Any], served: str) -> str:
    """The manifest's type: its own field, else schema 1 by its version,
    else the served type, else shape. Raises InvalidMediaTypeError when
    the type and `schemaVersion` disagree."""
    schema1 = manifest.get('schemaVersion') == 1
    if manifest.get('mediaType'):
        media_type = manifest['mediaType']
        if schema1 != (media_type in media_types.MANIFEST_SCHEMA1_MIMES):
            raise InvalidMediaTypeError(
                'the manifest says it is %s, but its schemaVersion is %s'
                % (media_type, json.dumps(manifest.get('schemaVersion'))))
        return media_type
    if schema1:
        return media_types.MANIFEST_SCHEMA1_SIGNED_MIME
    if served and served not in ('application/json', 'text/plain') \
            and served not in media_types.MANIFEST_SCHEMA1_MIMES:
        return served
    if 'manifests' in manifest:
        return media_types.OCI_IMAGE_INDEX_MIME
    return media_types.OCI_MANIFEST_MIME


def _probe(name: Union[docker_name.Tag, docker_name.Digest],
           basic_creds: docker_creds.Provider, transport
           ) -> Tuple['docker_http.Transport', bytes, str]:
    """(authenticated transport, manifest as served, its media type)."""
    from containerregistry.client.v2_2 import docker_http  # pylint: disable=import-outside-toplevel
    from containerregistry.client.v2_2 import registry_image  # pylint: disable=import-outside-toplevel
    transport = docker_http.Transport(name, basic_creds, transport,
                                      docker_http.PULL)
    probe = registry_image.FromRegistry.FromTransport(
        name, transport, ALL_MANIFEST_MIMES + media_types.MANIFEST_SCHEMA1_MIMES)
    raw = probe.manifest().encode('utf8')
    try:
        parsed = json.loads(raw)
    except ValueError as e:
        raise InvalidMediaTypeError('%s: the manifest is not JSON' % name) from e
    try:
        media_type = _media_type(parsed, probe.served_type())
    except InvalidMediaTypeError as e:
        raise InvalidMediaTypeError('%s: %s' % (name, e)) from None
    return transport, raw, media_type


@contextlib.contextmanager
def open_image(name: Union[docker_name.Tag, docker_name.Digest],
               basic_creds: docker_creds.Provider, transport,
               target: Optional[Platform] = None
               ) -> Iterator[docker_image.DockerImage]:
    """Opens NAME as one image; a list or index resolves to TARGET's child.

    One ping, one token and one manifest request serve the whole pull,
    where trying list, image and schema 1 in turn would repeat them.
    """
    from containerregistry.client.v2_2 import registry_image  # pylint: disable=import-outside-toplevel
    transport, raw, media_type = _probe(name, basic_creds, transport)
    if media_type in media_types.MANIFEST_LIST_MIMES:
        image_list = FromRegistry.FromTransport(
            name, transport, [media_type], raw, media_type)
        image = image_list.resolve(target)
    elif media_type in media_types.SUPPORTED_MANIFEST_MIMES:
        image = registry_image.FromRegistry.FromTransport(
            name, transport, [media_type], raw, media_type)
    elif media_type in media_types.MANIFEST_SCHEMA1_MIMES:
        # Imported here: schema 1 is rare, and the puller starts light.
        from containerregistry.client.v2 import docker_image as v2_image  # pylint: disable=import-outside-toplevel
        from containerregistry.client.v2_2 import v2_compat  # pylint: disable=import-outside-toplevel
        image = v2_compat.V22FromV2(
            v2_image.FromRegistry.FromTransport(name, transport, raw))
    else:
        raise InvalidMediaTypeError(
            '%s: manifests of type %s are not supported' % (name, media_type))
    with image:
        yield image


@contextlib.contextmanager
def open_whole(name: Union[docker_name.Tag, docker_name.Digest],
               basic_creds: docker_creds.Provider, transport
               ) -> Iterator[Union[DockerImageList, docker_image.DockerImage]]:
    """Opens NAME as served: a list or index as a list (its children
    unresolved), an image as an image. Schema 1 is refused: it cannot be
    kept byte for byte outside a registry that speaks it."""
    from containerregistry.client.v2_2 import registry_image  # pylint: disable=import-outside-toplevel
    transport, raw, media_type = _probe(name, basic_creds, transport)
    whole: Union[DockerImageList, docker_image.DockerImage]
    if media_type in media_types.MANIFEST_LIST_MIMES:
        whole = FromRegistry.FromTransport(name, transport, [media_type],
                                           raw, media_type)
    elif media_type in media_types.SUPPORTED_MANIFEST_MIMES:
        whole = registry_image.FromRegistry.FromTransport(
            name, transport, [media_type], raw, media_type)
    else:
        raise InvalidMediaTypeError(
            '%s: manifests of type %s cannot be kept as served in an OCI '
            'layout' % (name, media_type))
    with whole:
        yield whole
