"""One-line descriptions of the errors a tool reports to its user."""
import errno
import os
from typing import Callable, Optional, cast

_PROJECT = 'containerregistry.'
# The output's filesystem cannot take more: whatever raised it, the line
# names where the tool was writing.
_FULL = frozenset([errno.ENOSPC, errno.EDQUOT])


def find(err: Optional[BaseException],
         matches: Callable[[BaseException], bool]) -> Optional[BaseException]:
    """The first of ERR and its causes (or the errors it was raised while
    handling) that MATCHES, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if matches(err):
            return err
        err = err.__cause__ or err.__context__
    return None


def _full_disk(err: BaseException) -> Optional[OSError]:
    """The ENOSPC/EDQUOT error among ERR and its causes, if any."""
    return cast(Optional[OSError], find(
        err, lambda e: isinstance(e, OSError) and e.errno in _FULL))


def describe(err: BaseException, output: Optional[str] = None) -> str:
    """A single line saying what went wrong, without a traceback.

    Exceptions the project raises on purpose (its own classes, including
    those of the running tool) and OS errors carry messages written for
    users; anything else is prefixed
    with its type, which makes an unexpected error recognisable in a bug
    report. With OUTPUT (where the tool writes), a full disk names it:
    `cannot write OUTPUT: No space left on device`.
    """
    full = _full_disk(err) if output is not None else None
    if full is not None:
        text = 'cannot write %s: %s' % (
            output, full.strerror or os.strerror(full.errno or 0))
    elif isinstance(err, OSError) and err.filename and err.strerror:
        text = '%s: %s' % (err.strerror, err.filename)
    elif (isinstance(err, OSError) or type(err).__module__ == '__main__'
          or type(err).__module__.startswith(_PROJECT)):
        text = str(err) or type(err).__name__
    else:
        text = '%s: %s' % (type(err).__name__, err)
    return ' '.join(text.split())
