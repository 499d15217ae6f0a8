#!/bin/sh
# The interpreter of our Python toolchain. -S keeps the host's site-packages
# off sys.path, so a dependency missing from a target's deps fails under
# `bazel run` and `bazel test` as it would in the .par.
exec /usr/bin/python3 -S "$@"
