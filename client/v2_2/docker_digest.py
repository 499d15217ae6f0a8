"""Content digests, and a reader that checks one while data streams past."""
import hashlib
import logging
import re
from typing import Any, Callable, Optional, TypeVar

_T = TypeVar('_T')

_SHA256_DIGEST = re.compile(r'sha256:[0-9a-f]{64}\Z')


def SHA256(content: bytes, prefix: str = 'sha256:') -> str:
    """Returns PREFIX + the hex sha256 of CONTENT."""
    return prefix + hashlib.sha256(content).hexdigest()


class DigestMismatchedError(Exception):
    """Content did not hash to the digest it was asked for by."""


def check(expected: str, actual: str, what: str) -> None:
    """Raises DigestMismatchedError unless the two digests are equal."""
    if expected != actual:
        raise DigestMismatchedError(
            'digest mismatch for %s: expected %s, got %s'
            % (what, expected, actual))


class BadDigestError(DigestMismatchedError):
    """A digest that is not `sha256:` and 64 lowercase hex characters."""


def check_form(digest: Any, what: str) -> str:
    """DIGEST, if it is `sha256:` + 64 lowercase hex; raises BadDigestError.

    Digests from manifests become URL paths and file names (OCI layouts,
    the cache): `sha256:../../etc/x` must never get that far.
    """
    if isinstance(digest, str) and _SHA256_DIGEST.match(digest):
        return digest
    algorithm = digest.partition(':')[0] if isinstance(digest, str) else ''
    if algorithm in ('sha384', 'sha512'):
        raise BadDigestError('unsupported digest algorithm: %s (%s)'
                             % (digest, what))
    raise BadDigestError('invalid digest %r in %s' % (digest, what))


def fetched_once_more(fetch: Callable[[], _T], what: str) -> _T:
    """FETCH(), called once more if what it read failed its digest check.

    Flaky proxies damage a response now and then; a second damaged copy
    is the error. A digest of the wrong form is never worth a second try.
    """
    try:
        return fetch()
    except BadDigestError:
        raise
    except DigestMismatchedError as e:
        logging.info('%s; fetching %s once more', e, what)
        return fetch()


class VerifyingReader:
    """Wraps a reader; at end of data, raises if the sha256 is not EXPECTED.

    This is how blobs are checked without holding them: the hash is updated
    with every chunk as it passes, and compared once the stream is drained.
    """

    def __init__(self, reader, expected: str, what: Optional[str] = None,
                 size: Optional[int] = None):
        check_form(expected, what or 'a blob')
        self._reader = reader
        self._expected = expected
        self._what = what or expected
        self._size = size
        self._hash = hashlib.sha256()
        self._count = 0
        self._done = False

    @property
    def bytes_read(self) -> int:
        return self._count

    def _update(self, chunk) -> None:
        if chunk:
            self._hash.update(chunk)
            self._count += len(chunk)
            return
        if not self._done:
            self._done = True
            if self._size is not None and self._count != self._size:
                raise DigestMismatchedError(
                    'size mismatch for %s: expected %d bytes, got %d'
                    % (self._what, self._size, self._count))
            check(self._expected, 'sha256:' + self._hash.hexdigest(),
                  self._what)

    def read(self, amt: Optional[int] = None) -> bytes:
        if amt is None or amt < 0:
            data = self._reader.read()
            self._update(data)
            self._update(b'')
            return data
        data = self._reader.read(amt)
        self._update(data)
        return data

    def readinto(self, buffer) -> int:
        n = self._reader.readinto(buffer)
        self._update(memoryview(buffer)[:n])
        return n

    def close(self) -> None:
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        self.close()
