"""JSON documents of an image (manifests, configs, indexes) read as objects.

Offline sources and sinks read them too, so this lives apart from the
registry protocol.
"""
import json
from typing import Any, Dict, Type, Union


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
