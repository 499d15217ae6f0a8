#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine, and only what
# is missing: Debian packages (Bazel, the registry, skopeo, umoci) and a
# virtualenv in .venv with the hash-pinned Python dependencies (pure and
# compiled) plus the test-only ones. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(bazel-bootstrap docker-registry skopeo umoci apache2-utils time zstd bzip2 xz-utils)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.installed
want=$(cat requirements.txt requirements-native.txt requirements-test.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
    -r requirements.txt -r requirements-native.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
  echo "$want" > "$stamp"
fi
