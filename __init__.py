"""Python libraries and tools for Docker / OCI container registries.

Every package offers its modules as attributes, as upstream's did
(`containerregistry.client.v2_2.docker_image` after importing only the
package), but loads a module on first use: a tool imports just what it runs.
"""
import sys
from typing import Any, Callable, Dict, Iterable, List, Tuple


def _submodules(package: Dict[str, Any], names: Iterable[str]
                ) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """A package's `__getattr__` and `__dir__` loading NAMES on first use.

    PACKAGE is the package's globals(). `sys` and `__import__` are used
    rather than importlib, which a tool would otherwise load just for this.
    """
    known = frozenset(names)
    prefix = package['__name__'] + '.'

    def __getattr__(name: str) -> Any:
        if name not in known:
            raise AttributeError('module %r has no attribute %r'
                                 % (package['__name__'], name))
        __import__(prefix + name)
        return sys.modules[prefix + name]

    def __dir__() -> List[str]:
        return sorted(set(package) | known)

    return __getattr__, __dir__


__all__ = ['client', 'tools', 'transform', 'transport']
__getattr__, __dir__ = _submodules(globals(), __all__)
