"""The fastest zlib-compatible inflater this interpreter can load.

Inflating gzip layers is most of what the importer, flatten and
`importer --format tar` spend their time on, and zlib-ng (the `zlib-ng`
wheel) inflates about three times faster than the standard library's zlib,
with the same API, the same bytes out and the same CRC and length checks.
It is only ever used to inflate: deflating stays with the standard
library's zlib, whose level-9 bytes are what layer digests depend on.

A `.par` carries the wheel's extension module inside its zip, where
zipimport cannot load it; it is then loaded from an anonymous in-memory
file (Linux `memfd_create`), so nothing is written to disk and no other
process can change it. The module is taken only when its file name carries
one of the running interpreter's extension suffixes (the same ABI check the
import system makes); otherwise, or on any failure, the standard library's
zlib serves. `CONTAINERREGISTRY_INFLATER=zlib` asks for the standard
library's zlib in any case.
"""
import importlib.machinery
import importlib.util
import logging
import os
import threading
import zlib
from types import ModuleType
from typing import Optional

ENV = 'CONTAINERREGISTRY_INFLATER'
_PACKAGE = 'zlib_ng'
_MODULE = 'zlib_ng.zlib_ng'

_lock = threading.Lock()
_chosen: Optional[ModuleType] = None


def module() -> ModuleType:
    """A module with zlib's `decompressobj`, `error` and `crc32`: zlib-ng or zlib."""
    global _chosen
    with _lock:
        if _chosen is None:
            _chosen = _load() if os.environ.get(ENV, '') != 'zlib' else zlib
            logging.debug('inflating with %s', name(_chosen))
        return _chosen


def name(mod: ModuleType) -> str:
    """'zlib-ng' or 'zlib', for logs and benchmarks."""
    return 'zlib' if mod is zlib else 'zlib-ng'


def reset() -> None:
    """Forgets the choice, so that the next `module()` looks again (tests)."""
    global _chosen
    with _lock:
        _chosen = None


def _load() -> ModuleType:
    try:
        return importlib.import_module(_MODULE)
    except ImportError:
        pass
    try:
        return _from_archive() or zlib
    except Exception as e:  # noqa: BLE001 - any failure means: use zlib
        logging.debug('zlib-ng not loadable from the archive: %s', e)
        return zlib


def _from_archive() -> Optional[ModuleType]:
    """The extension module from the zip the package was found in, or None."""
    if not hasattr(os, 'memfd_create'):
        return None
    spec = importlib.util.find_spec(_PACKAGE)
    get_data = getattr(spec.loader, 'get_data', None) if spec else None
    if spec is None or get_data is None or not spec.submodule_search_locations:
        return None
    package_dir = list(spec.submodule_search_locations)[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        try:
            data = get_data(os.path.join(package_dir, 'zlib_ng' + suffix))
        except OSError:
            continue
        return _load_extension(data)
    return None


def _load_extension(data: bytes) -> ModuleType:
    """Loads extension module bytes DATA as `zlib_ng.zlib_ng` from a memfd."""
    fd = os.memfd_create('zlib_ng', os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        path = '/proc/self/fd/%d' % fd
        loader = importlib.machinery.ExtensionFileLoader(_MODULE, path)
        spec = importlib.util.spec_from_file_location(_MODULE, path, loader=loader)
        assert spec is not None  # a loader was given
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        return mod
    finally:
        os.close(fd)
