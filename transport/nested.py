"""A base class for transports that wrap another transport.

Transports are httplib2-shaped: `request(uri, method='GET', body=None,
headers=None, ...) -> (resp, content)`. A streaming transport also has
`stream(uri, method='GET', body=None, headers=None) -> (resp, reader)`; a
wrapper offers `stream` exactly when the transport it wraps does, so
`hasattr(transport, 'stream')` tells callers whether they can stream.

The wrappers are `httplib2.Http` subclasses, as upstream's were, so callers
checking `isinstance(t, httplib2.Http)` accept them; nothing of
`httplib2.Http` itself is used. Only library callers import these modules:
the tools use `pooled_http` and never load httplib2.
"""
from typing import Any, NoReturn, Tuple

import httplib2


class NestedTransport(httplib2.Http):
    """Forwards every call to the wrapped `source_transport`."""

    def __init__(self, source_transport: Any) -> None:
        # httplib2.Http.__init__ is not called: its connections and
        # credentials would be unused, and misleading.
        self.source_transport = source_transport

    def add_credentials(self, *args: Any, **kwargs: Any) -> Any:
        return self.source_transport.add_credentials(*args, **kwargs)

    def add_certificate(self, *args: Any, **kwargs: Any) -> Any:
        return self.source_transport.add_certificate(*args, **kwargs)

    def clear_credentials(self, *args: Any, **kwargs: Any) -> Any:
        return self.source_transport.clear_credentials(*args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Tuple[Any, bytes]:
        return self.source_transport.request(*args, **kwargs)

    def close(self) -> None:
        """Closes the source's connections (httplib2.Http's own are unused)."""
        close = getattr(self.source_transport, 'close', None)
        if callable(close):
            close()

    def _stream(self, *args: Any, **kwargs: Any) -> Tuple[Any, Any]:
        """Opens a streamed request; subclasses override to add behaviour."""
        return self.source_transport.stream(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not found normally. `stream` exists
        # only if the source transport streams.
        if name == 'stream':
            transport = self.__dict__.get('source_transport')
            if transport is not None and callable(
                    getattr(transport, 'stream', None)):
                return self._stream
        raise AttributeError('%r object has no attribute %r' %
                             (type(self).__name__, name))

    def __getstate__(self) -> NoReturn:
        # Transports hold connections and credentials; copying them into
        # another process would silently share or drop those.
        raise NotImplementedError('%s cannot be pickled' % type(self).__name__)

    def __setstate__(self, state: Any) -> NoReturn:
        raise NotImplementedError('%s cannot be pickled' % type(self).__name__)
