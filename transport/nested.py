"""A base class for transports that wrap another transport.

Transports are httplib2-shaped: `request(uri, method='GET', body=None,
headers=None, ...) -> (resp, content)`. A streaming transport also has
`stream(uri, method='GET', body=None, headers=None) -> (resp, reader)`; a
wrapper offers `stream` exactly when the transport it wraps does, so
`hasattr(transport, 'stream')` tells callers whether they can stream.
"""
from typing import Any, Tuple


class NestedTransport:
    """Forwards every call to the wrapped (source) transport."""

    def __init__(self, source_transport: Any) -> None:
        self._transport = source_transport

    def add_credentials(self, *args: Any, **kwargs: Any) -> Any:
        return self._transport.add_credentials(*args, **kwargs)

    def add_certificate(self, *args: Any, **kwargs: Any) -> Any:
        return self._transport.add_certificate(*args, **kwargs)

    def clear_credentials(self, *args: Any, **kwargs: Any) -> Any:
        return self._transport.clear_credentials(*args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Tuple[Any, bytes]:
        return self._transport.request(*args, **kwargs)

    def _stream(self, *args: Any, **kwargs: Any) -> Tuple[Any, Any]:
        """Opens a streamed request; subclasses override to add behaviour."""
        return self._transport.stream(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not found normally. `stream` exists
        # only if the source transport streams.
        if name == 'stream':
            transport = self.__dict__.get('_transport')
            if transport is not None and callable(
                    getattr(transport, 'stream', None)):
                return self._stream
        raise AttributeError('%r object has no attribute %r' %
                             (type(self).__name__, name))

    def __getstate__(self) -> Any:
        # Transports hold connections and credentials; copying them into
        # another process would silently share or drop those.
        raise TypeError('%s cannot be pickled' % type(self).__name__)
