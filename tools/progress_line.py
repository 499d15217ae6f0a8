"""The tools' progress line: one updating line on a terminal, nothing else.

When stderr is a terminal, a transfer shows `Pulling 12.3/120.0 MiB,
8.1 MiB/s, 2/5 layers`, redrawn in place (`\\r`, erase to the end of the
line) by one timer thread at most ten times a second; the sinks' threads
only add to counters. Log lines are written above it: the stderr handler
erases the line first (`logging_setup.set_status_line`) and the next tick
draws it again. A run that succeeds leaves the final line, ended by a
newline; one that fails erases it, so the error line stands alone. When
stderr is not a terminal (CI, Bazel) nothing is drawn: the layer lines
at INFO are all there is.
"""
import contextlib
import os
import sys
import threading
import time
from typing import Iterator, List, Optional, Tuple

from containerregistry.client.v2_2 import progress
from containerregistry.tools import logging_setup

# Seconds between redraws, and the window the rate is measured over.
_TICK = 0.1
_RATE_WINDOW = 3.0
_ERASE = '\r\x1b[K'


class TerminalLine(progress.Reporter):
    """A Reporter that draws its counts on a terminal's last line."""

    def __init__(self, verb: str):
        super().__init__()
        self._verb = verb
        # Held while the line is drawn or erased, and by the log handler
        # around each record it writes.
        self.lock = threading.Lock()
        self._shown = False
        self._samples: List[Tuple[float, int]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='progress-line')

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(_TICK):
            self._draw()

    @staticmethod
    def _out():
        return sys.stderr

    def text(self, now: float, verb: str, whole_run: bool = False) -> str:
        """The line for the counts at NOW (monotonic seconds): the rate is
        over the last few seconds, or over the WHOLE_RUN."""
        done, moved, layers = self.counts()
        self._samples.append((now, moved))
        while len(self._samples) > 2 and now - self._samples[0][0] > _RATE_WINDOW:
            self._samples.pop(0)
        first_time, first_moved = self._samples[0]
        if whole_run and self.started is not None:
            first_time, first_moved = self.started, 0
        elapsed = now - first_time
        rate = (moved - first_moved) / elapsed if elapsed > 0 else 0.0
        total = ('/' + progress.size_text(self.total_bytes)
                 if self.total_bytes is not None else '')
        return '%s %s%s, %s/s, %d/%d layers' % (
            verb, progress.size_text(done), total, progress.size_text(rate),
            layers, self.total_layers)

    def _draw(self, final_verb: Optional[str] = None) -> None:
        """Draws the line; with FINAL_VERB, the last one, with a newline."""
        if self.started is None:
            return
        line = self.text(time.monotonic(), final_verb or self._verb,
                         whole_run=bool(final_verb))
        end = '\n' if final_verb else ''
        with self.lock:
            try:
                self._out().write(_ERASE + line + end)
                self._out().flush()
            except (OSError, ValueError):
                return
            self._shown = not end

    def erase(self) -> None:
        """Erases the line if it is shown (the caller holds `lock`)."""
        if self._shown:
            try:
                self._out().write(_ERASE)
            except (OSError, ValueError):
                pass
            self._shown = False

    def stop(self, success: bool, done_verb: str) -> None:
        """Stops redrawing; leaves the final line (SUCCESS) or none."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        if success:
            self._draw(done_verb)
        else:
            with self.lock:
                self.erase()
                try:
                    self._out().flush()
                except (OSError, ValueError):
                    pass


def _is_terminal(stream) -> bool:
    """Whether STREAM is a terminal that can redraw a line (`TERM=dumb`,
    Emacs' shell for one, cannot erase)."""
    if os.environ.get('TERM') == 'dumb':
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def on_stderr(verb: str, done_verb: str) -> Iterator[progress.Reporter]:
    """A Reporter for the block: a TerminalLine saying VERB (then DONE_VERB
    at the end) when stderr is a terminal, else one that only logs a line
    per layer at INFO."""
    if not _is_terminal(sys.stderr):
        yield progress.Reporter()
        return
    line = TerminalLine(verb)
    logging_setup.set_status_line(line)
    line.start()
    success = False
    try:
        yield line
        success = True
    finally:
        line.stop(success, done_verb)
        logging_setup.set_status_line(None)
