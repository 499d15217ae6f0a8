"""How tests run the command-line tools.

By default a tool runs as its Bazel-built `.par` (the artifact users run),
built once per test session and copied out of bazel-bin. With
CR_TOOL_MODE=source the tool module runs from the checkout instead, which
is quicker while developing.
"""
import atexit
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAZEL = 'bazel'
# Bazel's own output options, so captured output stays readable.
QUIET = ['--color=no', '--curses=no', '--show_progress_rate_limit=60']

MODULES = {
    'puller': 'fast_puller',
    'pusher': 'fast_pusher',
    'importer': 'fast_importer',
    'flatten': 'fast_flatten',
    'appender': 'docker_appender',
    'digester': 'image_digester',
    'docker_puller': 'docker_puller',
    'docker_pusher': 'docker_pusher',
}


def source_mode() -> bool:
    return os.environ.get('CR_TOOL_MODE') == 'source'


_pars: Dict[str, str] = {}
_par_dir: Optional[str] = None
_bazel_used = False


@contextlib.contextmanager
def _workspace_lock() -> Iterator[None]:
    """Serialises Bazel commands in the checkout across test processes.

    Two commands at once in one workspace would only wait for each other,
    and a copy of bazel-bin taken during another build could be half-written.
    """
    tag = hashlib.sha256(ROOT.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), 'containerregistry-bazel-%s.lock' % tag)
    with open(path, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_bazel(args: List[str], timeout: float) -> subprocess.CompletedProcess:
    global _bazel_used
    if not _bazel_used:
        _bazel_used = True
        atexit.register(shutdown_bazel)
    return subprocess.run([BAZEL] + args, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def bazel(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Runs one Bazel command in the checkout (e.g. `bazel('run', '//:puller.par')`).

    The server it starts is stopped by shutdown_bazel().
    """
    with _workspace_lock():
        return _run_bazel(list(args), timeout)


def par_path(name: str) -> str:
    """Builds //:NAME.par (once per session) and returns its path.

    The file is a copy in a session temp dir, out of reach of later builds.
    """
    global _par_dir
    if name in _pars:
        return _pars[name]
    if name not in MODULES:
        raise KeyError('unknown tool %r' % name)
    with _workspace_lock():
        proc = _run_bazel(['build'] + QUIET + ['//:%s.par' % name], timeout=900)
        if proc.returncode != 0:
            raise RuntimeError('bazel build //:%s.par failed (rc=%d):\n%s'
                               % (name, proc.returncode, proc.stderr[-6000:]))
        if _par_dir is None:
            _par_dir = tempfile.mkdtemp(prefix='containerregistry-pars-')
            atexit.register(shutil.rmtree, _par_dir, True)
        path = os.path.join(_par_dir, name + '.par')
        shutil.copyfile(os.path.join(ROOT, 'bazel-bin', name + '.par'), path)
    os.chmod(path, 0o755)
    _pars[name] = path
    return path


def shutdown_bazel() -> None:
    """Stops the checkout's Bazel server if this process used Bazel.

    Call it once at the end of a test session; running it again is harmless.
    """
    global _bazel_used
    if not _bazel_used:
        return
    _bazel_used = False
    with _workspace_lock():
        subprocess.run([BAZEL, 'shutdown'], cwd=ROOT, capture_output=True, timeout=120)


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


# A glog WARNING line, e.g. `W1206 05:59:18.534214    1765 file.py:12] ...`.
_WARNING = re.compile(r'^W\d{4} \d\d:\d\d:\d\d\.\d{6} ')


def error_lines(stderr: str) -> List[str]:
    """The non-empty lines of a tool's STDERR, but WARNING lines (retries,
    stalls), which explain a slow run before its error line."""
    return [line for line in stderr.splitlines()
            if line.strip() and not _WARNING.match(line)]


def terminate_when(name: str, args: List[str], ready, env: dict = None,
                   timeout: float = 60, sig: int = signal.SIGTERM
                   ) -> subprocess.CompletedProcess:
    """Starts tool NAME with ARGS, sends it SIG (SIGTERM) once READY() is
    true, and returns how it ended (text output). A tool that ends before,
    or outlives TIMEOUT seconds after the signal, fails the test."""
    argv = tool_command(name) + list(args)
    proc = subprocess.Popen(argv, env=env or tool_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, 'never ready'
            time.sleep(0.01)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
