"""The progress line and the per-layer log lines, on a real terminal and off.

The TTY cases run the tool with stderr on a pseudo-terminal (stdout stays a
pipe) and replay what it wrote through a minimal terminal (`\\r`, erase to
end of line, newline), so the assertions are about what a person sees.
"""
import os
import pty
import re
import subprocess
import threading

import pytest

from containerregistry.client.v2_2 import progress
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import push_helpers as ph
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)

_LINE = re.compile(
    r'^(Pulling|Pulled|Pushing|Pushed) ([\d.]+ (?:B|KiB|MiB|GiB))/'
    r'([\d.]+ (?:B|KiB|MiB|GiB)), ([\d.]+ (?:B|KiB|MiB|GiB))/s, '
    r'(\d+)/(\d+) layers$')
_GLOG = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} ')


@pytest.fixture
def proxy(registry):
    p = proxy_mod.start_proxy(registry)
    yield p
    p.stop()


def _on_terminal(name: str, args, env: dict, timeout: float = 120):
    """Runs tool NAME with stderr on a new pseudo-terminal; returns
    (process, raw bytes written to the terminal, decoded)."""
    master, slave = pty.openpty()
    chunks = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(pars.tool_command(name) + list(args),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=slave, env=env, timeout=timeout)
    finally:
        os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    return proc, b''.join(chunks).decode('utf8', 'replace')


def _screen(raw: str):
    """The lines a terminal shows after RAW: `\\r` goes to the start of the
    line, ESC [ K erases to its end, `\\n` starts the next one."""
    lines, line, col, i = [], '', 0, 0
    while i < len(raw):
        if raw.startswith('\x1b[K', i):
            line = line[:col]
            i += 3
            continue
        c = raw[i]
        if c == '\r':
            col = 0
        elif c == '\n':
            lines.append(line)
            line, col = '', 0
        else:
            line = line[:col] + c + line[col + 1:]
            col += 1
        i += 1
    if line:
        lines.append(line)
    return lines


def _mib(text: str) -> float:
    number, unit = text.split()
    return float(number) * {'B': 1, 'KiB': 1 << 10, 'MiB': 1 << 20,
                            'GiB': 1 << 30}[unit] / (1 << 20)


def _image(registry, repo_name, count=3, size=200_000):
    tars = [images.make_layer(700 + i, size + 1000 * i) for i in range(count)]
    return images.push_image(registry, repo_name + ':p', tars)


def _layer_lines(stderr: str, verb: str):
    return [l for l in stderr.splitlines() if '] %s layer ' % verb in l]


# The puller.

def test_pull_on_terminal_shows_updating_line(registry, proxy, repo_name,
                                              pull, tool_env):
    # Layers of a few chunks (1 MiB), slow enough that the line is redrawn
    # several times on the way.
    pushed = _image(registry, repo_name, size=2_500_000)
    proxy.trickle('GET', '/blobs/sha256:', rate=2_000_000)
    directory = pull.new_dir()
    proc, raw = _on_terminal('puller', [
        '--name', '%s/%s:p' % (proxy.host, pushed.repo),
        '--directory', directory], tool_env)
    proc.directory = directory
    proc.stderr = ''
    pull.assert_pulled(proc, pushed)
    assert proc.stdout == b''

    updates = [u for u in re.split(r'\r\x1b\[K', raw) if u.strip()]
    assert len(updates) >= 3, raw
    total = sum(len(l.blob) for l in pushed.layers)
    shown = [_LINE.match(u.rstrip('\r\n')) for u in updates]
    assert all(shown), raw
    assert {m.group(1) for m in shown[:-1]} == {'Pulling'}
    assert all(_mib(m.group(3)) == pytest.approx(total / (1 << 20), abs=0.06)
               for m in shown)
    assert all(m.group(6) == '3' for m in shown)
    assert any(float(m.group(4).split()[0]) > 0 for m in shown[:-1]), raw
    # What stays on screen: the final line, ended by a newline.
    assert raw.endswith('\r\n')
    assert _screen(raw) == [updates[-1].rstrip('\r\n')]
    last = shown[-1]
    assert last.group(1) == 'Pulled' and last.group(5) == '3'
    assert last.group(2) == last.group(3)


