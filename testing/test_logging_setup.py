"""glog-style log lines and the --stderrthreshold flag."""
import argparse
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from containerregistry.tools import logging_setup

LINE = re.compile(r'^[DIWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} [ \d]{7} '
                  r'\S+:\d+\] .*$')


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv('TZ', 'UTC')
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def root():
    """The root logger, restored afterwards."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def record(level=logging.INFO, created=1574822400.123456, pid=12345,
           msg='msg', args=()):
    rec = logging.LogRecord('name', level, '/src/tools/fast_puller.py', 99,
                            msg, args, None)
    rec.created = created
    rec.process = pid
    return rec


def fmt(rec) -> str:
    return logging_setup.Formatter().format(rec)


def test_format_matches_upstream_example(utc):
    assert fmt(record()) == (
        'I1127 02:40:00.123456   12345 fast_puller.py:99] msg')


def test_constants():
    assert logging_setup.FORMAT == (
        '%(shortlevel)s%(asctime)s.%(time_millis)06d %(process_str)s '
        '%(filename)s:%(lineno)d] %(message)s')
    assert logging_setup.TIMESTAMP_FORMAT == '%m%d %H:%M:%S'


@pytest.mark.parametrize('level,letter', [
    (logging.DEBUG, 'D'), (logging.INFO, 'I'), (logging.WARNING, 'W'),
    (logging.ERROR, 'E'), (logging.CRITICAL, 'F')])
def test_short_level(level, letter, utc):
    assert fmt(record(level)).startswith(letter + '1127 02:40:00.')


def test_microseconds_and_padding(utc):
    text = fmt(record(created=1574822400.000042, pid=7, msg='a %s',
                      args=('b',)))
    assert text == 'I1127 02:40:00.000042       7 fast_puller.py:99] a b'


def test_microseconds_never_round_into_next_second(utc):
    assert fmt(record(created=1574822400.9999998)).startswith(
        'I1127 02:40:00.999999 ')


def test_wide_pid_and_unknown_pid(utc):
    assert ' 12345678 ' in fmt(record(pid=12345678))
    assert fmt(record(pid=None)) == (
        'I1127 02:40:00.123456 ??????? fast_puller.py:99] msg')


def test_local_time(monkeypatch):
    monkeypatch.setenv('TZ', 'Asia/Kolkata')
    time.tzset()
    try:
        assert fmt(record()).startswith('I1127 08:10:00.123456 ')
    finally:
        monkeypatch.undo()
        time.tzset()


def parse(*argv):
    parser = argparse.ArgumentParser(prog='tool.par')
    logging_setup.DefineCommandLineArgs(parser)
    return parser.parse_args(list(argv))


def test_flag_help():
    parser = argparse.ArgumentParser(prog='tool.par')
    logging_setup.DefineCommandLineArgs(parser)
    assert ('  --stderrthreshold STDERRTHRESHOLD\n'
            '                        Write log events at or above this level '
            'to stderr.\n') in parser.format_help()


@pytest.mark.parametrize('value,level', [
    ('DEBUG', logging.DEBUG), ('INFO', logging.INFO), ('info', logging.INFO),
    ('Warning', logging.WARNING), ('WARN', logging.WARNING),
    ('ERROR', logging.ERROR), ('CRITICAL', logging.CRITICAL),
    ('fatal', logging.CRITICAL),
    ('0', logging.INFO), ('1', logging.WARNING), ('2', logging.ERROR),
    ('3', logging.CRITICAL)])
def test_threshold_values(value, level):
    assert parse('--stderrthreshold', value).stderrthreshold == level


def test_threshold_unset():
    assert parse().stderrthreshold is None


@pytest.mark.parametrize('value', ['loud', '4', '-1', '20', ''])
def test_bad_threshold_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse('--stderrthreshold', value)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('usage: tool.par ')
    assert err.endswith(
        'tool.par: error: argument --stderrthreshold: invalid level %r: use '
        'DEBUG, INFO, WARNING, ERROR, CRITICAL (or FATAL), or glog severity '
        '0-3\n' % value)


def test_parse_level():
    assert logging_setup.ParseLevel(' error ') == logging.ERROR
    assert logging_setup.ParseLevel(logging.DEBUG) == logging.DEBUG
    with pytest.raises(ValueError):
        logging_setup.ParseLevel('verbose')


def ours(logger):
    return [h for h in logger.handlers
            if isinstance(h.formatter, logging_setup.Formatter)]


def test_init_is_idempotent(root):
    logging_setup.Init()
    logging_setup.Init()
    logging_setup.Init(args=parse('--stderrthreshold', '0'))
    assert len(ours(root)) == 1


def test_default_hides_info(root, capsys):
    root.setLevel(logging.WARNING)
    logging_setup.Init(args=parse())
    assert root.level == logging.WARNING
    logging.info('hidden')
    line = sys._getframe().f_lineno + 1
    logging.warning('shown %d', 1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert LINE.match(lines[0]), lines
    assert lines[0].startswith('W')
    assert lines[0].endswith(' test_logging_setup.py:%d] shown 1' % line)


@pytest.mark.parametrize('value', ['0', 'INFO', 'info'])
def test_threshold_shows_info(value, root, capsys):
    logging_setup.Init(args=parse('--stderrthreshold', value))
    assert root.level == logging.INFO
    logging.debug('hidden')
    logging.info('shown')
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('I')
    assert lines[0].endswith('] shown')


def test_threshold_raises_level(root, capsys):
    logging_setup.Init(args=parse('--stderrthreshold', '2'))
    logging.warning('hidden')
    logging.error('shown')
    assert capsys.readouterr().err.splitlines()[0][0] == 'E'


def test_init_accepts_string_values(root):
    logging_setup.Init(args=argparse.Namespace(stderrthreshold='warning'))
    assert root.level == logging.WARNING
    logging_setup.Init(args=argparse.Namespace(stderrthreshold='1'))
    assert root.level == logging.WARNING


def test_in_a_fresh_process():
    """Nothing else configured logging: output is exactly our lines."""
    shim = [p for p in sys.path
            if os.path.islink(os.path.join(p, 'containerregistry'))]
    code = '\n'.join([
        'import argparse, logging',
        'from containerregistry.tools import logging_setup',
        'p = argparse.ArgumentParser()',
        'logging_setup.DefineCommandLineArgs(p)',
        'logging_setup.Init(args=p.parse_args())',
        'logging_setup.Init()',
        'logging.info("i")',
        'logging.warning("w")',
        'logging.fatal("f")',
    ])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(shim))
    quiet = subprocess.run([sys.executable, '-c', code], env=env,
                           capture_output=True, text=True, check=True)
    lines = quiet.stderr.splitlines()
    assert [line[0] for line in lines] == ['W', 'F']
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0].endswith(' <string>:8] w')
    assert int(lines[0].split()[2]) > 0
    loud = subprocess.run(
        [sys.executable, '-c', code, '--stderrthreshold', '0'], env=env,
        capture_output=True, text=True, check=True)
    assert [line[0] for line in loud.stderr.splitlines()] == ['I', 'W', 'F']
    assert loud.stdout == ''
