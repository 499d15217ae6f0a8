"""An exclusive lock between processes, taken on a file, with a bounded wait.

Writers that read, change and rewrite a shared file (an OCI layout's
`index.json`) take turns with it: without the lock, two of them read the
same old file and the last rename drops the other's change. The lock is an
`fcntl` lock, so the kernel releases it when its holder dies, even by
SIGKILL; the lock file itself stays (removing it would let a waiter and a
newcomer lock two different files).
"""
import contextlib
import fcntl
import os
import time
from typing import Iterator

# How long a writer waits for the lock before giving up; holders keep it
# only while they rewrite one small file.
WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.02


class LockTimeout(Exception):
    """The lock stayed taken for the whole wait."""


@contextlib.contextmanager
def exclusive(path: str, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Holds an exclusive lock on PATH (created if missing) for the block.

    Raises LockTimeout when another process holds it for WAIT seconds.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        'gave up after %g s waiting for the lock on %s, held '
                        'by another process' % (wait, path)) from None
                time.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(fd)
