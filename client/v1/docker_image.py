"""v1 Docker images: the layer chain of a `docker save` tarball.

A v1 image is a chain of layers named by 64-hex ids; each layer has a
`json` (with `parent` naming the next one down) and a `layer.tar`. This
form survives in the v1 half of docker-save tarballs (`<id>/json`,
`<id>/layer.tar`, `repositories`), which rules_docker still reads and
writes through `FromShardedTarball` and `save`.

`FromRegistry` reads an image over the v1 registry protocol, which no
maintained registry serves any more; `docker_http` describes it.
"""
import abc
import hashlib
import io
import json
import string
import tarfile
import threading
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple, Union

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v1 import docker_http
from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import json_docs
from containerregistry.client.v2_2 import tarball_image

_CHUNK = 1 << 20

# Bad tarballs raise this (a ValueError), as the v2.2 reader does.
TarballError = tarball_image.TarballError


class DockerImage(abc.ABC):
    """A v1 image: `top()` and the chain of layers below it."""

    @abc.abstractmethod
    def top(self) -> str:
        """The id of the topmost layer."""

    @abc.abstractmethod
    def repositories(self) -> Dict[str, Dict[str, str]]:
        """`{repository: {tag: layer id}}`, as the `repositories` file says."""

    @abc.abstractmethod
    def json(self, layer_id: str) -> str:
        """The raw JSON metadata of LAYER_ID."""

    @abc.abstractmethod
    def layer(self, layer_id: str) -> bytes:
        """The gzipped tar of LAYER_ID."""

    @abc.abstractmethod
    def ancestry(self, layer_id: str) -> List[str]:
        """LAYER_ID, its parent, grandparent, ... down to the base."""

    def parent(self, layer_id: str) -> Optional[str]:
        """The id of LAYER_ID's parent, or None for the base layer."""
        metadata = _parse_json(self.json(layer_id), '%s/json' % layer_id)
        return metadata.get('parent') or None

    def uncompressed_layer(self, layer_id: str) -> bytes:
        """The tar of LAYER_ID."""
        with self.uncompressed_layer_stream(layer_id) as f:
            return f.read()

    def uncompressed_layer_stream(self, layer_id: str) -> BinaryIO:
        """A reader over the tar of LAYER_ID; close it when done.

        Sources that hold layers in files override this, so that writers
        copy layers through rather than hold them in memory.
        """
        return compression.gunzip_if_compressed(
            io.BytesIO(self.layer(layer_id)))[0]

    def uncompressed_layer_size(self, layer_id: str) -> Optional[int]:
        """The tar's size in bytes if known without reading it, else None."""
        return None

    def diff_id(self, digest: str) -> str:
        """`sha256:` + the hex sha256 of the tar of layer DIGEST.

        DIGEST is a layer id; the parameter keeps upstream's name, since
        callers pass it by keyword. (Upstream answered None here.)
        """
        h = hashlib.sha256()
        with self.uncompressed_layer_stream(digest) as f:
            for chunk in iter(lambda: f.read(_CHUNK), b''):
                h.update(chunk)
        return 'sha256:' + h.hexdigest()

    def __enter__(self) -> 'DockerImage':
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback) -> None:
        pass


def _parse_json(text: Union[str, bytes], what: str) -> Dict[str, Any]:
    return json_docs.parse_object(text, what, TarballError)


def _gzip(reader: BinaryIO, compresslevel: int) -> bytes:
    """READER gzipped with the fixed header upstream's layer digests need."""
    out = io.BytesIO()
    compression.gzip_stream(reader, out, compresslevel)
    return out.getvalue()


