"""glog-style logging for the command-line tools.

Log lines look like upstream's (and glog's), e.g.
`I1127 02:40:00.123456   12345 fast_puller.py:99] msg`, so tools that scrape
or display them keep working. The field named `time_millis` holds
microseconds, as upstream's did.
"""
import argparse
import logging
import os
import sys
import threading
from typing import Dict, Optional, Protocol, Union

FORMAT = ('%(shortlevel)s%(asctime)s.%(time_millis)06d %(process_str)s '
          '%(filename)s:%(lineno)d] %(message)s')
TIMESTAMP_FORMAT = '%m%d %H:%M:%S'

# glog's numeric severities, accepted by --stderrthreshold besides names.
GLOG_LEVELS = {
    '0': logging.INFO,
    '1': logging.WARNING,
    '2': logging.ERROR,
    '3': logging.CRITICAL,
}
_NAMED_LEVELS = {
    'DEBUG': logging.DEBUG,
    'INFO': logging.INFO,
    'WARN': logging.WARNING,
    'WARNING': logging.WARNING,
    'ERROR': logging.ERROR,
    'CRITICAL': logging.CRITICAL,
    'FATAL': logging.CRITICAL,
}


class Formatter(logging.Formatter):
    """Formats records as `LMMDD HH:MM:SS.uuuuuu PID file:line] msg`."""

    def __init__(self) -> None:
        super().__init__(fmt=FORMAT, datefmt=TIMESTAMP_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.CRITICAL:
            record.shortlevel = 'F'
        else:
            record.shortlevel = record.levelname[:1]
        # Rounded like datetime does, but never up into the next second,
        # which asctime (truncated to the second) would not show.
        fraction = record.created - int(record.created)
        record.time_millis = min(round(fraction * 1_000_000), 999_999)
        if record.process is None:
            record.process_str = '???????'
        else:
            record.process_str = '% 7d' % record.process
        return super().format(record)


def ParseLevel(value: Union[str, int]) -> int:
    """Turns a --stderrthreshold value into a logging level.

    Accepts Python level names in any case (plus FATAL and WARN) and glog's
    numeric severities 0-3 (INFO, WARNING, ERROR, FATAL). Raises ValueError
    with a readable message otherwise.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    level = GLOG_LEVELS.get(text, _NAMED_LEVELS.get(text.upper()))
    if level is None:
        raise ValueError(
            'invalid level %r: use DEBUG, INFO, WARNING, ERROR, CRITICAL '
            '(or FATAL), or glog severity 0-3' % value)
    return level


def _threshold(value: str) -> int:
    try:
        return ParseLevel(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def DefineCommandLineArgs(argparser: argparse.ArgumentParser) -> None:
    """Adds --stderrthreshold; a bad value is an argparse usage error.

    The parsed value is the numeric logging level.
    """
    argparser.add_argument(
        '--stderrthreshold', action='store', type=_threshold,
        help='Write log events at or above this level to stderr.')


def DefineLogFileArg(argparser: argparse.ArgumentParser) -> None:
    """Adds --log-file, which Init() honours (the tools add it after their
    other flags)."""
    argparser.add_argument(
        '--log-file', action='store', metavar='LOG_FILE',
        help=('Also append log events at or above the --stderrthreshold '
              'level to this file, which several processes may share and '
              'which rotates at %d MiB, keeping %d old files.'
              % (LOG_FILE_MAX_BYTES >> 20, LOG_FILE_BACKUPS)))


# When a --log-file rotates, and how many rotated files it keeps.
LOG_FILE_MAX_BYTES = 10 << 20
LOG_FILE_BACKUPS = 5


class StatusLine(Protocol):
    """A line drawn in place at the bottom of stderr (the progress line)."""

    lock: threading.Lock

    def erase(self) -> None:
        """Erases the line if shown; the caller holds `lock`."""


_status_line: Optional[StatusLine] = None


def set_status_line(line: Optional[StatusLine]) -> None:
    """Makes the stderr handler erase LINE before each record it writes
    (None: no line to erase). The line's owner draws it again later."""
    global _status_line
    _status_line = line


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time (it may be replaced),
    on a line of its own when a status line is drawn."""

    def __init__(self) -> None:
        super().__init__()

    def emit(self, record: logging.LogRecord) -> None:
        line = _status_line
        if line is None:
            super().emit(record)
            return
        with line.lock:
            line.erase()
            super().emit(record)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_handler: Optional[logging.Handler] = None
# The --log-file handlers made so far, by absolute path.
_file_handlers: Dict[str, logging.Handler] = {}


def Init(args: Optional[argparse.Namespace] = None) -> None:
    """Sends log records to stderr in glog format.

    Adds one stderr handler to the root logger (calling Init again adds no
    second one). If `args.stderrthreshold` is set, the root logger's level
    becomes it; otherwise the level is left alone, so INFO stays hidden
    under the default WARNING.
    """
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = _StderrHandler()
        _handler.setFormatter(Formatter())
    if _handler not in root.handlers:
        root.addHandler(_handler)
    threshold = getattr(args, 'stderrthreshold', None) if args else None
    if threshold is not None and threshold != '':
        root.setLevel(ParseLevel(threshold))
    log_file = getattr(args, 'log_file', None) if args else None
    if log_file:
        path = os.path.abspath(log_file)
        if path not in _file_handlers:
            _file_handlers[path] = _file_handler(log_file, path)
        if _file_handlers[path] not in root.handlers:
            root.addHandler(_file_handlers[path])


def _file_handler(given: str, path: str) -> logging.Handler:
    """A glog-format handler appending to PATH (GIVEN as the user wrote it), safe to share between
    processes (concurrent-log-handler locks the file around each record and
    each rotation). Imported only here, so tools without --log-file do not
    load it. A file that cannot be opened is one error line and status 1.
    """
    from concurrent_log_handler import ConcurrentRotatingFileHandler
    try:
        # The handler opens the file on first use and would report a bad
        # path with a traceback per record: open it once here instead.
        with open(path, 'a', encoding='utf-8'):
            pass
        handler = ConcurrentRotatingFileHandler(
            path, maxBytes=LOG_FILE_MAX_BYTES,
            backupCount=LOG_FILE_BACKUPS, encoding='utf-8')
    except OSError as e:
        sys.stderr.write('error: cannot open log file %s: %s\n'
                         % (given, e.strerror or e))
        sys.exit(1)
    handler.setFormatter(Formatter())
    return handler
