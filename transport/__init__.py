"""HTTP transports: streaming, retries, pooling."""
from containerregistry import _submodules

# Loaded on first use (see containerregistry/__init__.py).
__all__ = [
    'nested', 'retry', 'transport_pool', 'pooled_http', 'proxy_env',
    'certs_d', 'insecure',
    'streaming',
]
__getattr__, __dir__ = _submodules(globals(), __all__)
