"""Golden tests: every tool's --help equals upstream's README text.

The expected text is the `usage:` code block under each `## NAME.par`
heading of testing/golden/tool_help.md (upstream's README, the contract).
A tool may add flags the README lacks only after `--stderrthreshold`, at
the end of both the usage and the option list; everything before is
compared byte for byte.
"""
import argparse
import importlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Tuple

import pytest

from containerregistry.testing import pars
from containerregistry.tools import cli
from containerregistry.tools import logging_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, 'testing', 'golden', 'tool_help.md')
TOOLS = ['puller', 'pusher', 'importer', 'flatten', 'appender', 'digester']


def seed_help() -> Dict[str, str]:
    """Maps tool name to the help text in the README."""
    with open(GOLDEN, encoding='utf-8') as f:
        text = f.read()
    helps = {}
    for section in re.split(r'^## ', text, flags=re.M)[1:]:
        heading, _, body = section.partition('\n')
        name = heading.strip()
        assert name.endswith('.par'), heading
        blocks = re.findall(r'^```[a-z]*\n(.*?)^```$', body, flags=re.M | re.S)
        usage = [b for b in blocks if b.startswith('usage: ')]
        assert len(usage) == 1, name
        helps[name[:-len('.par')]] = usage[0]
    return helps


SEED = seed_help()


def split_help(text: str) -> Tuple[str, str, str]:
    """(usage, description, option list) of a help text."""
    usage, description, options = text.split('\n\n', 2)
    return usage, description, options


def flags(text: str) -> List[str]:
    return re.findall(r'(?<![\w-])--?[a-z][\w-]*', text)


def check_help(name: str, text: str) -> None:
    """Asserts TEXT is the seed help of NAME, maybe with flags appended."""
    seed = SEED[name]
    if text == seed:
        return
    usage, description, options = split_help(text)
    seed_usage, seed_description, seed_options = split_help(seed)
    assert seed_usage.endswith('[--stderrthreshold STDERRTHRESHOLD]')
    assert usage.startswith(seed_usage), text
    assert description == seed_description
    assert options.startswith(seed_options), text
    extra_usage = usage[len(seed_usage):]
    extra_options = options[len(seed_options):]
    assert extra_usage[:1] in (' ', '\n') and extra_options[:3] == '  -', text
    # Every extra flag is listed in both places.
    option_flags = re.findall(r'^  (--?[\w-]+)', extra_options, flags=re.M)
    assert option_flags and sorted(option_flags) == sorted(
        set(flags(extra_usage))), text


def existing_tools() -> List[str]:
    return [name for name in TOOLS if os.path.exists(
        os.path.join(ROOT, 'tools', pars.MODULES[name] + '.py'))]


def test_seed_has_every_tool():
    assert sorted(SEED) == sorted(TOOLS)
    for name, text in SEED.items():
        assert text.startswith('usage: %s.par [-h]' % name)
        assert '\n\noptional arguments:\n  -h, --help ' in text
        assert text.endswith(
            '  --stderrthreshold STDERRTHRESHOLD\n'
            '                        Write log events at or above this level '
            'to stderr.\n')


@pytest.mark.parametrize('name', existing_tools())
@pytest.mark.parametrize('columns', ['40', '200'])
def test_parser_help(name, columns, monkeypatch):
    monkeypatch.setenv('COLUMNS', columns)
    module = importlib.import_module(
        'containerregistry.tools.' + pars.MODULES[name])
    check_help(name, module.parser.format_help())


