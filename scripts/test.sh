#!/usr/bin/env bash
# Installs what is missing, then runs every test (pytest under testing/):
# the library, the Bazel-built .par tools against a real local registry,
# and the consumer workspace. Ends with a line "N passed, N failed" and
# leaves no server running (registries, Bazel).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

# Everything temporary (registry storage, test files) goes under one folder
# of this run, so the clean-up can find exactly what this run started.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/cr-test-run.XXXXXX")
export TMPDIR="$run_tmp"
cleanup() {
  bazel shutdown >/dev/null 2>&1 || true
  pkill -f "docker-registry serve $run_tmp/" >/dev/null 2>&1 || true
  rm -rf "$run_tmp"
}
trap cleanup EXIT

mkdir -p build
.venv/bin/python -m pytest -q -rfE --junitxml=build/junit.xml "$@"
status=$?
.venv/bin/python scripts/summarize.py build/junit.xml
exit $status
