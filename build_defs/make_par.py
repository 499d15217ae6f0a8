"""Packs a .par: a `#!/usr/bin/env python3` line followed by a zip.

Usage: make_par.py --manifest FILE --output PAR --main-module MODULE [--no-compile]

Each manifest line is `ZIP_PATH<TAB>FILE`. The zip also gets a `__main__.py`
that runs MODULE, one directory entry per directory (zipimport needs them
for namespace packages), and unless --no-compile an unchecked-hash .pyc next
to every .py (zipimport prefers `x.pyc` beside `x.py` and skips it when its
magic number is not the running interpreter's). Entries are sorted and carry
fixed timestamps and modes, so the same inputs give the same bytes.
"""
import argparse
import importlib.util
import io
import marshal
import os
import sys
import zipfile

SHEBANG = b'#!/usr/bin/env python3\n'
# The earliest date a zip entry can carry.
EPOCH = (1980, 1, 1, 0, 0, 0)

# Python 2 must be able to parse this file: rules_docker may run a .par with
# `python2`, which has to get a clear error rather than a SyntaxError.
MAIN_TEMPLATE = '''\
"""Runs @MODULE@ with only the code bundled in this .par."""
import sys

if sys.version_info < (3, 10):
    sys.stderr.write(
        'error: %s needs Python 3.10 or newer, not Python %s. '
        'Run it with python3 (rules_docker: set BAZEL_PYTHON=python3).\\n'
        % (sys.argv[0], sys.version.split()[0]))
    sys.exit(1)

import os
import runpy
import site

MAIN_MODULE = '@MODULE@'


def _real(path):
    return os.path.normcase(os.path.realpath(path))


def _under(path, roots):
    for root in roots:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def _site_dirs():
    dirs = []
    if hasattr(site, 'getsitepackages'):
        dirs.extend(site.getsitepackages())
    if hasattr(site, 'getusersitepackages'):
        dirs.append(site.getusersitepackages())
    return [_real(d) for d in dirs]


def _isolate():
    """Leaves the archive and the standard library on sys.path.

    Drops site-packages (host, venv and user), PYTHONPATH (even entries
    under the interpreter's prefix, such as /usr/local/...) and .pth
    entries, and forgets modules already imported from them at start-up.
    """
    archive = os.path.abspath(sys.path[0])
    prefixes = [_real(p) for p in {sys.base_prefix, sys.base_exec_prefix}]
    site_dirs = _site_dirs()
    # PYTHONPATH may name directories under the prefix too (/usr/local/...):
    # only the standard library's own are kept from it.
    stdlib = [_real(getattr(sys, '_stdlib_dir', None)
                    or os.path.dirname(os.__file__))]
    from_env = [] if sys.flags.ignore_environment else [
        _real(p) for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    keep = [archive]
    dropped = list(site_dirs)
    for entry in sys.path[1:]:
        real = _real(entry or os.curdir)
        if (_under(real, prefixes) and not _under(real, site_dirs)
                and (real not in from_env or _under(real, stdlib))
                and not [p for p in real.split(os.sep) if p.endswith('-packages')]):
            if entry not in keep:
                keep.append(entry)
        else:
            dropped.append(real)
    sys.path[:] = keep
    for name, module in list(sys.modules.items()):
        where = getattr(module, '__file__', None)
        if not where:
            where = next(iter(getattr(module, '__path__', None) or ()), None)
        if where and _under(_real(where), dropped):
            del sys.modules[name]


_isolate()
# sys.argv[0] stays the .par's path: tools name themselves after it (the
# User-Agent, as upstream's .par did), not after the module's .pyc.
runpy.run_module(MAIN_MODULE, run_name='__main__', alter_sys=False)
'''


def main_source(module: str) -> bytes:
    """The `__main__.py` that runs MODULE."""
    return MAIN_TEMPLATE.replace('@MODULE@', module).encode('utf-8')


def compile_pyc(source: bytes, path: str) -> bytes:
    """An unchecked-hash .pyc of SOURCE; PATH is the zip path shown in tracebacks."""
    code = compile(source, path, 'exec', dont_inherit=True, optimize=0)
    data = bytearray(importlib.util.MAGIC_NUMBER)
    data.extend((0b01).to_bytes(4, 'little'))  # hash-based, not checked
    data.extend(importlib.util.source_hash(source))
    data.extend(marshal.dumps(code))
    return bytes(data)


def read_manifest(path: str) -> dict[str, bytes]:
    entries = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            zip_path, _, file_path = line.partition('\t')
            if zip_path in entries or zip_path == '__main__.py':
                raise SystemExit('make_par: two files at %s' % zip_path)
            with open(file_path, 'rb') as src:
                entries[zip_path] = src.read()
    return entries


def build(entries: dict[str, bytes], module: str, compile_: bool) -> bytes:
    """The bytes of the .par holding ENTRIES and a `__main__.py` for MODULE."""
    files = dict(entries)
    files['__main__.py'] = main_source(module)
    if compile_:
        for path, data in sorted(files.items()):
            if path.endswith('.py'):
                if path + 'c' in files:
                    raise SystemExit('make_par: %sc is already in the archive' % path)
                files[path + 'c'] = compile_pyc(data, path)
    dirs = set()
    for path in files:
        parts = path.split('/')[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add('/'.join(parts[:i]) + '/')

    out = io.BytesIO()
    out.write(SHEBANG)
    with zipfile.ZipFile(out, 'w') as zf:
        for name in sorted(dirs | set(files)):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.create_system = 3  # Unix, so the mode below is honoured
            if name.endswith('/'):
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b'')
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, files[name], compresslevel=6)
    return out.getvalue()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description='Packs a .par file.')
    parser.add_argument('--manifest', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--main-module', required=True)
    parser.add_argument('--no-compile', action='store_true')
    args = parser.parse_args(argv)
    if os.environ.get('PYTHONHASHSEED') != '0':
        raise SystemExit('make_par: PYTHONHASHSEED=0 is needed for reproducible .pyc files')
    data = build(read_manifest(args.manifest), args.main_module, not args.no_compile)
    with open(args.output, 'wb') as f:
        f.write(data)
    os.chmod(args.output, 0o755)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
