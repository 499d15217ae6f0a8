"""A thread-safe pool of transports.

httplib2.Http objects must not be shared between threads, so the tools'
worker threads borrow one transport per request from a fixed-size pool and
give it back afterwards; a thread finding the pool empty waits.

Streaming: if the pooled transports have `stream(...) -> (resp, reader)`,
the pool has `stream` too. The transport stays borrowed while the body is
read, just as `request` keeps it until the body is in memory, and goes back
to the pool when the reader is closed (`close()` or leaving a `with`
block; a reader dropped without closing gives it back when collected). The
pool makes no assumption that streaming transports are thread-safe.

`Http` is an `httplib2.Http` subclass, as upstream's was (see nested).
"""
import threading
from typing import Any, Callable, List, Tuple

import httplib2


class _BorrowedReader:
    """A stream's body; closing it returns the transport to the pool."""

    def __init__(self, reader: Any, release: Callable[[], None]) -> None:
        self._reader = reader
        self._release = release
        self._lock = threading.Lock()
        self._released = False

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._give_back()

    def _give_back(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._release()

    def __enter__(self) -> '_BorrowedReader':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self):
        return iter(self._reader)

    def __getattr__(self, name: str) -> Any:
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self._reader, name)

    def __del__(self) -> None:
        if not self.__dict__.get('_released', True):
            self._give_back()


class Http(httplib2.Http):
    """Pools `size` transports made by `transport_factory` (httplib2-shaped).

    All transports are built up front; `request` borrows one for the call.
    """

    def __init__(self, transport_factory: Callable[[], Any],
                 size: int = 2) -> None:
        # httplib2.Http.__init__ is not called: the pooled transports do
        # the work.
        if size < 1:
            raise ValueError('a transport pool needs size >= 1, not %r' % size)
        self._condition = threading.Condition(threading.Lock())
        self._transports: List[Any] = [
            transport_factory() for _ in range(size)]
        self._streams = callable(getattr(self._transports[0], 'stream', None))

    def _get_transport(self) -> Any:
        with self._condition:
            while not self._transports:
                self._condition.wait()
            return self._transports.pop()

    def _return_transport(self, transport: Any) -> None:
        with self._condition:
            self._transports.append(transport)
            self._condition.notify()

    def request(self, *args: Any, **kwargs: Any) -> Tuple[Any, bytes]:
        transport = self._get_transport()
        try:
            return transport.request(*args, **kwargs)
        finally:
            self._return_transport(transport)

    def close(self) -> None:
        """Closes the pooled transports' connections (those not lent out)."""
        with self._condition:
            idle = list(self._transports)
        for transport in idle:
            close = getattr(transport, 'close', None)
            if callable(close):
                close()

    def _stream(self, *args: Any, **kwargs: Any) -> Tuple[Any, Any]:
        transport = self._get_transport()
        try:
            resp, reader = transport.stream(*args, **kwargs)
        except BaseException:
            self._return_transport(transport)
            raise
        return resp, _BorrowedReader(
            reader, lambda: self._return_transport(transport))

    def __getattr__(self, name: str) -> Any:
        # `stream` exists only when the pooled transports stream.
        if name == 'stream' and self.__dict__.get('_streams'):
            return self._stream
        raise AttributeError('%r object has no attribute %r' %
                             (type(self).__name__, name))