class FromShardedTarball(DockerImage):
    """A v1 image whose layers may sit in several docker-save tarballs.

    LAYER_TO_TARBALL maps a layer id to the path of the tarball holding
    `<id>/json` and `<id>/layer.tar`; TOP's tarball also holds
    `repositories`. Each tarball is indexed once; layers are then read in
    place (a compressed outer tar is first inflated once into a temporary
    file, removed on exit). NAME is kept for callers; COMPRESSLEVEL is the
    gzip level `layer()` uses.
    """

    def __init__(self, layer_to_tarball: Callable[[str], str], top: str,
                 name: Optional[Union[docker_name.Tag, str]] = None,
                 compresslevel: int = 9):
        self._layer_to_tarball = layer_to_tarball
        self._top = top
        self._name = name
        self._compresslevel = compresslevel
        self._lock = threading.Lock()
        self._workdir = tarball_image.Workdir()
        self._archives: Dict[str, tarball_image.Archive] = {}
        self._json: Dict[str, str] = {}
        self._diff_ids: Dict[str, str] = {}

    def _archive(self, tarball: str) -> tarball_image.Archive:
        with self._lock:
            archive = self._archives.get(tarball)
            if archive is None:
                archive = tarball_image.Archive(tarball, self._workdir)
                self._archives[tarball] = archive
            return archive

    def _tarball_of(self, layer_id: str) -> str:
        try:
            return self._layer_to_tarball(layer_id)
        except (KeyError, IndexError) as e:
            raise TarballError('no tarball holds layer %r' % layer_id) from e

    def _read_small(self, layer_id: str, member: str) -> bytes:
        return self._archive(self._tarball_of(layer_id)).read_small(member)

    def top(self) -> str:
        return self._top

    def repositories(self) -> Dict[str, Dict[str, str]]:
        tarball = self._tarball_of(self._top)
        archive = self._archive(tarball)
        if 'repositories' not in archive.entries:
            raise TarballError('%s has no repositories file (not a v1 '
                               'docker-save tarball)' % tarball)
        return _parse_json(archive.read_small('repositories'),
                           '%s: repositories' % tarball)

    def json(self, layer_id: str) -> str:
        with self._lock:
            cached = self._json.get(layer_id)
        if cached is not None:
            return cached
        raw = self._read_small(layer_id, layer_id + '/json')
        try:
            text = raw.decode('utf8')
        except UnicodeDecodeError as e:
            raise TarballError('%s/json is not UTF-8 (%s)'
                               % (layer_id, e)) from e
        with self._lock:
            self._json[layer_id] = text
        return text

    def parent(self, layer_id: str) -> Optional[str]:
        what = '%s: %s/json' % (self._tarball_of(layer_id), layer_id)
        parent = _parse_json(self.json(layer_id), what).get('parent') or None
        if parent is not None and not isinstance(parent, str):
            raise TarballError('%s: "parent" is not a string' % what)
        return parent

    def _layer_entry(self, layer_id: str) -> Tuple[tarball_image.Archive, Any]:
        archive = self._archive(self._tarball_of(layer_id))
        return archive, archive.lookup(layer_id + '/layer.tar')

    def uncompressed_layer_stream(self, layer_id: str) -> BinaryIO:
        archive, entry = self._layer_entry(layer_id)
        return archive.open(entry)

    def uncompressed_layer_size(self, layer_id: str) -> Optional[int]:
        return self._layer_entry(layer_id)[1].size

    def layer(self, layer_id: str) -> bytes:
        with self.uncompressed_layer_stream(layer_id) as f:
            return _gzip(f, self._compresslevel)

    def diff_id(self, digest: str) -> str:
        with self._lock:
            cached = self._diff_ids.get(digest)
        if cached is None:
            cached = super().diff_id(digest)
            with self._lock:
                self._diff_ids[digest] = cached
        return cached

    def ancestry(self, layer_id: str) -> List[str]:
        chain = [layer_id]
        seen = {layer_id}
        parent = self.parent(layer_id)
        while parent is not None:
            if parent in seen:
                raise TarballError('layer %s is its own ancestor' % parent)
            chain.append(parent)
            seen.add(parent)
            parent = self.parent(parent)
        return chain

    def __exit__(self, unused_type, unused_value, unused_traceback) -> None:
        """Removes temporary files; later use recreates what it needs."""
        with self._lock:
            self._archives = {path: archive
                              for path, archive in self._archives.items()
                              if not archive.temporary}
            self._workdir.cleanup()


