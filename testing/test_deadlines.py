"""Bounded waits and one retry policy, with the faults made for real.

A registry that never answers, one that trickles, bodies cut off in the
middle (ping, manifest, tag list, token), credential helpers that hang:
through the tampering proxy (testing/proxy.py) in front of the real
registry, or a socket that accepts and stays silent. Each test states the
bound it runs in; the waits are shortened with `--timeout` and the
CONTAINERREGISTRY_* variables.
"""
import os
import re
import signal
import stat
import subprocess
import time

import httplib2
import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_image
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import proxy as proxy_mod
from containerregistry.testing import push_helpers as ph
from containerregistry.testing import registry as reg
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)
from containerregistry.transport import pooled_http
from containerregistry.transport import retry_policy

_WARNING = re.compile(r'^W\d{4} ', re.M)


@pytest.fixture
def proxy(registry):
    p = proxy_mod.start_proxy(registry)
    yield p
    p.stop()


@pytest.fixture
def silent():
    server = proxy_mod.SilentServer()
    yield server
    server.stop()


def _warnings(stderr: str):
    return [line for line in stderr.splitlines() if _WARNING.match(line)]


def _timed(run):
    start = time.monotonic()
    proc = run()
    proc.elapsed = time.monotonic() - start
    return proc


# A registry that accepts and never answers.

@pytest.mark.parametrize('how', ['flag', 'environment'])
def test_puller_gives_up_at_its_timeout(silent, pull, how):
    name = '%s/some/image:tag' % silent.host
    if how == 'flag':
        proc = _timed(lambda: pull(name, '--timeout', '3'))
        source = '--timeout 3'
    else:
        env = dict(pull.env, CONTAINERREGISTRY_TIMEOUT='3')
        proc = _timed(lambda: pull(name, env=env))
        source = 'CONTAINERREGISTRY_TIMEOUT 3'
    line = pull.assert_failed(proc, 'Error pulling and saving image ' + name,
                              'GET http://%s/v2/' % silent.host,
                              'waiting for an answer from %s' % silent.host,
                              'gave up after 3s (%s)' % source)
    assert line.startswith('F'), line
    assert 3 <= proc.elapsed < 8, proc.elapsed
    assert not os.path.exists(proc.directory)


def test_docker_puller_gives_up_at_the_environments_timeout(silent, tmp_path):
    name = '%s/some/image:tag' % silent.host
    tarball = tmp_path / 'image.tar'
    env = dict(pars.tool_env(), CONTAINERREGISTRY_TIMEOUT='3')
    argv = pars.tool_command('docker_puller')  # built before the clock starts
    proc = _timed(lambda: subprocess.run(
        argv + ['--name', name, '--tarball', str(tarball)], env=env,
        capture_output=True, text=True, timeout=60))
    assert proc.returncode == 1, proc.stderr
    line, = pars.error_lines(proc.stderr)
    assert 'gave up after 3s (CONTAINERREGISTRY_TIMEOUT 3)' in line, line
    assert silent.host in line
    assert 3 <= proc.elapsed < 8, proc.elapsed
    assert not tarball.exists()


def test_silent_registry_fails_within_the_idle_limits(silent, pull):
    """No --timeout: every attempt waits the idle timeout (60 s by default,
    0.5 s here), 4 attempts in all, each retry announced by a WARNING."""
    env = dict(pull.env, CONTAINERREGISTRY_IDLE_TIMEOUT='0.5')
    proc = _timed(lambda: pull('%s/some/image:tag' % silent.host, env=env))
    pull.assert_failed(proc, 'GET http://%s/v2/' % silent.host,
                       '%s sent nothing for 0.5s' % silent.host)
    warnings = _warnings(proc.stderr)
    assert len(warnings) == 3, proc.stderr
    assert all('trying again' in w and silent.host in w for w in warnings)
    assert silent.accepted == 4
    # 4 idle timeouts and 3 backoffs of at most 0.75, 1.5 and 3 s.
    assert 2 <= proc.elapsed < 10, proc.elapsed


