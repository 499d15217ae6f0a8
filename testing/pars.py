"""How tests run the command-line tools.

By default a tool runs as its Bazel-built `.par` (the artifact users run),
built once per test session and copied out of bazel-bin. With
CR_TOOL_MODE=source the tool module runs from the checkout instead, which
is quicker while developing.
"""
import os
import subprocess
import sys
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODULES = {
    'puller': 'fast_puller',
    'pusher': 'fast_pusher',
    'importer': 'fast_importer',
    'flatten': 'fast_flatten',
    'appender': 'docker_appender',
    'digester': 'image_digester',
}


def source_mode() -> bool:
    return os.environ.get('CR_TOOL_MODE') == 'source'


def par_path(name: str) -> str:
    """Builds //:NAME.par (once per session) and returns its path."""
    raise NotImplementedError('par building is not wired up yet')


def tool_command(name: str) -> List[str]:
    """The argv prefix that runs tool NAME (`puller`, `pusher`, ...)."""
    if source_mode():
        return [sys.executable, '-m', 'containerregistry.tools.' + MODULES[name]]
    return [sys.executable, par_path(name)]


def tool_env() -> dict:
    """The environment for running a tool in the current mode."""
    env = dict(os.environ)
    if source_mode():
        shim = [p for p in sys.path if p.endswith(tuple('0123456789abcdef'))
                and os.path.islink(os.path.join(p, 'containerregistry'))]
        env['PYTHONPATH'] = os.pathsep.join(shim + [env.get('PYTHONPATH', '')])
    return env


def run_tool(name: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs tool NAME with ARGS, capturing text output."""
    kwargs.setdefault('env', tool_env())
    return subprocess.run(tool_command(name) + list(args), capture_output=True,
                          text=True, **kwargs)