def test_pull_failing_on_terminal_shows_error_alone(registry, proxy,
                                                    repo_name, pull, tool_env):
    pushed = _image(registry, repo_name)
    proxy.cut('GET', '/blobs/' + pushed.layers[1].digest, after=1000,
              times=None)
    proxy.trickle('GET', '/blobs/sha256:', rate=400_000)
    proc, raw = _on_terminal('puller', [
        '--name', '%s/%s:p' % (proxy.host, pushed.repo),
        '--directory', pull.new_dir()], tool_env)
    assert proc.returncode == 1
    screen = _screen(raw)
    # Retry warnings, then the error, each a whole line; no progress left.
    assert all(_GLOG.match(line) for line in screen), screen
    assert screen[-1].startswith('F') and 'Error pulling' in screen[-1]
    assert any(line.startswith('W') for line in screen[:-1]), screen
    assert 'Pulling ' in raw  # drawn, then erased
    assert 'Traceback' not in raw


def test_pull_on_dumb_terminal_draws_nothing(registry, repo_name, pull,
                                             tool_env):
    pushed = _image(registry, repo_name)
    directory = pull.new_dir()
    proc, raw = _on_terminal('puller', [
        '--name', pushed.by_tag, '--directory', directory],
        dict(tool_env, TERM='dumb'))
    proc.directory, proc.stderr = directory, raw
    pull.assert_pulled(proc, pushed)
    assert raw == ''


def test_pull_off_terminal_is_quiet(registry, repo_name, pull):
    pushed = _image(registry, repo_name)
    proc = pull(pushed.by_tag)
    pull.assert_pulled(proc, pushed)
    assert proc.stderr == ''


@pytest.mark.parametrize('fmt', ['fast', 'oci'])
def test_pull_at_info_one_line_per_layer(registry, repo_name, pull, fmt):
    pushed = _image(registry, repo_name, count=4)
    proc = pull(pushed.by_tag, '--stderrthreshold', 'INFO', '--format', fmt)
    assert proc.returncode == 0, proc.stderr
    assert '\r' not in proc.stderr
    assert not re.search(r'Pull(ing|ed) [\d.]+ \S+/', proc.stderr)
    lines = _layer_lines(proc.stderr, 'Pulled')
    assert len(lines) == 4, proc.stderr
    counts = sorted(re.search(r'layer (\d)/4 ', l).group(1) for l in lines)
    assert counts == ['1', '2', '3', '4']
    for layer in pushed.layers:
        line, = [l for l in lines if layer.digest in l]
        assert line.endswith('(%s)' % progress.size_text(len(layer.blob)))


def test_pull_from_cache_says_so(registry, repo_name, pull, tmp_path):
    pushed = _image(registry, repo_name, count=2)
    cache = str(tmp_path / 'cache')
    pull.assert_pulled(pull(pushed.by_tag, '--cache', cache), pushed)
    proc = pull(pushed.by_tag, '--cache', cache, '--stderrthreshold', 'INFO')
    pull.assert_pulled(proc, pushed)
    lines = _layer_lines(proc.stderr, 'Pulled')
    assert len(lines) == 2 and all(l.endswith(' from the cache')
                                   for l in lines), proc.stderr


# The pusher.

def _disk(tools):
    tars = [images.make_layer(800 + i, 150_000 + 1000 * i) for i in range(3)]
    return ph.write_disk_image(tools.new_dir('img'), tars)


