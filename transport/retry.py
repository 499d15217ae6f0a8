"""A transport wrapper that retries requests failing with transient errors.

Only exceptions are retried (an HTTP error status is an answer, not a
failure of the transport). Between attempts it sleeps
`backoff_factor * 2**n` for the n-th retry: 1 s then 2 s by default.

Upstream retried only `IncompleteRead` and `ResponseNotReady`; what else
is transient (dropped connections, timeouts, an unreachable network) is
`retry_policy`'s decision, as everywhere in the library, and no sleep
outlasts its deadline. A request whose body is a stream is retried only if
the stream can be rewound (`seek`).

`RetryTransport` is an `httplib2.Http` (see nested); the tools do not use
this module, so httplib2 costs their start-up nothing.
"""
import http.client
import logging
import socket
from typing import Any, Callable, Optional, Tuple

import httplib2

from containerregistry.transport import nested
from containerregistry.transport import retry_policy

DEFAULT_SOURCE_TRANSPORT_CALLABLE = httplib2.Http
DEFAULT_MAX_RETRIES = 2
DEFAULT_BACKOFF_FACTOR = 0.5
RETRYABLE_EXCEPTION_TYPES = [
    http.client.IncompleteRead,
    http.client.ResponseNotReady,
    ConnectionError,
    socket.timeout,
]

_sleep = retry_policy.sleep


def ShouldRetry(err: BaseException) -> bool:
    """Whether `err` is one of RETRYABLE_EXCEPTION_TYPES or otherwise
    transient for `retry_policy`; never an error that says it is final."""
    if getattr(err, 'transient', None) is False or isinstance(
            err, retry_policy.DeadlineExceeded):
        return False
    return (isinstance(err, tuple(RETRYABLE_EXCEPTION_TYPES))
            or retry_policy.transient_error(err))


def _body(args: Tuple[Any, ...], kwargs: dict) -> Any:
    if 'body' in kwargs:
        return kwargs['body']
    return args[2] if len(args) > 2 else None


def _rewinder(body: Any) -> Optional[Callable[[], None]]:
    """A callable readying `body` for another attempt, or None if it can't."""
    if body is None or isinstance(body, (bytes, bytearray, memoryview, str)):
        return lambda: None
    seek = getattr(body, 'seek', None)
    tell = getattr(body, 'tell', None)
    if not (callable(seek) and callable(tell)):
        return None
    try:
        position = tell()
    except (OSError, ValueError):
        return None
    return lambda: seek(position)


class RetryTransport(nested.NestedTransport):
    """Retries `request` (and `stream`, if the source streams) on errors.

    A retried `stream` call is only the opening of the stream: an error
    while reading the returned body is the caller's to handle.
    """

    def __init__(self, source_transport: Any,
                 max_retries: int = DEFAULT_MAX_RETRIES,
                 backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
                 should_retry_fn: Callable[[BaseException], bool] = ShouldRetry
                 ) -> None:
        super().__init__(source_transport)
        self._max_retries = max_retries
        self._backoff_factor = backoff_factor
        self._should_retry = should_retry_fn

    def _call(self, fn: Callable[..., Any], args: Tuple[Any, ...],
              kwargs: dict) -> Any:
        rewind = _rewinder(_body(args, kwargs))
        retries = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                if (rewind is None or retries >= self._max_retries
                        or not self._should_retry(err)):
                    raise
                try:
                    rewind()
                except (OSError, ValueError):
                    raise err from None
                retries += 1
                delay = self._backoff_factor * 2 ** retries
                logging.error('Retrying after exception %s: %s '
                              '(retry %d of %d in %gs).', type(err).__name__,
                              err, retries, self._max_retries, delay)
                _sleep(delay)

    def request(self, *args: Any, **kwargs: Any) -> Tuple[Any, bytes]:
        return self._call(self.source_transport.request, args, kwargs)

    def _stream(self, *args: Any, **kwargs: Any) -> Tuple[Any, Any]:
        return self._call(self.source_transport.stream, args, kwargs)


class Factory:
    """Builds RetryTransports; `Build` fits `transport_pool.Http`'s factory.

    Chain the `With*` setters, e.g.
    `Factory().WithSourceTransportCallable(httplib2.Http).Build`.
    """

    def __init__(self) -> None:
        self.kwargs: dict = {}
        self.source_transport_callable: Callable[[], Any] = (
            DEFAULT_SOURCE_TRANSPORT_CALLABLE)

    def WithSourceTransportCallable(
            self, source_transport_callable: Callable[[], Any]) -> 'Factory':
        self.source_transport_callable = source_transport_callable
        return self

    def WithMaxRetries(self, max_retries: int) -> 'Factory':
        self.kwargs['max_retries'] = max_retries
        return self

    def WithBackoffFactor(self, backoff_factor: float) -> 'Factory':
        self.kwargs['backoff_factor'] = backoff_factor
        return self

    def WithShouldRetryFunction(
            self, should_retry_fn: Callable[[BaseException], bool]
    ) -> 'Factory':
        self.kwargs['should_retry_fn'] = should_retry_fn
        return self

    def Build(self) -> RetryTransport:
        return RetryTransport(self.source_transport_callable(), **self.kwargs)
