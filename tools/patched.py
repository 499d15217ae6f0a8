"""Makes httplib2 usable from inside a zip (the tools' `.par` files).

httplib2 verifies TLS against `httplib2.CA_CERTS`, by default the
`cacerts.txt` next to its module. Inside a zip that path is not a file
OpenSSL can open, so every HTTPS request would fail.
"""
import os
import pkgutil
import shutil
import tempfile
from types import TracebackType
from typing import Optional, Type


class Httplib2:
    """While active, `httplib2.CA_CERTS` names a real file.

    If it already does (httplib2 installed as files, or
    $HTTPLIB2_CA_CERTS set), nothing changes. Otherwise httplib2's bundled
    `cacerts.txt` is written to a private temporary directory, which is
    removed on exit, and the previous value is restored. httplib2 is
    imported on entry only, so tools that never enter pay nothing for it.
    """

    def __init__(self) -> None:
        self._tempdir: Optional[str] = None
        self._original: Optional[str] = None

    def __enter__(self) -> 'Httplib2':
        import httplib2
        if os.path.isfile(httplib2.CA_CERTS):
            return self
        data = pkgutil.get_data('httplib2', 'cacerts.txt')
        if data is None:
            raise RuntimeError('httplib2 has no cacerts.txt to extract')
        self._tempdir = tempfile.mkdtemp(prefix='httplib2-')
        path = os.path.join(self._tempdir, 'cacerts.txt')
        with open(path, 'wb') as f:
            f.write(data)
        self._original = httplib2.CA_CERTS
        httplib2.CA_CERTS = path
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc_value: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        if self._tempdir is None:
            return
        import httplib2
        httplib2.CA_CERTS = self._original
        shutil.rmtree(self._tempdir, ignore_errors=True)
        self._tempdir = None
        self._original = None
