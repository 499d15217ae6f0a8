"""Image metadata transformations."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'v1', 'v2_2', 'config_util',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
