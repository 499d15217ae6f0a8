"""Image names, credentials and registry clients."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'docker_name', 'docker_creds', 'monitor', 'v1', 'v2', 'v2_2',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
