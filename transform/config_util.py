"""Pieces of image-config rewriting shared by the v1 and v2.2 metadata."""
import copy
import re
from typing import Any, Dict, List, Mapping, Optional

# What posix shells (and os.path.expandvars) treat as a variable reference.
_VARIABLE = re.compile(r'\$(\w+|\{[^}]*\})', re.ASCII)


def expand(value: str, environment: Mapping[str, Optional[str]]) -> str:
    """Expands `$NAME` and `${NAME}` in VALUE from ENVIRONMENT.

    Same result as `os.path.expandvars` with ENVIRONMENT as the process
    environment (what upstream did by swapping `os.environ`), without
    touching the process: unknown names stay literal and substituted text
    is not expanded again.
    """
    if '$' not in value:
        return value
    i = 0
    while True:
        match = _VARIABLE.search(value, i)
        if not match:
            return value
        i, j = match.span(0)
        name = match.group(1)
        if name.startswith('{') and name.endswith('}'):
            name = name[1:-1]
        replacement = environment.get(name)
        if replacement is None:
            i = j
            continue
        tail = value[j:]
        value = value[:i] + replacement
        i = len(value)
        value += tail


def deep_copy_skip_null(data: Any) -> Any:
    """A deep copy in which dict entries whose value is None are dropped.

    Only dicts nested in dicts are filtered; lists are copied as they are.
    """
    if isinstance(data, dict):
        return {deep_copy_skip_null(k): deep_copy_skip_null(v)
                for k, v in data.items() if v is not None}
    return copy.deepcopy(data)


def env_to_dict(entries: List[str]) -> Dict[str, Optional[str]]:
    """`K=V` entries as a dict; a bare `K` (no `=`) maps to None."""
    result: Dict[str, Optional[str]] = {}
    for entry in entries:
        key, sep, value = entry.partition('=')
        result[key] = value if sep else None
    return result


def dict_to_env(env: Mapping[str, Optional[str]]) -> List[str]:
    return [key if env[key] is None else '%s=%s' % (key, env[key])
            for key in sorted(env)]
