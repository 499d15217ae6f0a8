"""JSON documents of an image (manifests, configs, indexes) read as objects.

Offline sources and sinks read them too, so this lives apart from the
registry protocol.
"""
import json
from typing import Any, Dict, List, Type, Union

# The most a manifest, config, index or tag list may hold: they are read
# whole, and one that never ends must not grow the process until it dies.
MAX_DOCUMENT_BYTES = 8 << 20


def parse_object(content: Union[str, bytes], what: str,
                 error: Type[Exception]) -> Dict[str, Any]:
    """CONTENT parsed as a JSON object, else ERROR naming WHAT."""
    try:
        parsed = json.loads(content)
    except ValueError as e:
        raise error('%s is not valid JSON (%s)' % (what, e)) from None
    if not isinstance(parsed, dict):
        raise error('%s is not a JSON object' % what)
    return parsed


def read_capped(reader, what: str, error: Type[Exception],
                limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """All of READER, or ERROR once it passes LIMIT bytes."""
    parts: List[bytes] = []
    total = 0
    while True:
        chunk = reader.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            return b''.join(parts)
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise error('%s: more than %d MiB, too large to be a manifest '
                        'or config' % (what, limit >> 20))
