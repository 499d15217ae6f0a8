#!/bin/sh
# Runs the importer and flatten benchmarks with the interpreter's own path
# (not a pyenv shim). Arguments go to bench/local.py, e.g. --groups flatten.
set -e
here=$(cd "$(dirname "$0")" && pwd)
py=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
exec "$py" "$here/local.py" "$@"
