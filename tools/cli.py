"""Argument parsing and entry-point helpers shared by the command-line tools.

The tools' `--help` output is a compatibility contract: it must equal the
text upstream printed with Python <= 3.8 argparse on an 80-column terminal,
whatever Python 3.10+ and whatever `$COLUMNS` we run under. Newer argparse
titles the optionals `options:`, renders `nargs='*'` as `[X ...]` and wraps
at the terminal width, so the parsers built here undo those three changes.
Usage lines are passed in verbatim because upstream's were hand-edited.
"""
import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
from typing import Callable, Iterator, NoReturn, Optional

# The help width upstream's text was produced with: argparse wraps at the
# terminal's columns minus two.
COLUMNS = 80
WIDTH = COLUMNS - 2
MAX_HELP_POSITION = 24
OPTIONALS_TITLE = 'optional arguments'

_USAGE_PREFIX = 'usage: '


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter pinned to upstream's layout.

    The width is fixed (not read from the terminal), and `nargs='*'` shows
    the pre-3.9 form `[X [X ...]]`.
    """

    def __init__(self, prog: str, indent_increment: int = 2,
                 max_help_position: int = MAX_HELP_POSITION,
                 width: Optional[int] = None, **kwargs) -> None:
        super().__init__(prog, indent_increment=indent_increment,
                         max_help_position=max_help_position, width=WIDTH,
                         **kwargs)

    def _format_args(self, action: argparse.Action,
                     default_metavar: str) -> str:
        if action.nargs == argparse.ZERO_OR_MORE:
            metavar = self._metavar_formatter(action, default_metavar)(2)
            return '[%s [%s ...]]' % metavar
        return super()._format_args(action, default_metavar)


def _parser_options() -> dict:
    """Keyword arguments that switch off newer argparse's extras.

    Python 3.14 colours help and errors when the terminal (or FORCE_COLOR)
    allows it, and 3.15 adds "maybe you meant" to errors; the contract is
    upstream's plain text.
    """
    if sys.version_info >= (3, 14):
        return {'color': False, 'suggest_on_error': False}
    return {}


def new_parser(prog: str, description: str,
               usage: str) -> argparse.ArgumentParser:
    """Builds a parser whose help reproduces upstream's text.

    Args:
      prog: the program name shown in usage and errors (`puller.par`).
      description: the paragraph printed after the usage.
      usage: the usage text after `usage: `, line breaks and continuation
        indentation included; a leading `usage: ` is tolerated. It is
        printed as given (argparse's `%(prog)s` substitution applies), so it
        must list every visible flag, extra flags after `--stderrthreshold`.
    """
    if usage.startswith(_USAGE_PREFIX):
        usage = usage[len(_USAGE_PREFIX):]
    parser = argparse.ArgumentParser(
        prog=prog, description=description, usage=usage.rstrip(),
        formatter_class=HelpFormatter, **_parser_options())
    parser._optionals.title = OPTIONALS_TITLE
    return parser


def rename(parser: argparse.ArgumentParser, prog: str) -> None:
    """Gives a tool's parser another program name, its usage text otherwise
    unchanged: continuation lines keep their alignment under the first
    flag."""
    old = parser.prog
    shift = len(prog) - len(old)
    first, *rest = (parser.usage or '').split('\n')
    if first.startswith(old):
        first = prog + first[len(old):]
    rest = [' ' * (len(line) - len(line.lstrip()) + shift) + line.lstrip()
            for line in rest]
    parser.prog = prog
    parser.usage = '\n'.join([first] + rest)


TIMEOUT_HELP = ('Give up after this many seconds (default: '
                '$CONTAINERREGISTRY_TIMEOUT, else no limit; a registry that '
                'stops answering fails the run within 5 minutes anyway).')


def _seconds(text: str) -> float:
    from containerregistry.transport import retry_policy
    try:
        return retry_policy.positive_seconds(text, '--timeout')
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_timeout_flag(parser: argparse.ArgumentParser) -> None:
    """Adds `--timeout SECONDS` (list it last in the usage text)."""
    parser.add_argument('--timeout', type=_seconds, metavar='SECONDS',
                        help=TIMEOUT_HELP)


INSECURE_REGISTRY_HELP = (
    'Reach this registry (HOST[:PORT], as in image names; repeatable) by '
    'https without verifying its certificate, or by plain http when it does '
    'not speak TLS. $CONTAINERREGISTRY_INSECURE_REGISTRIES adds more '
    '(comma-separated).')


def _registry_name(text: str) -> str:
    from containerregistry.transport import insecure
    try:
        return insecure.normalize(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_insecure_registry_flag(parser: argparse.ArgumentParser) -> None:
    """Adds `--insecure-registry HOST[:PORT]` (repeatable; list it after
    `--log-file`, before `--timeout`)."""
    parser.add_argument('--insecure-registry', action='append',
                        type=_registry_name, metavar='HOST[:PORT]',
                        help=INSECURE_REGISTRY_HELP)


# Set while run() runs the tool: only then may the deadline arm SIGALRM.
_running = False
# After the deadline, how long the tool's own waits (which end by it) may
# take to report before the alarm ends the run.
_ALARM_SLACK = 2.0


def start_deadline(args: argparse.Namespace) -> None:
    """Starts the run's deadline: `--timeout`, else $CONTAINERREGISTRY_TIMEOUT.

    Every network wait ends by it (see transport/retry_policy.py). Under
    run(), an alarm shortly after it ends the run too, whatever it waits
    for. A bad value of the variable (or of another CONTAINERREGISTRY_*
    wait) is a fatal one-line error.
    """
    from containerregistry.transport import retry_policy
    variable = retry_policy.TIMEOUT_VARIABLE
    seconds, source = getattr(args, 'timeout', None), '--timeout'
    try:
        retry_policy.check_environment()
        if seconds is None and os.environ.get(variable, '').strip():
            seconds, source = retry_policy.positive_seconds(
                os.environ[variable], variable), variable
    except ValueError as e:
        fatal('%s', e)
    retry_policy.set_deadline(seconds, source)
    if seconds is None:
        return
    from containerregistry.client import docker_creds
    docker_creds.set_helper_deadline(seconds)
    _STOPS[signal.SIGALRM] = (TimedOut, 1, 'Error: the run took longer than '
                              '%gs (%s %g).' % (seconds, source, seconds))
    if (_running
            and threading.current_thread() is threading.main_thread()):
        signal.signal(signal.SIGALRM, _stop)
        signal.setitimer(signal.ITIMER_REAL, seconds + _ALARM_SLACK)


def chdir_to_caller() -> None:
    """Under `bazel run`, resolves relative paths against the caller's cwd.

    `bazel run` starts the tool in its runfiles tree and names the caller's
    directory in $BUILD_WORKING_DIRECTORY. Every process it starts inherits
    that variable, so it counts only while the tool runs in a runfiles tree:
    a script run by `bazel run` that changes directory and calls the tool
    keeps its own directory. Relative entries of sys.path are made absolute
    first, so imports done later (lazily) still find their modules, e.g.
    when the tool runs as `python relative/path/puller.par`.
    """
    target = os.environ.get('BUILD_WORKING_DIRECTORY')
    if not target or not any(part.endswith('.runfiles')
                             for part in os.getcwd().split(os.sep)):
        return
    sys.path[:] = [os.path.abspath(entry) for entry in sys.path]
    try:
        os.chdir(target)
    except OSError as e:
        sys.stderr.write('error: cannot change to %s, the directory bazel run '
                         'was called from (BUILD_WORKING_DIRECTORY): %s\n'
                         % (target, e.strerror or e))
        sys.exit(1)


# C0 controls, DEL and the C1 controls.
_CONTROL = re.compile(r'[\x00-\x1f\x7f-\x9f]')


def fatal(message: str, *args: object) -> NoReturn:
    """Logs one CRITICAL line (like upstream's `logging.fatal`) and exits 1.

    `message` and `args` are combined the way logging does (`%` only when
    args are given). The line names the caller's file and line, as
    upstream's did. Control characters (a name ending in a newline) are
    shown escaped, so the error stays one line.
    """
    text = message % args if args else message
    logging.getLogger().critical('%s', _CONTROL.sub(
        lambda m: repr(m.group())[1:-1], text), stacklevel=2)
    sys.exit(1)


def say(line: str) -> None:
    """Prints LINE on stdout, where tools put their results.

    A stdout that cannot take it (a full disk, a closed pipe) is one error
    line and status 1, not a traceback; stdout then goes to /dev/null so
    that the interpreter's exit does not fail on it again.
    """
    try:
        sys.stdout.write(line + '\n')
        sys.stdout.flush()
    except OSError as e:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        fatal('cannot write to standard output: %s', e.strerror or e)


@contextlib.contextmanager
def removed_on_failure(directory: str) -> Iterator[None]:
    """Removes DIRECTORY if the block fails (also on Ctrl-C and SIGTERM)
    and the directory did not exist before it: a failed run then leaves no
    trace. Only empty directories go; files are the block's to remove."""
    created = not os.path.lexists(directory)
    try:
        yield
    except BaseException:
        if created:
            for path, _, _ in os.walk(directory, topdown=False):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
        raise


class TimedOut(BaseException):
    """The run's deadline passed and the tool was still waiting."""


class Terminated(BaseException):
    """SIGTERM arrived (what Bazel and CI runners send to stop a tool).

    A BaseException, like KeyboardInterrupt, so that the tools' `except
    Exception` clauses let it through while `finally` clauses and context
    managers still remove temporary files on the way out.
    """


# How long cleanup may take after SIGTERM or Ctrl-C before the process just
# ends (threads still fetching a blob over the network are not waited for).
GRACE_SECONDS = 10.0
# The running grace timer; a signal's handler is reset on first use, so
# there is at most one per signal.
_grace_timer: Optional[threading.Timer] = None
# What each stopping signal raises, and the status and line it ends with.
_STOPS = {
    signal.SIGTERM: (Terminated, 143, 'Terminated.'),
    signal.SIGINT: (KeyboardInterrupt, 130, 'Interrupted.'),
    signal.SIGALRM: (TimedOut, 1, 'Error: the run took longer than its '
                     'timeout (--timeout or $CONTAINERREGISTRY_TIMEOUT).'),
}


def _end(status: int, line: str) -> NoReturn:
    sys.stderr.write(line + '\n')
    sys.stderr.flush()
    os._exit(status)  # pylint: disable=protected-access


def _stop(signum, frame) -> NoReturn:
    """Unwinds the tool, within GRACE_SECONDS; the same signal again kills it."""
    global _grace_timer
    del frame
    exception, status, line = _STOPS[signum]
    signal.signal(signum, signal.SIG_DFL)
    _grace_timer = threading.Timer(GRACE_SECONDS, _end, (status, line))
    _grace_timer.daemon = True
    _grace_timer.start()
    raise exception()


def run(main: Callable[[], object]) -> None:
    """Runs a tool's `main()` as the process entry point.

    Applies `chdir_to_caller()` first. Ctrl-C ends the tool with status 130
    and SIGTERM with 143 (128 + 15), each with one line and no traceback,
    and so does the deadline's alarm (`start_deadline`), with status 1,
    after the tool's cleanup ran (for GRACE_SECONDS at most; the same signal
    again ends it at once). Other errors are the tool's to turn into
    `fatal()` lines; anything left uncaught keeps Python's traceback and
    status 1.

    On success the process ends without the interpreter's teardown: by then
    every file is closed and every thread joined, and tearing down a few
    hundred modules costs more than a small pull (measured in bench/).
    """
    global _running
    chdir_to_caller()
    previous = {signum: signal.signal(signum, _stop) for signum in _STOPS}
    _running = True
    try:
        main()
    except (KeyboardInterrupt, Terminated, TimedOut) as stopped:
        # The tool has unwound; threads stuck on the network may remain,
        # and the interpreter's teardown would wait for them.
        if _grace_timer is not None:
            _grace_timer.cancel()
            _grace_timer.join()
        logging.shutdown()
        sys.stdout.flush()
        _end(*next(stop[1:] for stop in _STOPS.values()
                   if isinstance(stopped, stop[0])))
    finally:
        _running = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # pylint: disable=protected-access