def test_default_limits_fail_a_silent_registry_within_five_minutes():
    """The defaults' worst case for a request nobody answers: 4 attempts of
    one idle timeout each, the longest backoffs between them (no connect
    wait: the connection is accepted)."""
    attempts = retry_policy.ATTEMPTS
    worst_backoffs = sum(min(retry_policy.BACKOFF_SECONDS * 2 ** i,
                             retry_policy.MAX_BACKOFF_SECONDS) * 1.5
                         for i in range(attempts - 1))
    worst = attempts * retry_policy.setting('IDLE_TIMEOUT') + worst_backoffs
    assert worst < 300, worst
    refused = attempts * retry_policy.setting('CONNECT_TIMEOUT') + worst_backoffs
    assert refused < 300, refused


def test_pusher_and_appender_give_up_at_their_timeout(silent, tools, tmp_path):
    disk = ph.write_disk_image(tools.new_dir('img'), [images.make_layer(901)])
    name = '%s/pushed/image:tag' % silent.host
    proc = _timed(lambda: tools.pusher(name, *disk.args(), '--timeout', '2'))
    ph.one_line_failure(proc, 'Error publishing ' + name,
                        'waiting for an answer from ' + silent.host,
                        'gave up after 2s (--timeout 2)')
    assert proc.elapsed < 7, proc.elapsed
    tarball = str(tmp_path / 'layer.tar.gz')
    with open(tarball, 'wb') as f:
        f.write(images.gzip_bytes(images.make_layer(902)))
    proc = _timed(lambda: tools.appender(name, tarball, name + '2',
                                         '--timeout', '2'))
    ph.one_line_failure(proc, 'Error appending to ' + name,
                        'waiting for an answer from ' + silent.host,
                        'gave up after 2s (--timeout 2)')
    assert proc.elapsed < 7, proc.elapsed


def test_push_whose_manifest_put_hangs_moves_no_tag(registry, proxy, repo_name,
                                                    tools):
    disk = ph.write_disk_image(tools.new_dir('img'), [images.make_layer(903)])
    proxy.hang('PUT', '/manifests/')
    name = '%s/%s:latest' % (proxy.host, repo_name)
    proc = _timed(lambda: tools.pusher(name, *disk.args(), '--timeout', '3'))
    ph.one_line_failure(proc, 'Error publishing ' + name,
                        'PUT http://%s/v2/%s/manifests/latest' % (proxy.host,
                                                                  repo_name),
                        'gave up after 3s (--timeout 3)')
    assert proc.elapsed < 8, proc.elapsed
    assert ph.tags(registry, repo_name) == []


@pytest.mark.parametrize('value', ['0', '-1', 'soon', 'inf'])
def test_bad_timeouts_are_refused(pull, value):
    proc = pull('localhost:1/a:b', '--timeout', value)
    assert proc.returncode == 2 and '--timeout must be a positive number' in proc.stderr
    env = dict(pull.env, CONTAINERREGISTRY_TIMEOUT=value)
    pull.assert_failed(pull('localhost:1/a:b', env=env),
                       'CONTAINERREGISTRY_TIMEOUT must be a positive number')


# Trickles and stalls.

def _pushed(registry, repo_name, seed):
    return images.push_image(registry, repo_name + ':t',
                             [images.make_layer(seed, 40_000),
                              images.make_layer(seed + 1)])


def test_stalled_download_is_resumed(registry, proxy, repo_name, pull):
    """100 bytes a second, less than the 2 KiB per second asked here: the
    download counts as stalled, is asked for again, and the image lands."""
    pushed = _pushed(registry, repo_name, 910)
    layer = pushed.layers[0].digest
    proxy.trickle('GET', '/blobs/' + layer, rate=100, times=1)
    env = dict(pull.env, CONTAINERREGISTRY_STALL_WINDOW='1',
               CONTAINERREGISTRY_STALL_BYTES='2048')
    proc = _timed(lambda: pull('%s/%s:t' % (proxy.host, pushed.repo), env=env))
    pull.assert_pulled(proc, pushed)
    warnings = _warnings(proc.stderr)
    assert len(warnings) == 1 and 'stalled' in warnings[0], proc.stderr
    assert 'Download of %s' % layer in warnings[0]
    assert proc.elapsed < 10, proc.elapsed
    assert proxy.count('GET', '/blobs/' + layer) == 2


