#!/usr/bin/env bash
# Installs what is missing, then runs every test (pytest under testing/):
# the library, the Bazel-built .par tools against a real local registry,
# and the consumer workspace. Ends with a line "N passed, N failed" and
# leaves no server running (registries, Bazel).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

cleanup() {
  bazel shutdown >/dev/null 2>&1 || true
  pkill -f 'docker-registry serve .*cr-registry-' >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p build
.venv/bin/python -m pytest -q -rfE --junitxml=build/junit.xml "$@"
status=$?
.venv/bin/python scripts/summarize.py build/junit.xml
exit $status
