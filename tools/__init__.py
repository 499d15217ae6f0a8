"""Command-line tools built as .par files."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'patched', 'platform_args', 'logging_setup', 'docker_appender',
    'docker_puller', 'docker_pusher', 'fast_puller', 'fast_flatten',
    'fast_importer', 'fast_pusher', 'image_digester', 'cli', 'errors',
    'registry_access',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
