"""Command-line flags that select a platform from a manifest list.

rules_docker passes every flag, unset ones as empty-string words
(`--variant ""`, `--os-features ""`), and multi-value lists as one
space-joined word (`--features "sse4 aes"`). Values are therefore split on
whitespace and empty ones mean "not given".
"""
import argparse
from typing import Any, Iterable

from containerregistry.client.v2_2.platform import Platform


def AddArguments(parser: argparse.ArgumentParser) -> None:
    """Adds the platform flags, in the order and wording of the help text."""
    parser.add_argument(
        '--os', action='store',
        help='For multi-platform manifest lists, specifies the operating '
        'system.')
    parser.add_argument(
        '--os-version', action='store',
        help='For multi-platform manifest lists, specifies the operating '
        'system version.')
    parser.add_argument(
        '--os-features', action='store', nargs='*',
        help='For multi-platform manifest lists, specifies operating system '
        'features.')
    parser.add_argument(
        '--architecture', action='store',
        help='For multi-platform manifest lists, specifies the CPU '
        'architecture.')
    parser.add_argument(
        '--variant', action='store',
        help='For multi-platform manifest lists, specifies the CPU variant.')
    parser.add_argument(
        '--features', action='store', nargs='*',
        help='For multi-platform manifest lists, specifies CPU features.')


# (Platform key, argparse attribute, takes a list), in flag order.
_FIELDS = (
    ('os', 'os', False),
    ('os.version', 'os_version', False),
    ('os.features', 'os_features', True),
    ('architecture', 'architecture', False),
    ('variant', 'variant', False),
    ('features', 'features', True),
)


def _words(values: Iterable[str] | None) -> list[str]:
    """Whitespace-split words of all values, empties dropped, order kept."""
    words: list[str] = []
    for value in values or []:
        for word in value.split():
            if word not in words:
                words.append(word)
    return words


def given(args: Any) -> list[str]:
    """The platform flags given a value (empty values are not), e.g.
    `['--architecture']`."""
    content = _content(args)
    return ['--' + attr.replace('_', '-') for key, attr, _ in _FIELDS
            if key in content]


def _content(args: Any) -> dict[str, Any]:
    """Platform key -> value of the flags given a value."""
    content: dict[str, Any] = {}
    for key, attr, is_list in _FIELDS:
        value = getattr(args, attr, None)
        if is_list:
            words = _words([value] if isinstance(value, str) else value)
            if words:
                content[key] = words
        elif value and value.strip():
            content[key] = value.strip()
    return content


def FromArgs(args: Any) -> Platform:
    """The Platform described by the parsed flags; unset or empty are left out.

    Absent keys take Platform's defaults (linux/amd64).
    """
    return Platform(_content(args))
