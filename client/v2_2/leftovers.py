"""Temporary names that say which process made them.

Outputs are written under temporary names and renamed when complete. A
process killed outright (SIGKILL, a power cut) leaves those behind. Their
names carry `PID@HOST`, so that a later run on the same host can tell a
leftover from a file another process is still writing, and remove it;
names from other hosts (a shared cache directory) are never touched. The
host part includes the PID namespace where Linux has one, since process
ids mean nothing across namespaces (containers, sandboxes).
"""
import functools
import os
import re
import shutil
import socket
import tempfile
from typing import List, Pattern, Tuple

# What `tag()` gives: PID@HOST.
TAG = r'\d+@[^@/]+'


@functools.lru_cache(maxsize=None)
def host() -> str:
    """The part of `tag()` after the `@`: HOSTNAME, or HOSTNAME:NAMESPACE
    with the inode of this process's PID namespace (read once)."""
    name = socket.gethostname().replace('/', '_').replace('@', '_') or 'localhost'
    try:
        return '%s:%d' % (name, os.stat('/proc/self/ns/pid').st_ino)
    except OSError:
        return name


def tag() -> str:
    """`PID@HOST` of this process, for temporary names."""
    return '%d@%s' % (os.getpid(), host())


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, as another user's
    return True


def abandoned(owner: str) -> bool:
    """True if OWNER (a `tag()`) is a process of this host that has ended."""
    pid, _, where = owner.partition('@')
    return where == host() and pid.isdigit() and not _running(int(pid))


def remove_abandoned(directory: str, pattern: Pattern) -> List[str]:
    """Removes the entries of DIRECTORY whose names match PATTERN and whose
    group 'owner' (a `tag()`) is `abandoned`; returns their names.

    A directory that cannot be listed has none.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        m = pattern.match(name)
        if not m or not abandoned(m.group('owner')):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                continue
        removed.append(name)
    return removed


def pattern(prefix: str, suffix: str) -> Pattern:
    """Names PREFIX + `tag()` + SUFFIX (regular expressions), the tag
    as group 'owner'."""
    return re.compile('%s(?P<owner>%s)%s$' % (prefix, TAG, suffix))


def create_beside(path: str) -> Tuple[int, str]:
    """A new hidden temporary file beside PATH, to be renamed to it.

    Returns (file descriptor, name); the name is `.BASE.PID@HOST.RANDOM.tmp`.
    Such files that processes no longer running left for PATH go first.
    """
    directory, base = os.path.split(os.path.abspath(path))
    prefix = '.%s.' % base
    remove_abandoned(directory, pattern(re.escape(prefix), r'\.[^./]+\.tmp'))
    return tempfile.mkstemp(prefix='%s%s.' % (prefix, tag()), suffix='.tmp',
                            dir=directory)

