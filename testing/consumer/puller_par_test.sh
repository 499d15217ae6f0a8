#!/bin/sh
# The .par built as a consumer's dependency runs and prints its usage line.
set -eu
out="$("$TEST_SRCDIR/containerregistry/puller.par" --help)"
case "$out" in
  "usage: puller.par "*) echo "ok" ;;
  *) echo "unexpected output: $out" >&2; exit 1 ;;
esac
