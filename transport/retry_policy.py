"""When a request is tried again, how long to wait first, and when to stop.

Every layer that retries asks this module: the pooled transport, the
registry protocol (ping, token, manifests, tag lists), a resumed blob
download, an upload or manifest PUT started again, and the httplib2-era
`retry.RetryTransport`. A new rule is added here, once.

- Transient: a dropped, reset or refused connection, a timeout or a stalled
  transfer, and the statuses 408, 429 and 5xx (but 501, an answer). TLS and
  proxy refusals are not: trying again meets them again.
- Backoff: 0.5 s doubling per failure, at most 10 s, times a random factor
  in [0.5, 1.5) so that parallel downloads do not retry in step; a
  `Retry-After` (seconds or an HTTP date, at most 60 s) replaces it.
- Authentication: a 401 is met with fresh credentials once, not retried.
- Attempts: 4 per operation in all. Layers that retry the same operation
  share one budget (`Attempts.join`), so a download resumed after a drop
  whose resume also fails is not retried 4 x 4 times.
- Deadline: one for the whole process (`set_deadline`, the tools'
  `--timeout`); every socket wait and every backoff ends by it.
- Waits: a connect timeout (30 s), an idle-read timeout (60 s), and a
  transfer receiving less than 32 KiB in 30 s counts as stalled. Each can
  be changed with an environment variable (`CONTAINERREGISTRY_*`, see
  `setting`), mostly for tests.

A registry that accepts connections and never answers thus fails a request
after 4 idle timeouts and 3 backoffs: about 4 minutes by default.
"""
import datetime
import email.utils
import errno
import http.client
import logging
import os
import random
import socket
import sys
import threading
import time
from typing import Callable, List, Mapping, Optional, TypeVar

ATTEMPTS = 4
# A 401 is answered with fresh credentials (a new token) once.
AUTH_ATTEMPTS = 2
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0
MAX_RETRY_AFTER_SECONDS = 60.0

TIMEOUT_VARIABLE = 'CONTAINERREGISTRY_TIMEOUT'
# Defaults of the waits, each overridable by CONTAINERREGISTRY_<NAME>.
_SETTINGS = {
    'CONNECT_TIMEOUT': 30.0,
    'IDLE_TIMEOUT': 60.0,
    'STALL_WINDOW': 30.0,
    'STALL_BYTES': float(32 << 10),
}

# OS errors of a network that may come back.
_TRANSIENT_ERRNOS = frozenset([errno.ENETUNREACH, errno.EHOSTUNREACH,
                               errno.ENETDOWN, errno.ETIMEDOUT])

_T = TypeVar('_T')


class DeadlineExceeded(Exception):
    """The run's time limit (`--timeout`) ran out; never retried."""


class Stalled(TimeoutError):
    """A transfer kept its connection alive but moved too little data."""


def setting(name: str) -> float:
    """The wait NAME (`IDLE_TIMEOUT`, ...), from the environment if set there.

    Raises ValueError naming the variable for a value that is not a
    positive number.
    """
    variable = 'CONTAINERREGISTRY_' + name
    text = os.environ.get(variable, '').strip()
    if not text:
        return _SETTINGS[name]
    return positive_seconds(text, variable)


def positive_seconds(text: str, what: str) -> float:
    """TEXT as a positive number, or ValueError naming WHAT."""
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not value > 0 or value == float('inf'):
        raise ValueError('%s must be a positive number of seconds, not %r'
                         % (what, text))
    return value


def check_environment() -> None:
    """Raises ValueError if a CONTAINERREGISTRY_* wait is set wrongly."""
    for name in _SETTINGS:
        setting(name)


def transient_status(status: int) -> bool:
    """Whether an HTTP status may go away when asked again."""
    return status in (408, 429) or (500 <= status <= 599 and status != 501)


def transient_error(err: BaseException) -> bool:
    """Whether ERR may go away when the request is made again.

    An error may say so itself (`transient`), and one carrying an HTTP
    answer (`status`, as a registry's error does) is judged by its status.
    """
    if isinstance(err, DeadlineExceeded):
        return False
    verdict = getattr(err, 'transient', None)
    if verdict is not None:
        return bool(verdict)
    status = getattr(err, 'status', None)
    if isinstance(status, int) and isinstance(err, Exception) and not \
            isinstance(err, OSError):
        return transient_status(status)
    ssl = sys.modules.get('ssl')  # not loaded: ERR is no TLS error
    if ssl is not None and isinstance(err, ssl.SSLError):
        # A connection cut under TLS may heal; a certificate will not.
        return isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError))
    if isinstance(err, (ConnectionError, TimeoutError, http.client.IncompleteRead,
                        http.client.ResponseNotReady)):
        return True
    if isinstance(err, socket.gaierror):
        return err.errno == socket.EAI_AGAIN
    return isinstance(err, OSError) and err.errno in _TRANSIENT_ERRNOS


