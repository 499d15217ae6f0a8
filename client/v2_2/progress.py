"""Progress of blob transfers, for whoever wants to show it.

The sinks (`save.fast`, `save.oci_layout`, `docker_session.Push`) take a
`Reporter` and tell it what they expect to move, then per blob a
`Transfer` that counts bytes as chunks pass and is marked done once.
Counting a chunk is one integer addition on an object only its own thread
writes: no lock, no formatting, so it costs nothing measurable. Whoever
displays progress (the tools' terminal line) reads the counters from one
place at its own pace.

The base `Reporter` shows nothing; it logs one INFO line per finished
layer (`Pulled layer 2/5 sha256:... (12.3 MiB)`), which the default
WARNING level hides.
"""
import logging
import threading
import time
from typing import Iterable, List, Optional


def size_text(size: Optional[float]) -> str:
    """SIZE in bytes as people read it: `512 B`, `12.3 MiB`, `1.2 GiB`."""
    if size is None:
        return '? B'
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if size < 1024 or unit == 'GiB':
            return ('%d %s' % (size, unit) if unit == 'B'
                    else '%.1f %s' % (size, unit))
        size /= 1024
    raise AssertionError('unreachable')


class Transfer:
    """One blob on its way: `add(n)` per chunk, `done(...)` once at the end.

    A transfer started over (a retry, a second fetch after a damaged copy)
    calls `restart()`, so bytes are not counted twice.
    """

    __slots__ = ('digest', 'size', 'moved', '_reporter')

    def __init__(self, reporter: Optional['Reporter'], digest: str,
                 size: Optional[int]):
        self.digest = digest
        self.size = size
        self.moved = 0
        self._reporter = reporter

    def add(self, count: int) -> None:
        self.moved += count

    def restart(self) -> None:
        self.moved = 0

    def done(self, verb: str, note: str = '') -> None:
        """Logs `VERB layer I/N DIGEST (SIZE)NOTE` at INFO and counts it."""
        if self._reporter is not None:
            self._reporter._finished(self, verb, note)


def uncounted(digest: str = '') -> Transfer:
    """A transfer no reporter counts (a config blob, not a layer)."""
    return Transfer(None, digest, None)


class Reporter:
    """Counts layers and bytes expected and finished; shows nothing itself.

    `expect()` may be called more than once (a manifest list's children):
    the totals add up. Safe to use from the sinks' threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: Optional[float] = None
        self.total_layers = 0
        self.total_bytes: Optional[int] = 0
        self.layers_done = 0
        self._active: List[Transfer] = []
        # Bytes of finished transfers: all they account for, and what
        # actually went over the network (cache hits and skips move none).
        self._finished_bytes = 0
        self._finished_moved = 0

    def expect(self, sizes: Iterable[Optional[int]]) -> None:
        """Adds layers of SIZES (None where unknown) to the totals."""
        sizes = list(sizes)
        with self._lock:
            if self.started is None:
                self.started = time.monotonic()
            self.total_layers += len(sizes)
            if self.total_bytes is not None:
                if None in sizes:
                    self.total_bytes = None
                else:
                    self.total_bytes += sum(sizes)  # type: ignore[arg-type]

    def transfer(self, digest: str, size: Optional[int]) -> Transfer:
        """A new counted transfer of layer DIGEST, SIZE bytes if known."""
        transfer = Transfer(self, digest, size)
        with self._lock:
            self._active.append(transfer)
        return transfer

    def counts(self):
        """(bytes done, bytes moved over the network, layers done): done
        counts finished layers at their full size, moved only what was
        read or sent."""
        with self._lock:
            active = sum(t.moved for t in self._active)
            return (self._finished_bytes + active,
                    self._finished_moved + active, self.layers_done)

    def _finished(self, transfer: Transfer, verb: str, note: str) -> None:
        with self._lock:
            if transfer in self._active:
                self._active.remove(transfer)
            self.layers_done += 1
            index = self.layers_done
            size = transfer.size if transfer.size is not None \
                else transfer.moved
            self._finished_bytes += size
            self._finished_moved += transfer.moved
        logging.info('%s layer %d/%d %s (%s)%s', verb, index,
                     self.total_layers, transfer.digest, size_text(size),
                     note)

