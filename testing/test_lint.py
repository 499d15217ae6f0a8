"""The checks the project's code must pass: ruff (lint) and mypy (types).

Both read their settings from pyproject.toml, which says what each leaves
out and why.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _package_parent() -> str:
    """The folder where `containerregistry` names this checkout (the
    conftest shim): mypy must see the code under its package name."""
    for entry in sys.path:
        link = os.path.join(entry, 'containerregistry')
        if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(ROOT):
            return entry
    raise AssertionError('no containerregistry shim on sys.path')


def test_ruff():
    result = subprocess.run(
        [sys.executable, '-m', 'ruff', 'check', '--no-cache', ROOT],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    packages = []
    for package in ('client', 'transport', 'transform', 'tools'):
        packages += ['-p', 'containerregistry.' + package]
    result = subprocess.run(
        [sys.executable, '-m', 'mypy', '--config-file',
         os.path.join(ROOT, 'pyproject.toml'), '--no-incremental',
         '--cache-dir', os.devnull] + packages,
        cwd=_package_parent(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