def test_trickle_cannot_outlast_the_timeout(registry, proxy, repo_name, pull):
    """With the default stall window (30 s), a trickle of 100 B/s is
    still cut by --timeout, naming the host it was reading from."""
    pushed = _pushed(registry, repo_name, 912)
    proxy.trickle('GET', '/blobs/' + pushed.layers[0].digest, rate=100)
    proc = _timed(lambda: pull('%s/%s:t' % (proxy.host, pushed.repo),
                               '--timeout', '3'))
    pull.assert_failed(proc, 'waiting for the rest of the answer from '
                       + proxy.host, 'gave up after 3s (--timeout 3)')
    assert proc.elapsed < 8, proc.elapsed


# Bodies cut off in the middle are asked for again.

@pytest.mark.parametrize('pattern', ['^/v2/$', '/manifests/t$'],
                         ids=['ping', 'manifest'])
def test_cut_body_is_retried(registry, proxy, repo_name, pull, pattern):
    pushed = _pushed(registry, repo_name, 920)
    proxy.cut('GET', pattern, after=1)
    proc = pull('%s/%s:t' % (proxy.host, pushed.repo))
    pull.assert_pulled(proc, pushed)
    warnings = _warnings(proc.stderr)
    assert len(warnings) == 1 and 'trying again' in warnings[0], proc.stderr
    assert 'connection lost while reading the response' in warnings[0]


def test_cut_token_is_retried(token_registry, repo_name, pull, tmp_path):
    pushed = _pushed(token_registry, repo_name, 922)
    p = proxy_mod.start_proxy(token_registry)
    try:
        p.route_token()
        p.cut('GET', '^/token$', after=10)
        cfg = reg.docker_config(str(tmp_path / 'cfg'),
                                auths={p.host: token_registry.creds})
        proc = pull('%s/%s:t' % (p.host, pushed.repo), '--client-config-dir', cfg)
        pull.assert_pulled(proc, pushed)
        assert p.count('GET', '/token') == 2
        assert len(_warnings(proc.stderr)) == 1, proc.stderr
    finally:
        p.stop()


@pytest.mark.parametrize('transport', ['pooled', 'httplib2'])
def test_cut_tag_list_and_manifest_in_the_library(registry, proxy, repo_name,
                                                  transport):
    pushed = _pushed(registry, repo_name, 924)
    proxy.cut('GET', '/tags/list$', after=5)
    proxy.cut('GET', '/manifests/t$', after=5)
    http = pooled_http.Http() if transport == 'pooled' else httplib2.Http()
    name = docker_name.Tag('%s/%s:t' % (proxy.host, pushed.repo))
    with docker_image.FromRegistry(name, docker_creds.Anonymous(), http) as img:
        assert img.tags() == ['t']
        assert img.manifest().encode() == pushed.manifest
    assert proxy.count('GET', '/tags/list') == 2
    assert proxy.count('GET', '/manifests/t') == 2


def test_cut_every_time_fails_after_four_attempts(registry, proxy, repo_name, pull):
    pushed = _pushed(registry, repo_name, 926)
    proxy.cut('GET', '/manifests/t$', after=5, times=None)
    proc = pull('%s/%s:t' % (proxy.host, pushed.repo))
    pull.assert_failed(proc, 'GET http://%s/v2/%s/manifests/t' % (
        proxy.host, pushed.repo), 'connection lost while reading the response')
    assert len(_warnings(proc.stderr)) == 3, proc.stderr
    assert proxy.count('GET', '/manifests/t') == 4


# Credential helpers.

_SLEEPY_HELPER = '''#!/bin/sh
# Starts a child holding stdout, records its pid, then waits or exits.
sleep 600 &
echo $! > "$0.child"
if [ "$HELPER_MODE" = hang ]; then
  wait
fi
printf '{"Username":"%s","Secret":"%s"}' "$HELPER_USER" "$HELPER_SECRET"
'''


