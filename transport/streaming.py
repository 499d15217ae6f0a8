"""The transport interface the registry clients use.

Upstream's clients take an httplib2-shaped object whose `request()` returns
the whole body as bytes, which forces every blob through memory. The clients
here also accept an object with a `stream()` call that returns the body as a
file-like reader; `streaming()` adapts an httplib2-shaped object to that
interface with buffered reads, so existing callers keep working.
"""
import contextlib
import io
import threading
import urllib.parse
import weakref
from typing import BinaryIO, Mapping, Optional, Protocol, Tuple, Union

Body = Union[None, bytes, BinaryIO]


class Response(dict):
    """Response headers under lowercase keys, plus the status.

    Shaped like httplib2's response: a mapping with `.status` and `.reason`.
    `.url` is where it came from after the redirects the transport followed
    (None when the transport does not say: then the URL asked for).
    """

    url: Optional[str] = None

    def __init__(self, status: int, headers: Mapping[str, str] = {},  # noqa: B006 (never changed)
                 reason: str = ''):
        super().__init__((k.lower(), v) for k, v in dict(headers).items())
        self.status = int(status)
        self.reason = reason

    def __repr__(self) -> str:
        return '<Response %d %s>' % (self.status, self.reason)


def seekable_file(body: Body) -> Optional[BinaryIO]:
    """BODY if it is a file that can go back to where it stands now, so that
    a request can send it again; None for no body, bytes, or a pipe."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return None
    seekable = getattr(body, 'seekable', None)
    return body if seekable is not None and seekable() else None


class Reader(Protocol):
    """What `stream()` returns as the body: read it, then close it."""

    def read(self, amt: Optional[int] = None) -> bytes: ...

    def readinto(self, buffer: bytearray) -> int: ...

    def close(self) -> None: ...


class StreamingTransport(Protocol):
    """A thread-safe transport whose responses can be read incrementally."""

    def request(self, uri: str, method: str = 'GET', body: Body = None,
                headers: Optional[Mapping[str, str]] = None
                ) -> Tuple[Response, bytes]: ...

    def stream(self, uri: str, method: str = 'GET', body: Body = None,
               headers: Optional[Mapping[str, str]] = None
               ) -> Tuple[Response, Reader]: ...


# One lock per bare httplib2.Http object, whichever adapters wrap it.
_LOCKS: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _exclusive(transport):
    """A lock that serialises requests on TRANSPORT if it needs one.

    An httplib2.Http keeps one connection per host and is not thread-safe:
    two threads on it (a save or push with threads > 1, as rules_docker's
    bare `httplib2.Http()` allows) read each other's responses or hang.
    Pools (`transport_pool.Http`) and other transports are left alone.
    """
    if not type(transport).__module__.startswith('httplib2'):
        return contextlib.nullcontext()
    with _LOCKS_LOCK:
        lock = _LOCKS.get(transport)
        if lock is None:
            lock = _LOCKS[transport] = threading.Lock()
    return lock


class BufferedStreams:
    """Gives an httplib2-shaped transport a `stream()` that buffers the body."""

    def __init__(self, transport):
        self._transport = transport
        self._lock = _exclusive(transport)

    def request(self, uri: str, method: str = 'GET', body: Body = None,
                headers: Optional[Mapping[str, str]] = None
                ) -> Tuple[Response, bytes]:
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = body.read()
        with self._lock:
            resp, content = self._transport.request(
                uri, method=method, body=body, headers=dict(headers or {}))
        if not isinstance(resp, Response):
            previous = getattr(resp, 'previous', None)
            resp = Response(resp.status, resp, getattr(resp, 'reason', ''))
            if previous is not None and previous.get('location'):
                # httplib2 followed a redirect; the last one leads here.
                resp.url = urllib.parse.urljoin(uri, previous['location'])
        return resp, content

    def stream(self, uri: str, method: str = 'GET', body: Body = None,
               headers: Optional[Mapping[str, str]] = None
               ) -> Tuple[Response, Reader]:
        resp, content = self.request(uri, method, body, headers)
        return resp, io.BytesIO(content)


def streaming(transport) -> StreamingTransport:
    """Returns TRANSPORT if it streams, else a buffering adapter around it."""
    if hasattr(transport, 'stream'):
        return transport
    return BufferedStreams(transport)