def _top_of(tarball: str, repositories: Dict[str, Any],
            name: Optional[Union[docker_name.Tag, str]]) -> str:
    """The layer id REPOSITORIES gives NAME, or its only tag's without NAME."""
    if name is not None:
        tag = (docker_name.Tag(name, strict=False) if isinstance(name, str)
               else name)
        tags = repositories.get(str(tag.as_repository()))
        layer_id = tags.get(tag.tag) if isinstance(tags, dict) else None
        if not isinstance(layer_id, str):
            known = sorted('%s:%s' % (r, t) for r, ts in repositories.items()
                           if isinstance(ts, dict) for t in ts)
            raise TarballError('%s has no image tagged %s (tags: %s)'
                               % (tarball, tag, ', '.join(known) or 'none'))
        return layer_id
    if len(repositories) != 1:
        raise TarballError('%s holds %d repositories; give a name to choose '
                           'one' % (tarball, len(repositories)))
    (repo, tags), = repositories.items()
    if not isinstance(tags, dict) or len(tags) != 1:
        raise TarballError('%s: repository %s does not hold exactly one tag; '
                           'give a name to choose one' % (tarball, repo))
    (_, layer_id), = tags.items()
    if not isinstance(layer_id, str):
        raise TarballError('%s: repositories file maps %s to a non-string'
                           % (tarball, repo))
    return layer_id


class FromTarball(FromShardedTarball):
    """The v1 image in one docker-save tarball.

    The top layer comes from the `repositories` file: NAME's entry, or the
    only tag there is when NAME is None.
    """

    def __init__(self, tarball: str,
                 name: Optional[Union[docker_name.Tag, str]] = None,
                 compresslevel: int = 9):
        super().__init__(lambda unused_id: tarball, '', name=name,
                         compresslevel=compresslevel)
        try:
            self._top = _top_of(tarball, self.repositories(), name)
        except BaseException:
            self._workdir.cleanup()
            raise


class FromRegistry(DockerImage):
    """A v1 image on a v1 registry, read over the v1 protocol.

    Entering it opens the session: the index (NAME's registry) gets
    BASIC_CREDS once and names the endpoint and token that serve the
    images; the repository's tags are read then. NAME is a Tag for `top()`,
    or a Repository to list tags. Layers are fetched whole on each call;
    JSON and ancestries are kept.
    """

    def __init__(self, name: docker_name.Repository,
                 basic_creds: docker_creds.Provider, transport):
        self._name = name
        self._creds = basic_creds
        self._transport = transport
        self._tags: Dict[str, str] = {}
        self._endpoint = ''
        self._token_creds: docker_creds.Provider = docker_creds.Anonymous()
        self._lock = threading.Lock()
        self._json: Dict[str, str] = {}
        self._ancestry: Dict[str, List[str]] = {}

    def _get(self, url: str, max_bytes: Optional[int]) -> bytes:
        return docker_http.Request(self._transport, url, self._token_creds,
                                   [200], max_bytes=max_bytes)[1]

    def _document(self, url: str) -> Tuple[str, Any]:
        """The text at URL (capped, UTF-8) and its parsed JSON."""
        content = self._get(url, docker_http.MAX_DOCUMENT_BYTES)
        try:
            text = content.decode('utf8')
            return text, json.loads(text)
        except ValueError as e:
            raise docker_http.BadStateException(
                'GET %s: not JSON (%s)' % (url, e)) from e

    def top(self) -> str:
        if not isinstance(self._name, docker_name.Tag):
            raise ValueError('%s names no tag, so it has no top layer'
                             % self._name)
        try:
            return self._tags[self._name.tag]
        except KeyError:
            raise KeyError('%s: no such tag in %s (tags: %s)' % (
                self._name.tag, self._name.as_repository(),
                ', '.join(sorted(self._tags)) or 'none')) from None

    def repositories(self) -> Dict[str, Dict[str, str]]:
        return {self._name.repository: self._tags}

    def tags(self) -> List[str]:
        """The tags of the repository."""
        return list(self.raw_tags().keys())

    def raw_tags(self) -> Dict[str, str]:
        """`{tag: layer id}` of the repository."""
        return self._tags

    def json(self, layer_id: str) -> str:
        with self._lock:
            cached = self._json.get(layer_id)
        if cached is not None:
            return cached
        text, metadata = self._document(
            docker_http.ImageUrl(self._endpoint, layer_id, 'json'))
        if not isinstance(metadata, dict) or metadata.get('id') != layer_id:
            raise docker_http.BadStateException(
                '%s: the JSON served for image %s is not its own'
                % (self._endpoint, layer_id))
        with self._lock:
            self._json[layer_id] = text
        return text

    def layer(self, layer_id: str) -> bytes:
        return self._get(docker_http.ImageUrl(self._endpoint, layer_id,
                                              'layer'), None)

    def ancestry(self, layer_id: str) -> List[str]:
        with self._lock:
            cached = self._ancestry.get(layer_id)
        if cached is not None:
            return list(cached)
        _, chain = self._document(
            docker_http.ImageUrl(self._endpoint, layer_id, 'ancestry'))
        if (not isinstance(chain, list) or not chain or chain[0] != layer_id
                or not all(isinstance(i, str) for i in chain)):
            raise docker_http.BadStateException(
                '%s: the ancestry served for image %s does not start with it'
                % (self._endpoint, layer_id))
        with self._lock:
            self._ancestry[layer_id] = chain
        return list(chain)

    def __enter__(self) -> 'FromRegistry':
        registry = self._name.registry
        index = '%s://%s/v1/repositories/%s/' % (
            docker_http.Scheme(registry), registry, self._name.repository)
        resp, _ = docker_http.Request(
            self._transport, index + 'images', self._creds, [200],
            max_bytes=docker_http.MAX_DOCUMENT_BYTES)
        self._endpoint, self._token_creds = docker_http.EndpointAccess(
            resp, registry, self._creds)
        url = '%s/v1/repositories/%s/tags' % (self._endpoint,
                                              self._name.repository)
        _, tags = self._document(url)
        if not isinstance(tags, dict) or not all(
                isinstance(v, str) for v in tags.values()):
            raise docker_http.BadStateException(
                'GET %s: not a JSON object of tags to image ids' % url)
        self._tags = tags
        return self


