"""The library installs with pip and imports outside Bazel."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODULES = [
    'containerregistry.client.docker_name',
    'containerregistry.client.docker_creds',
    'containerregistry.client.v2_2.docker_http',
    'containerregistry.client.v2_2.docker_image',
    'containerregistry.client.v2_2.docker_image_list',
    'containerregistry.client.v2_2.save',
    'containerregistry.transport.transport_pool',
    'containerregistry.transport.retry',
    'containerregistry.tools.fast_puller',
]


def _tracked_files():
    out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, check=True,
                         capture_output=True).stdout
    return [p for p in out.decode().split('\0') if p]


def test_pip_install_maps_the_root_to_the_package(tmp_path):
    # Build from a copy of the tracked files, so the checkout stays clean.
    src = tmp_path / 'src'
    for rel in _tracked_files():
        if not os.path.isfile(os.path.join(ROOT, rel)):
            continue
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dest)
    target = tmp_path / 'site'
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
         '--disable-pip-version-check',
         '--target', str(target), str(src)], check=True)

    probe = ('import importlib, sys\n'
             'for m in sys.argv[1:]:\n'
             '    print(importlib.import_module(m).__file__)\n')
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, '-c', probe] + MODULES,
                            cwd=str(tmp_path), env=env, capture_output=True,
                            text=True, check=True)
    files = result.stdout.split()
    assert len(files) == len(MODULES)
    for path in files:
        assert path.startswith(str(target) + os.sep), path
    assert not (target / 'containerregistry' / 'testing').exists()