def retry_after(resp: Mapping[str, str],
                cap: float = MAX_RETRY_AFTER_SECONDS) -> float:
    """The seconds a `Retry-After` header asks for (a delay or an HTTP
    date), between 0 and CAP; 0 without one."""
    value = (resp.get('retry-after') or '').strip()
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return 0.0
    return min(max(seconds, 0.0), cap)


def backoff(failures: int, base: float = BACKOFF_SECONDS) -> float:
    """Seconds to wait after the FAILURES-th failure, with jitter."""
    delay = min(base * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
    return delay * random.uniform(0.5, 1.5)


# The deadline: (monotonic end, seconds, what set it).
_deadline: Optional[tuple] = None


def set_deadline(seconds: Optional[float], source: str = '--timeout') -> None:
    """Every wait of this process ends SECONDS from now (None: no limit).

    SOURCE names what set it, for the error line (`--timeout`, the
    environment variable).
    """
    global _deadline
    _deadline = None if seconds is None else (
        time.monotonic() + seconds, seconds, source)


def remaining() -> Optional[float]:
    """Seconds left before the deadline (maybe negative), None without one."""
    deadline = _deadline
    return None if deadline is None else deadline[0] - time.monotonic()


def deadline_error(what: str) -> DeadlineExceeded:
    """The error for a deadline that ran out while doing WHAT."""
    deadline = _deadline
    seconds, source = (deadline[1], deadline[2]) if deadline else (0, '?')
    return DeadlineExceeded('%s: gave up after %gs (%s %g)'
                            % (what, seconds, source, seconds))


def wait_limit(seconds: float, what: str) -> float:
    """SECONDS, or less if the deadline comes first; DeadlineExceeded (for
    WHAT) once it has passed."""
    left = remaining()
    if left is None:
        return seconds
    if left <= 0:
        raise deadline_error(what)
    return min(seconds, left)


def sleep(seconds: float, what: str = 'waiting to try again') -> None:
    """Sleeps SECONDS, or raises DeadlineExceeded (for WHAT) at once if
    the deadline comes first: waiting for it would only fail later."""
    left = remaining()
    if left is not None and seconds >= left:
        raise deadline_error(what)
    time.sleep(seconds)


_local = threading.local()


class Attempts:
    """The tries of one operation: a request, a download, an upload.

    `again()` after each transient failure says whether to try once more,
    after logging a WARNING and sleeping the backoff. Used as a context
    manager it becomes the thread's current budget, which `join()` hands to
    the layers below instead of a budget of their own.
    """

    def __init__(self, what: str, limit: int = ATTEMPTS,
                 base: float = BACKOFF_SECONDS):
        self.what = what
        self.limit = max(1, limit)
        self._base = base
        self._failures = 0

    @classmethod
    def join(cls, what: str, **kwargs) -> 'Attempts':
        """The thread's current budget if one is active, else a new one."""
        stack: List[Attempts] = getattr(_local, 'stack', [])
        return stack[-1] if stack else cls(what, **kwargs)

    def again(self, reason: str, delay: float = 0.0,
              what: Optional[str] = None) -> bool:
        """After a transient failure (REASON): True once the backoff (or
        DELAY, a Retry-After) has passed and another attempt may go; False
        when the attempts are spent. Raises DeadlineExceeded when the
        deadline would pass before the next attempt."""
        self._failures += 1
        if self._failures >= self.limit:
            return False
        what = what or self.what
        delay = delay or backoff(self._failures, self._base)
        left = remaining()
        if left is not None and delay >= left:
            raise deadline_error('%s: %s' % (what, reason))
        if not reason.startswith(what):
            reason = '%s: %s' % (what, reason)
        logging.warning('%s; trying again in %.1fs (attempt %d of %d)',
                        reason, delay, self._failures + 1, self.limit)
        time.sleep(delay)
        return True

    def __enter__(self) -> 'Attempts':
        stack = getattr(_local, 'stack', None)
        if stack is None:
            stack = _local.stack = []
        stack.append(self)
        return self

    def __exit__(self, *unused) -> None:
        _local.stack.pop()


def describe(err: BaseException) -> str:
    """ERR on one line, for a warning."""
    return ' '.join((str(err) or type(err).__name__).split())


def retried(what: str, action: Callable[[], _T],
            transient: Callable[[BaseException], bool] = transient_error) -> _T:
    """ACTION's result; it runs again after a TRANSIENT failure, within the
    thread's current budget (or a new one for WHAT)."""
    attempts = Attempts.join(what)
    with attempts:
        while True:
            try:
                return action()
            except Exception as err:  # pylint: disable=broad-except
                if not transient(err):
                    raise
                response = getattr(err, 'response', None)
                delay = retry_after(response) if isinstance(
                    response, Mapping) else 0.0
                if not attempts.again(describe(err), delay, what):
                    raise
