"""Output files of the tools: complete and together, or not at all.

Each output is written under a temporary name beside its target (named by
`leftovers`, so a killed run's files are recognised later) and renamed once
every output is complete. Devices, FIFOs and `/dev/stdout` are written in
place; symlinks are kept and their targets replaced.
"""
import errno
import os
import re
import secrets
import shutil
import stat
from typing import List, Optional, Tuple

from containerregistry.client.v2_2 import leftovers


class WriteError(OSError):
    """An output could not be written.

    It names the path the user gave, never the temporary file behind it,
    which the user has never heard of and which is gone by then.
    """

    def __init__(self, path: str, strerror: str, code: int = errno.EIO):
        super().__init__(code, strerror)
        self.path = path

    @classmethod
    def of(cls, path: str, err: OSError) -> 'WriteError':
        return cls(path, err.strerror or str(err), err.errno or errno.EIO)

    def __str__(self) -> str:
        return 'cannot write %s: %s' % (self.path or "''", self.strerror)


# /proc/PID/fd: what /dev/stdout and /dev/fd/N lead through.
_FD_DIRECTORY = re.compile(r'/proc/(self|thread-self|\d+)/fd$')


def _descriptor_alias(path: str) -> bool:
    """True if PATH leads through /proc/PID/fd (/dev/stdout, /dev/fd/1).

    Such a path is a file some process already has open; a file renamed
    over the name it resolves to would never reach that process.
    """
    path = os.path.join(os.getcwd(), path)
    for _ in range(40):  # the kernel's limit on links followed
        if _FD_DIRECTORY.match(os.path.realpath(os.path.dirname(path))):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return False


def _replaced(path: str) -> Optional[str]:
    """The file to replace atomically for output PATH (a symlink's real
    target), or None if PATH is to be written in place: a device, FIFO or
    socket cannot be replaced without destroying it, and is not read until
    written anyway.

    Raises WriteError for a path that can be neither.
    """
    if not path:
        raise WriteError(path, 'no file name given', errno.ENOENT)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None  # a new file, or one a dangling symlink names
    except OSError as e:
        raise WriteError.of(path, e) from e
    if mode is not None and stat.S_ISDIR(mode):
        raise WriteError(path, os.strerror(errno.EISDIR), errno.EISDIR)
    try:
        in_place = (mode is not None and not stat.S_ISREG(mode)
                    or _descriptor_alias(path))
    except OSError as e:
        raise WriteError.of(path, e) from e
    if in_place:
        return None
    return os.path.realpath(path)


def _keep_beside(path: str) -> Optional[str]:
    """A hidden second name for PATH's current file (None if there is none),
    so that a rename over PATH can be undone."""
    if not os.path.lexists(path):
        return None
    directory, base = os.path.split(path)
    for _ in range(100):
        keep = os.path.join(directory, '.%s.%s.%s.tmp'
                            % (base, leftovers.tag(), secrets.token_hex(4)))
        try:
            os.link(path, keep)
            return keep
        except FileExistsError:
            continue
        except OSError:
            break  # no hard links here: a copy will do
    fd, keep = leftovers.create_beside(path)
    os.close(fd)
    shutil.copy2(path, keep)
    return keep


def _unlink(path: Optional[str]) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


class Output:
    """A binary file being written as output PATH.

    Errors name PATH. The position is counted rather than asked for, so
    that tarfile, which asks, can write to a pipe.
    """

    def __init__(self, file, path: str):
        self._file = file
        self._path = path
        self._position = 0

    def write(self, data) -> int:
        try:
            written = self._file.write(data)
        except OSError as e:
            raise WriteError.of(self._path, e) from e
        self._position += written
        return written

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as e:
            raise WriteError.of(self._path, e) from e

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as e:
            raise WriteError.of(self._path, e) from e

    def __enter__(self) -> 'Output':
        return self

    def __exit__(self, *unused) -> None:
        self.close()


class Outputs:
    """Output files that appear complete and together, or not at all.

    Each is written to a temporary file beside its target (beside a
    symlink's real target, so the link stays) and renamed by `commit`.
    An existing device, FIFO or socket (/dev/null, /dev/stdout) is written
    in place instead: replacing it would destroy it, and what it was sent
    cannot be taken back if the run fails later.
    """

    def __init__(self) -> None:
        self._pending: List[Tuple[str, str, str]] = []  # temp, target, path
        umask = os.umask(0)
        os.umask(umask)
        self._mode = 0o666 & ~umask

    @staticmethod
    def check(path: str) -> None:
        """Raises WriteError if PATH cannot be an output, before any work
        is done for it: no name, a directory, a missing parent directory."""
        target = _replaced(path)
        if target is None or os.path.lexists(target):
            return
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise WriteError(path, os.strerror(errno.ENOENT), errno.ENOENT)
        if not os.access(directory, os.W_OK):
            raise WriteError(path, os.strerror(errno.EACCES), errno.EACCES)

    def open(self, path: str) -> Output:
        """A binary file to write PATH's contents to."""
        target = _replaced(path)
        try:
            if target is None:
                return Output(open(path, 'wb'), path)
            fd, temp = leftovers.create_beside(target)
        except OSError as e:
            raise WriteError.of(path, e) from e
        self._pending.append((temp, target, path))
        os.fchmod(fd, self._mode)
        return Output(os.fdopen(fd, 'wb'), path)

    def commit(self) -> None:
        """Renames every temporary file to its target.

        If a rename fails, the targets renamed before it get their old
        files back (or go, if they had none).
        """
        done: List[Tuple[str, Optional[str]]] = []  # target, its old file
        keep = None
        try:
            for i, (temp, target, path) in enumerate(self._pending):
                keep = None
                if i + 1 < len(self._pending):
                    try:
                        keep = _keep_beside(target)
                    except OSError as e:
                        raise WriteError.of(path, e) from e
                try:
                    os.replace(temp, target)
                except OSError as e:
                    raise WriteError.of(path, e) from e
                done.append((target, keep))
                keep = None
        except BaseException:
            _unlink(keep)
            for target, old in reversed(done):
                try:
                    if old:
                        os.replace(old, target)
                    else:
                        os.unlink(target)
                except OSError:
                    pass
            raise
        finally:
            for _, old in done:
                _unlink(old)
        self._pending = []

    def discard(self) -> None:
        """Removes the temporary files not yet renamed."""
        for temp, _, _ in self._pending:
            _unlink(temp)
        self._pending = []

    def __enter__(self) -> 'Outputs':
        return self

    def __exit__(self, *unused) -> None:
        self.discard()
