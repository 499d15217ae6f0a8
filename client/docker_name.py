"""Structured image names: registry, repository, tag and digest.

Parsing follows the historical containerregistry rules exactly, because
callers (rules_docker, the CLI tools) depend on them:

- the first path component is a registry only if it contains '.' or ':',
  so `localhost/x` is a Docker Hub repository;
- there is no `library/` prefixing and no `docker.io` mapping;
- repositories are 2..255 characters, tags 1..127, digests exactly 71;
- (stricter than the historical rules) a repository's path components are
  never empty, `.` or `..`, so a name means one repository;
- strict parsing requires an explicit registry and an explicit tag.
"""
import os
import sys
import urllib.parse

_REPOSITORY_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789_-./'
_TAG_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789_-.ABCDEFGHIJKLMNOPQRSTUVWXYZ'
# Digests look like sha256:<64 hex>; only the character set and the length
# are checked, not the literal prefix.
_DIGEST_CHARS = 'sh:0123456789abcdef'

_APP = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'console'
USER_AGENT = '//containerregistry/client:%s' % _APP

DEFAULT_DOMAIN = 'index.docker.io'
DEFAULT_TAG = 'latest'


class BadNameException(Exception):
    """Raised when a docker name cannot be parsed or fails validation."""


def _check_element(name: str, element: str, characters: str,
                   min_len: int | None, max_len: int | None) -> None:
    """Raises BadNameException naming which part of the name is wrong."""
    length = len(element)
    if min_len and length < min_len:
        raise BadNameException('Invalid %s: %s, must be at least %s characters'
                               % (name, element, min_len))
    if max_len and length > max_len:
        raise BadNameException('Invalid %s: %s, must be at most %s characters'
                               % (name, element, max_len))
    allowed = set(characters)
    if any(c not in allowed for c in element):
        raise BadNameException(
            'Invalid %s: %s, acceptable characters include: %s'
            % (name, element, characters))


def _check_repository(repository: str) -> None:
    _check_element('repository', repository, _REPOSITORY_CHARS, 2, 255)
    # The registry resolves `a/../b` to `b` (by a redirect), so such a name
    # would mean another repository than it reads as.
    if any(part in ('', '.', '..') for part in repository.split('/')):
        raise BadNameException(
            'Invalid repository: %s, path components must not be empty, '
            '"." or ".."' % repository)


def _check_tag(tag: str) -> None:
    _check_element('tag', tag, _TAG_CHARS, 1, 127)


def _check_digest(digest: str) -> None:
    _check_element('digest', digest, _DIGEST_CHARS, 7 + 64, 7 + 64)


def _check_registry(registry: str) -> None:
    """A registry is valid when it parses back as exactly a URL authority."""
    try:
        netloc = urllib.parse.urlparse('//' + registry).netloc
    except ValueError:
        netloc = None
    if registry != netloc:
        raise BadNameException('Invalid registry: %s' % registry)
    try:
        port = urllib.parse.urlsplit('//' + registry).port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536 or registry.endswith(':'):
        raise BadNameException('Invalid registry: %s (bad port)' % registry)


class Registry:
    """A registry host (optionally with port); '' means Docker Hub."""

    def __init__(self, name: str, strict: bool = True):
        if strict:
            if not name:
                raise BadNameException(
                    'A Docker registry domain must be specified.')
            _check_registry(name)
        self._registry = name

    @property
    def registry(self) -> str:
        return self._registry or DEFAULT_DOMAIN

    def __str__(self) -> str:
        return self._registry

    def __repr__(self) -> str:
        return '%s(%r)' % (type(self).__name__, str(self))

    def _key(self) -> tuple:
        """What equality and hashing compare; subclasses add their parts."""
        return (self.registry,)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and \
            self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def scope(self, unused_action: str) -> str:
        """Token scope; the only registry-level resource is the catalog."""
        return 'registry:catalog:*'


class Repository(Registry):
    """A repository, optionally prefixed by its registry."""

    def __init__(self, name: str, strict: bool = True):
        if not name:
            raise BadNameException('A Docker image name must be specified')

        domain = ''
        repo = name
        parts = name.split('/', 1)
        if len(parts) == 2 and ('.' in parts[0] or ':' in parts[0]):
            domain, repo = parts

        super().__init__(domain, strict=strict)
        self._repository = repo
        _check_repository(self._repository)

    @property
    def repository(self) -> str:
        return self._repository

    def _repository_str(self) -> str:
        base = Registry.__str__(self)
        if base:
            return '%s/%s' % (base, self._repository)
        return self._repository

    def __str__(self) -> str:
        return self._repository_str()

    def _key(self) -> tuple:
        return (self.registry, self.repository)

    def as_repository(self) -> 'Repository':
        """The repository part; already validated, so parsed non-strict."""
        return Repository(self._repository_str(), strict=False)

    def scope(self, action: str) -> str:
        return 'repository:%s:%s' % (self._repository, action)


class Tag(Repository):
    """A repository plus a tag; strict parsing requires an explicit tag."""

    def __init__(self, name: str, strict: bool = True):
        parts = name.rsplit(':', 1)
        if len(parts) == 2:
            base, tag = parts
        else:
            base, tag = name, ''
        self._tag = tag
        # A given tag is always validated; an absent one only when strict.
        # So `host:5000/repo` fails even non-strict ('5000/repo' as a tag).
        if self._tag or strict:
            _check_tag(self._tag)
        super().__init__(base, strict=strict)

    @property
    def tag(self) -> str:
        return self._tag or DEFAULT_TAG

    def __str__(self) -> str:
        base = self._repository_str()
        if self._tag:
            return '%s:%s' % (base, self._tag)
        return base

    def _key(self) -> tuple:
        return (self.registry, self.repository, self.tag)


class Digest(Repository):
    """A repository plus a content digest (`repo@sha256:...`)."""

    def __init__(self, name: str, strict: bool = True):
        parts = name.split('@')
        if len(parts) != 2:
            raise BadNameException(
                'Docker image name must be fully qualified (e.g. '
                'registry/repository@digest) saw: %s' % name)
        self._digest = parts[1]
        _check_digest(self._digest)
        super().__init__(parts[0], strict=strict)

    @property
    def digest(self) -> str:
        return self._digest

    def __str__(self) -> str:
        return '%s@%s' % (self._repository_str(), self._digest)

    def _key(self) -> tuple:
        return (self.registry, self.repository, self.digest)


def from_string(name: str) -> Registry:
    """Parses strictly as Digest, Tag, Repository, then Registry.

    The first type that accepts the name wins, so a Tag is only returned
    when the name carries an explicit tag.
    """
    for name_type in (Digest, Tag, Repository, Registry):
        try:
            return name_type(name, strict=True)
        except BadNameException:
            pass
    raise BadNameException(
        "'%s' is not a valid Tag, Digest, Repository or Registry" % name)
