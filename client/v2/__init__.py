"""Docker registry v2 protocol with schema 1 manifests."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'docker_creds', 'docker_http', 'util', 'docker_digest', 'docker_image',
    'v1_compat', 'docker_session', 'append',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