@pytest.mark.parametrize('name', existing_tools())
def test_tool_help(name):
    env = dict(pars.tool_env(), COLUMNS='37')
    result = pars.run_tool(name, '--help', env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    check_help(name, result.stdout)


@pytest.mark.parametrize('name', existing_tools())
def test_tool_usage_error(name):
    result = pars.run_tool(name, '--no-such-flag')
    assert result.returncode == 2
    assert result.stdout == ''
    seed_usage = split_help(SEED[name])[0]
    assert result.stderr.startswith(seed_usage)
    assert re.search(r'\n%s\.par: error: [^\n]+\n\Z' % name, result.stderr)


# A parser assembled the way the puller's is, to pin down the formatter
# independently of the tool module.
PULLER_USAGE = '\n'.join([
    'puller.par [-h] --name NAME --directory DIRECTORY [--os OS]',
    '                   [--os-version OS_VERSION]',
    '                   [--os-features [OS_FEATURES [OS_FEATURES ...]]]',
    '                   [--architecture ARCHITECTURE] [--variant VARIANT]',
    '                   [--features [FEATURES [FEATURES ...]]]',
    '                   [--client-config-dir CLIENT_CONFIG_DIR]',
    '                   [--stderrthreshold STDERRTHRESHOLD]',
])
PLATFORM = 'For multi-platform manifest lists, specifies '


def puller_like(usage: str = PULLER_USAGE,
                extra: str = '') -> argparse.ArgumentParser:
    parser = cli.new_parser(
        prog='puller.par',
        description='Pull images from a Docker Registry, faaaaast.',
        usage=usage)
    parser.add_argument(
        '--name', action='store', required=True,
        help='The name of the docker image to pull and save. Supports '
        'fully-qualified tag or digest references.')
    parser.add_argument('--directory', action='store', required=True,
                        help="Where to save the image's files.")
    parser.add_argument('--os', help=PLATFORM + 'the operating system.')
    parser.add_argument('--os-version',
                        help=PLATFORM + 'the operating system version.')
    parser.add_argument('--os-features', nargs='*',
                        help=PLATFORM + 'operating system features.')
    parser.add_argument('--architecture',
                        help=PLATFORM + 'the CPU architecture.')
    parser.add_argument('--variant', help=PLATFORM + 'the CPU variant.')
    parser.add_argument('--features', nargs='*',
                        help=PLATFORM + 'CPU features.')
    if extra == 'before':
        parser.add_argument('--cache', help='Layer cache directory.')
    parser.add_argument(
        '--client-config-dir', action='store',
        help='The path to the directory where the client configuration '
        'files are located. Overiddes the value from DOCKER_CONFIG')
    logging_setup.DefineCommandLineArgs(parser)
    if extra == 'hidden':
        parser.add_argument('--cache', help=argparse.SUPPRESS)
    elif extra == 'after':
        parser.add_argument('--cache', help='Layer cache directory.')
    return parser


@pytest.mark.parametrize('columns', ['40', '80', '200', None])
def test_formatter_reproduces_puller_help(columns, monkeypatch):
    if columns is None:
        monkeypatch.delenv('COLUMNS', raising=False)
    else:
        monkeypatch.setenv('COLUMNS', columns)
    assert puller_like().format_help() == SEED['puller']
    assert puller_like(extra='hidden').format_help() == SEED['puller']


def test_usage_prefix_is_tolerated():
    parser = puller_like(usage='usage: ' + PULLER_USAGE + '\n')
    assert parser.format_help() == SEED['puller']


def test_nargs_star_is_rendered_old_style():
    parser = cli.new_parser('x', 'X.', 'x [--f [F [F ...]]]')
    parser.add_argument('--f', nargs='*', help='F.')
    parser.add_argument('--g', nargs='*', metavar='G', help='G.')
    text = parser.format_help()
    assert '  --f [F [F ...]]  F.\n' in text
    assert '  --g [G [G ...]]  G.\n' in text


def test_extra_flag_after_stderrthreshold_is_accepted():
    parser = puller_like(
        usage=PULLER_USAGE + ' [--cache CACHE]', extra='after')
    text = parser.format_help()
    assert text != SEED['puller']
    check_help('puller', text)


def test_extra_flag_elsewhere_is_rejected():
    parser = puller_like(
        usage=PULLER_USAGE + ' [--cache CACHE]', extra='before')
    with pytest.raises(AssertionError):
        check_help('puller', parser.format_help())


def test_extra_flag_missing_from_usage_is_rejected():
    parser = puller_like(extra='after')
    with pytest.raises(AssertionError):
        check_help('puller', parser.format_help())


def test_parse_error_prints_usage_and_exits_2(capsys):
    parser = puller_like()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(['--name', 'localhost:5000/a:b'])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err == (
        split_help(SEED['puller'])[0] + '\n'
        'puller.par: error: the following arguments are required: '
        '--directory\n')


def test_parses_arguments():
    args = puller_like(extra='hidden').parse_args([
        '--name', 'localhost:5000/a:b', '--directory', 'd',
        '--os-features', '', '--features', 'sse4', 'aes',
        '--cache', 'c', '--stderrthreshold', 'info'])
    assert args.os_features == ['']
    assert args.features == ['sse4', 'aes']
    assert args.cache == 'c'
    assert args.stderrthreshold == logging.INFO


def _runfiles(tmp_path) -> str:
    """A directory shaped like where `bazel run` starts a tool."""
    start = tmp_path / 'bin' / 'puller.par.runfiles' / 'containerregistry'
    start.mkdir(parents=True)
    return str(start)


def test_chdir_to_caller(tmp_path, monkeypatch):
    start = _runfiles(tmp_path)
    caller = tmp_path / 'caller'
    caller.mkdir()
    monkeypatch.chdir(start)
    monkeypatch.setattr(sys, 'path', list(sys.path) + ['relative/dir'])
    monkeypatch.setenv('BUILD_WORKING_DIRECTORY', str(caller))
    cli.chdir_to_caller()
    assert os.getcwd() == str(caller)
    assert sys.path[-1] == os.path.join(start, 'relative', 'dir')
    assert all(os.path.isabs(p) for p in sys.path)


def test_inherited_build_working_directory_is_ignored(tmp_path, monkeypatch):
    """A script started by `bazel run` that changed directory and runs the
    tool: the tool keeps the script's directory."""
    elsewhere = tmp_path / 'script-dir'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv('BUILD_WORKING_DIRECTORY', str(tmp_path))
    path = list(sys.path)
    cli.chdir_to_caller()
    assert os.getcwd() == str(elsewhere)
    assert sys.path == path


def test_build_working_directory_that_is_gone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(_runfiles(tmp_path))
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setenv('BUILD_WORKING_DIRECTORY', str(tmp_path / 'gone'))
    with pytest.raises(SystemExit) as exit_info:
        cli.chdir_to_caller()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        'error: cannot change to %s, the directory bazel run was called from '
        '(BUILD_WORKING_DIRECTORY): No such file or directory\n'
        % (tmp_path / 'gone'))


