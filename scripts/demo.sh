#!/usr/bin/env bash
# Installs what is missing, builds puller.par with Bazel, starts a local
# registry holding a sample image, pulls it into ./demo-image and shows the
# result. The registry is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bazel build //:puller.par
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
ln -s "$PWD" "$shim/containerregistry"
rm -rf demo-image
PYTHONPATH="$shim" .venv/bin/python -m containerregistry.testing.demo \
  bazel-bin/puller.par demo-image
