"""v2.2 image config transformations."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'metadata',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
