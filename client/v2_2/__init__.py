"""Docker registry v2 protocol with schema 2, manifest lists and OCI."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'docker_creds', 'docker_digest', 'docker_http', 'docker_image',
    'append', 'docker_image_list', 'oci_compat', 'v2_compat',
    'docker_session', 'save', 'compression', 'disk_image', 'flatten',
    'inflater', 'leftovers', 'outputs', 'platform', 'registry_image',
    'tarball_image', 'tarball_writer',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
