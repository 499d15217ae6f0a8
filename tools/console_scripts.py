"""Entry points of the tools when installed with pip.

`pip install .` puts each tool on PATH as `containerregistry-TOOL`; it runs
the same module as `TOOL.par`, with the same flags and help text, only under
its own program name.
"""
import importlib

from containerregistry.tools import cli

# Installed program name -> tool module, as pyproject.toml's [project.scripts].
PROGRAMS = {
    'containerregistry-puller': 'fast_puller',
    'containerregistry-pusher': 'fast_pusher',
    'containerregistry-importer': 'fast_importer',
    'containerregistry-flatten': 'fast_flatten',
    'containerregistry-appender': 'docker_appender',
    'containerregistry-digester': 'image_digester',
}


def _run(prog: str) -> None:
    module = importlib.import_module(
        'containerregistry.tools.' + PROGRAMS[prog])
    cli.rename(module.parser, prog)
    cli.run(module.main)


def puller() -> None:
    _run('containerregistry-puller')


def pusher() -> None:
    _run('containerregistry-pusher')


def importer() -> None:
    _run('containerregistry-importer')


def flatten() -> None:
    _run('containerregistry-flatten')


def appender() -> None:
    _run('containerregistry-appender')


def digester() -> None:
    _run('containerregistry-digester')
