"""The library installs with pip and imports outside Bazel."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars

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


def _copy_tracked(src) -> None:
    """Copies the tracked files to SRC: pip builds there, and the checkout
    stays clean."""
    for rel in _tracked_files():
        if not os.path.isfile(os.path.join(ROOT, rel)):
            continue
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dest)


def test_pip_install_maps_the_root_to_the_package(tmp_path):
    src = tmp_path / 'src'
    _copy_tracked(src)
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


TOOLS = ['puller', 'pusher', 'importer', 'flatten', 'appender', 'digester']


@pytest.fixture(scope='module')
def fresh_venv(tmp_path_factory):
    """A new virtualenv with `pip install .` (dependencies from the index)."""
    tmp = tmp_path_factory.mktemp('venv')
    src = tmp / 'src'
    _copy_tracked(src)
    venv = tmp / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    subprocess.run(
        [str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q',
         '--disable-pip-version-check', str(src)], check=True, timeout=600)
    return venv / 'bin'


def _usage_words(text: str, prog: str) -> list:
    usage = text.split('\n\n', 1)[0]
    assert usage.startswith('usage: %s [-h]' % prog), text
    return usage.split()[2:]


@pytest.mark.parametrize('tool', TOOLS)
def test_console_script_help_is_the_par_help(fresh_venv, tool):
    prog = 'containerregistry-' + tool
    mine = subprocess.run([str(fresh_venv / prog), '--help'],
                          capture_output=True, text=True, timeout=60)
    par = pars.run_tool(tool, '--help')
    assert mine.returncode == par.returncode == 0, mine.stderr
    assert mine.stderr == ''
    # The same flags in the same order and layout, under its own name.
    assert _usage_words(mine.stdout, prog) == _usage_words(
        par.stdout, tool + '.par')
    assert mine.stdout.split('\n\n', 1)[1] == par.stdout.split('\n\n', 1)[1]
    # Continuation lines keep their alignment under the first flag.
    shift = len(prog) - len(tool + '.par')
    for line, par_line in zip(mine.stdout.split('\n\n')[0].split('\n')[1:],
                              par.stdout.split('\n\n')[0].split('\n')[1:]):
        assert line == ' ' * shift + par_line


def test_console_script_errors_under_its_own_name(fresh_venv):
    result = subprocess.run(
        [str(fresh_venv / 'containerregistry-importer'), '--no-such-flag'],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith('usage: containerregistry-importer [-h]')
    assert re.search(r'\ncontainerregistry-importer: error: [^\n]+\n\Z',
                     result.stderr), result.stderr


def test_console_script_pulls_like_the_par(fresh_venv, registry, tmp_path):
    pushed = images.push_image(registry, 'pip/puller:1',
                               [images.make_layer(1), images.make_layer(2)])
    name = '%s/pip/puller:1' % registry.host
    result = subprocess.run(
        [str(fresh_venv / 'containerregistry-puller'), '--name', name,
         '--directory', str(tmp_path / 'pip')],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    par = pars.run_tool('puller', '--name', name,
                        '--directory', str(tmp_path / 'par'))
    assert par.returncode == 0, par.stderr
    assert sorted(os.listdir(tmp_path / 'pip')) == sorted(
        os.listdir(tmp_path / 'par'))
    for entry in os.listdir(tmp_path / 'par'):
        assert (tmp_path / 'pip' / entry).read_bytes() == (
            tmp_path / 'par' / entry).read_bytes(), entry
    assert (tmp_path / 'pip' / 'digest').read_text() == pushed.digest