def test_chdir_to_caller_outside_bazel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('BUILD_WORKING_DIRECTORY', raising=False)
    path = list(sys.path)
    cli.chdir_to_caller()
    assert os.getcwd() == str(tmp_path)
    assert sys.path == path


def test_fatal_logs_one_critical_line_and_exits_1(caplog):
    with pytest.raises(SystemExit) as exit_info:
        cli.fatal('Error pulling and saving image %s: %s', 'a:b', 'boom')
    assert exit_info.value.code == 1
    [record] = caplog.records
    assert record.levelno == logging.CRITICAL
    assert record.getMessage() == 'Error pulling and saving image a:b: boom'
    assert record.filename == os.path.basename(__file__)


def test_fatal_message_without_args_is_literal(caplog):
    with pytest.raises(SystemExit):
        cli.fatal('100% done')
    assert caplog.records[0].getMessage() == '100% done'


@pytest.mark.parametrize('sig, status, line', [
    (signal.SIGINT, 130, 'Interrupted.\n'),
    (signal.SIGTERM, 143, 'Terminated.\n'),
], ids=['ctrl-c', 'sigterm'])
def test_run_unwinds_on_a_stop_signal(capsys, monkeypatch, sig, status, line):
    """Ctrl-C or SIGTERM unwinds the tool (its cleanup runs, past `except
    Exception`), then ends the process without waiting for threads
    (os._exit), with one line."""
    monkeypatch.delenv('BUILD_WORKING_DIRECTORY', raising=False)
    before = signal.getsignal(sig)
    cleaned = []

    def main():
        try:
            try:
                os.kill(os.getpid(), sig)
                time.sleep(30)
            except Exception:  # pylint: disable=broad-except
                cleaned.append('caught by the tool')
        finally:
            cleaned.append('finally')

    def exit_now(code):
        raise SystemExit(code)
    monkeypatch.setattr(cli.os, '_exit', exit_now)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    assert exit_info.value.code == status
    assert capsys.readouterr().err == line
    assert cleaned == ['finally']
    assert signal.getsignal(sig) == before
    # The grace timer went with the tool's return.
    assert not [t for t in threading.enumerate()
                if isinstance(t, threading.Timer) and t.is_alive()]


@pytest.mark.parametrize('sig, status, line', [
    (signal.SIGTERM, 143, 'Terminated.\n'),
    (signal.SIGINT, 130, 'Interrupted.\n'),
], ids=['sigterm', 'sigint'])
@pytest.mark.parametrize('then', ['wait', 'second-signal'])
def test_cleanup_after_a_stop_is_bounded(tmp_path, then, sig, status, line):
    """A cleanup that hangs after SIGTERM or Ctrl-C does not keep the tool
    alive past the grace period, nor past the same signal again."""
    script = tmp_path / 'stuck.py'
    script.write_text(
        'import os, signal, time\n'
        'from containerregistry.tools import cli\n'
        'cli.GRACE_SECONDS = %r\n'
        'def main():\n'
        '    try:\n'
        '        os.kill(os.getpid(), %d)\n'
        '        time.sleep(60)\n'
        '    finally:\n'
        '        if %r:\n'
        '            os.kill(os.getpid(), %d)\n'
        '        time.sleep(60)\n'
        'cli.run(main)\n' % (0.5 if then == 'wait' else 60.0, sig,
                              then == 'second-signal', sig))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=30)
    if then == 'wait':
        assert proc.returncode == status, proc.stderr
        assert proc.stderr == line
    else:
        assert proc.returncode == -sig, proc.stderr


def test_run_calls_main(tmp_path, monkeypatch):
    monkeypatch.chdir(_runfiles(tmp_path))
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setenv('BUILD_WORKING_DIRECTORY', str(tmp_path))
    seen = []
    exits = []
    monkeypatch.setattr(cli.os, '_exit', exits.append)
    cli.run(lambda: seen.append(os.getcwd()))
    assert seen == [str(tmp_path)]
    # Success ends the process at once, with status 0.
    assert exits == [0]
