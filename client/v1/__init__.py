"""Docker registry v1 protocol and image format."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'docker_creds', 'docker_http', 'docker_image', 'docker_session', 'save',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
