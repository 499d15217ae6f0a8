"""Platform requirements of manifest-list entries, and matching targets.

See https://docs.docker.com/registry/spec/manifest-v2-2/#manifest-list.
Matching keeps containerregistry's rules (the list entry's fields must be
met by the target) with three fixes:

- arm64 without a variant and arm64/v8 are the same platform (Docker Hub
  lists arm64 images as `arm64/v8`);
- entries with os or architecture `unknown` (the attestation manifests that
  buildx adds) never match;
- an empty string for os.version or variant (rules_docker passes `''` for
  unset attributes) means "not given".
"""
from typing import Any, Iterator, Mapping

DEFAULT_ARCHITECTURE = 'amd64'
DEFAULT_OS = 'linux'
_UNKNOWN = 'unknown'
# Architectures whose variant-less form equals this variant.
_DEFAULT_VARIANTS = {'arm64': 'v8'}


def _as_set(value: Any) -> set[str]:
    """A feature list as a set; strings are split on whitespace."""
    if not value:
        return set()
    if isinstance(value, str):
        value = [value]
    result: set[str] = set()
    for item in value:
        result.update(str(item).split())
    return result


class Platform:
    """The runtime requirements (or capabilities) of an image.

    Keys: architecture, os, os.version, os.features, variant, features.
    Always truthy: `can_run(None)` is the only "no requirement" case.
    """

    def __init__(self, content: Mapping[str, Any] | None = None):
        self._content = dict(content or {})

    def architecture(self) -> str:
        return self._content.get('architecture') or DEFAULT_ARCHITECTURE

    def os(self) -> str:
        return self._content.get('os') or DEFAULT_OS

    def os_version(self) -> str | None:
        return self._content.get('os.version') or None

    def os_features(self) -> set[str]:
        return _as_set(self._content.get('os.features'))

    def variant(self) -> str | None:
        return self._content.get('variant') or None

    def features(self) -> set[str]:
        return _as_set(self._content.get('features'))

    def _variant_satisfies(self, required: 'Platform') -> bool:
        wanted = required.variant()
        if not wanted:
            return True
        have = self.variant()
        if wanted == have:
            return True
        default = _DEFAULT_VARIANTS.get(self.architecture())
        return have is None and wanted == default

    def can_run(self, required: 'Platform | None') -> bool:
        """True if this (target) platform can run an image needing `required`.

        Architecture and os must be equal; os.version and variant must be
        equal when `required` sets them; required os.features and features
        must be subsets of ours. None requires nothing.
        """
        if not required:
            return True
        if _UNKNOWN in (required.os(), required.architecture()):
            return False
        if required.architecture() != self.architecture():
            return False
        if required.os() != self.os():
            return False
        wanted_version = required.os_version()
        if wanted_version and wanted_version != self.os_version():
            return False
        if not self._variant_satisfies(required):
            return False
        if not required.os_features().issubset(self.os_features()):
            return False
        if not required.features().issubset(self.features()):
            return False
        return True

    def compatible_with(self, target: 'Platform') -> bool:
        """True if an image needing this platform runs on `target`."""
        return target.can_run(self)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """Items with architecture and os filled in, so `dict(p)` works."""
        content = dict(self._content)
        content['architecture'] = self.architecture()
        content['os'] = self.os()
        return iter(content.items())

    def __repr__(self) -> str:
        return 'Platform(%r)' % dict(self)