def _tar_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo('./' + name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Random(DockerImage):
    """A v1 image of NUM_LAYERS random layers, for tests.

    SAMPLE(population, k) draws K items of the bytes POPULATION with
    replacement (e.g. `lambda p, k: bytes(random.choices(p, k=k))`); ids
    and contents come from it, so a seeded SAMPLE gives the same image. Each
    layer holds one file of LAYER_BYTE_SIZE printable bytes, or of the next
    of BLOBS (one layer per blob) when given.
    """

    def __init__(self, sample: Callable[[bytes, int], Any], num_layers: int = 5,
                 layer_byte_size: int = 64,
                 blobs: Optional[Sequence[bytes]] = None):
        self._sample = sample
        self._ancestry: List[str] = []
        self._layers: Dict[str, bytes] = {}
        for i in range(len(blobs) if blobs else num_layers):
            layer_id = self._next_id()
            while layer_id in self._layers:
                layer_id = self._next_id()
            data = (blobs[i] if blobs else
                    self._draw(string.printable.encode('ascii'),
                               layer_byte_size))
            tar = _tar_of(self._next_id(), data)
            self._ancestry.append(layer_id)
            self._layers[layer_id] = _gzip(io.BytesIO(tar), 9)

    def _draw(self, population: bytes, k: int) -> bytes:
        return bytes(self._sample(population, k))

    def _next_id(self) -> str:
        return self._draw(b'0123456789abcdef', 64).decode('ascii')

    def _index(self, layer_id: str) -> int:
        try:
            return self._ancestry.index(layer_id)
        except ValueError:
            raise ValueError('unknown layer id %r' % layer_id) from None

    def top(self) -> str:
        return self._ancestry[0]

    def repositories(self) -> Dict[str, Dict[str, str]]:
        return {'random/image': {'latest': self.top()}}

    def json(self, layer_id: str) -> str:
        index = self._index(layer_id)
        metadata = {'id': layer_id}
        if index + 1 < len(self._ancestry):
            metadata['parent'] = self._ancestry[index + 1]
        return json.dumps(metadata, sort_keys=True)

    def layer(self, layer_id: str) -> bytes:
        self._index(layer_id)
        return self._layers[layer_id]

    def ancestry(self, layer_id: str) -> List[str]:
        return self._ancestry[self._index(layer_id):]