def test_push_on_terminal_ends_with_final_line(registry, repo_name, tools,
                                               tool_env):
    disk = _disk(tools)
    name = '%s/%s:latest' % (registry.host, repo_name)
    proc, raw = _on_terminal(
        'pusher', ['--name', name] + disk.args(), tool_env)
    assert proc.returncode == 0, raw
    assert proc.stdout.decode() == (
        '%s was published with digest: %s\n' % (name, disk.digest()))
    assert '\r\x1b[K' in raw
    screen = _screen(raw)
    assert len(screen) == 1, screen
    last = _LINE.match(screen[0])
    assert last, screen
    assert last.group(1) == 'Pushed' and last.group(5) == last.group(6) == '3'
    total = sum(len(l.blob) for l in disk.layers)
    assert _mib(last.group(3)) == pytest.approx(total / (1 << 20), abs=0.06)


def test_push_at_info_one_line_per_layer(registry, repo_name, tools):
    disk = _disk(tools)
    name = '%s/%s:latest' % (registry.host, repo_name)
    proc = tools.pusher(name, *disk.args(), '--stderrthreshold', 'INFO')
    assert proc.returncode == 0, proc.stderr
    assert '\r' not in proc.stderr
    pushed = _layer_lines(proc.stderr, 'Pushed')
    assert len(pushed) == 3, proc.stderr
    for layer in disk.layers:
        assert len([l for l in pushed if layer.digest in l]) == 1
    # On top of those: the registry has three layers, a fourth is new.
    tars = [images.make_layer(800 + i, 150_000 + 1000 * i) for i in range(4)]
    bigger = ph.write_disk_image(tools.new_dir('img'), tars)
    proc = tools.pusher(name, *bigger.args(), '--stderrthreshold', 'INFO')
    assert proc.returncode == 0, proc.stderr
    skipped = _layer_lines(proc.stderr, 'Skipped')
    assert sorted(re.search(r'sha256:\w+', l).group() for l in skipped) == sorted(
        l.digest for l in disk.layers), proc.stderr
    pushed, = _layer_lines(proc.stderr, 'Pushed')
    assert bigger.layers[3].digest in pushed


def test_push_off_terminal_is_quiet(registry, repo_name, tools):
    disk = _disk(tools)
    proc = tools.pusher('%s/%s:latest' % (registry.host, repo_name),
                        *disk.args())
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ''


def test_size_text():
    assert progress.size_text(0) == '0 B'
    assert progress.size_text(1023) == '1023 B'
    assert progress.size_text(12.3 * (1 << 20)) == '12.3 MiB'
    assert progress.size_text(3 << 40) == '3072.0 GiB'


def test_append_at_info_one_line_per_layer(registry, repo_name, tools):
    base = _image(registry, repo_name, count=2)
    path = os.path.join(tools.new_dir('layer'), 'layer.tar.gz')
    with open(path, 'wb') as f:
        f.write(images.gzip_bytes(images.make_layer(900, 5000)))
    dst = '%s/%s-appended:v1' % (registry.host, repo_name)
    proc = tools.appender(base.by_tag, path, dst, '--stderrthreshold', 'INFO')
    assert proc.returncode == 0, proc.stderr
    mounted = _layer_lines(proc.stderr, 'Mounted')
    assert sorted(re.search(r'sha256:\w+', l).group() for l in mounted) == \
        sorted(l.digest for l in base.layers), proc.stderr
    assert len(_layer_lines(proc.stderr, 'Pushed')) == 1, proc.stderr
    assert not re.search(r'\] Layer .* (pushed|mounted)\.', proc.stderr)


def test_reporter_counts(caplog):
    reporter = progress.Reporter()
    reporter.expect([100, 50])
    a = reporter.transfer('sha256:a', 100)
    b = reporter.transfer('sha256:b', 50)
    a.add(60)
    a.restart()  # fetched once more: the first 60 bytes do not count
    a.add(30)
    b.add(50)
    assert reporter.counts() == (80, 80, 0)
    with caplog.at_level('INFO'):
        b.done('Pulled')
    assert caplog.messages == ['Pulled layer 1/2 sha256:b (50 B)']
    assert reporter.counts() == (80, 80, 1)
    progress.uncounted().add(10)
    assert reporter.counts() == (80, 80, 1)
    reporter.expect([None])
    assert reporter.total_bytes is None and reporter.total_layers == 3