def _helper(tmp_path, env, mode):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    script = bindir / 'docker-credential-sleepy'
    script.write_text(_SLEEPY_HELPER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = dict(env, PATH='%s%s%s' % (bindir, os.pathsep, env['PATH']),
               HELPER_MODE=mode)
    return str(script) + '.child', env


def _gone(pid_file: str) -> bool:
    with open(pid_file) as f:
        pid = int(f.read())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return False


def test_hanging_credential_helper_is_killed(basic_registry, repo_name, pull,
                                            tmp_path):
    child, env = _helper(tmp_path, pull.env, 'hang')
    cfg = reg.docker_config(str(tmp_path / 'cfg'),
                            cred_helpers={basic_registry.host: 'sleepy'})
    env['CONTAINERREGISTRY_HELPER_TIMEOUT'] = '1'
    proc = _timed(lambda: pull('%s/%s:t' % (basic_registry.host, repo_name),
                               '--client-config-dir', cfg, env=env))
    pull.assert_failed(proc, 'docker-credential-sleepy did not answer within 1s')
    assert proc.elapsed < 6, proc.elapsed
    assert _gone(child)


def test_helper_child_holding_its_output_is_killed(basic_registry, repo_name,
                                                   monkeypatch, tmp_path):
    """The helper answered and exited; its child kept stdout open. The
    answer is used and the child killed, within a second or so."""
    child, env = _helper(tmp_path, dict(os.environ), 'exit')
    for key in ('PATH', 'HELPER_MODE'):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv('HELPER_USER', basic_registry.username)
    monkeypatch.setenv('HELPER_SECRET', basic_registry.password)
    start = time.monotonic()
    header = docker_creds.Helper('sleepy', basic_registry.host).Get()
    assert time.monotonic() - start < 5
    assert header == docker_creds.Basic(basic_registry.username,
                                        basic_registry.password).Get()
    assert _gone(child)


_ESCAPING_HELPER = '''#!/bin/sh
# Answers and exits, leaving a child in a session of its own holding stdout.
setsid sleep 600 &
echo $! > "$0.child"
printf '{"Username":"u","Secret":"s"}'
'''


def test_helper_child_outside_its_group_is_not_waited_for(monkeypatch,
                                                          tmp_path):
    """Killing the helper's group cannot reach a child that called setsid:
    the helper fails within a few seconds instead of waiting for it."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    script = bindir / 'docker-credential-escaping'
    script.write_text(_ESCAPING_HELPER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv('PATH', '%s%s%s' % (bindir, os.pathsep,
                                           os.environ['PATH']))
    start = time.monotonic()
    try:
        with pytest.raises(docker_creds.HelperError,
                           match='outside its process group'):
            docker_creds.Helper('escaping', 'localhost:5000').Get()
        assert time.monotonic() - start < 5
    finally:
        with open(str(script) + '.child') as f:
            os.kill(int(f.read()), signal.SIGKILL)


def test_timeout_cuts_a_helper_short(basic_registry, repo_name, pull, tmp_path):
    """--timeout is shorter than the helper's own limit (60 s): the helper
    is killed at the deadline, and the line still names it."""
    child, env = _helper(tmp_path, pull.env, 'hang')
    cfg = reg.docker_config(str(tmp_path / 'cfg'),
                            cred_helpers={basic_registry.host: 'sleepy'})
    proc = _timed(lambda: pull('%s/%s:t' % (basic_registry.host, repo_name),
                               '--client-config-dir', cfg, '--timeout', '2',
                               env=env))
    pull.assert_failed(proc, 'docker-credential-sleepy did not answer within 2s')
    assert proc.elapsed < 6, proc.elapsed
    assert _gone(child)


def test_alarm_ends_a_wait_outside_the_network(tools, tmp_path):
    """A wait no limit knows of (here the digester opening a FIFO nobody
    writes) still ends at --timeout, with one line and no output file."""
    fifo = str(tmp_path / 'config.fifo')
    os.mkfifo(fifo)
    output = str(tmp_path / 'out.digest')
    proc = _timed(lambda: tools.digester('--config', fifo, '--timeout', '1',
                                         output=output))
    ph.one_line_failure(proc, 'Error: the run took longer than 1s '
                        '(--timeout 1).')
    assert proc.elapsed < 6, proc.elapsed
    assert not os.path.exists(output)


@pytest.mark.parametrize('name', ['puller', 'pusher', 'digester', 'appender'])
def test_every_registry_tool_has_the_timeout_flag(name):
    """Listed last, after the seed's flags (test_cli_help checks the rest)."""
    import importlib
    from containerregistry.tools import cli
    module = importlib.import_module('containerregistry.tools.'
                                     + pars.MODULES[name])
    text = module.parser.format_help()
    usage, _, options = text.partition('\n\n')
    assert usage.rstrip().endswith('[--timeout SECONDS]'), usage
    assert ' '.join(options.split()).endswith(
        '--timeout SECONDS ' + ' '.join(cli.TIMEOUT_HELP.split())), options
