#!/bin/sh
# Runs the push benchmark with the interpreter's own path (not a pyenv shim).
# Arguments go to bench/push.py, e.g. --shapes many,medium --runs 7.
set -e
here=$(cd "$(dirname "$0")" && pwd)
py=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
exec "$py" "$here/push.py" "$@"
