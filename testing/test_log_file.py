"""--log-file: one log that concurrent tool runs share, rotated, and loaded
only when asked for."""
import os
import re
import subprocess
import sys

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars

LINE = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \S+:\d+\] .*$')


def _pid(line: str) -> int:
    return int(line.split()[2])


def _read(path) -> list:
    with open(path, encoding='utf-8') as f:
        return f.read().splitlines()


def test_concurrent_pulls_share_one_log_file(registry, tmp_path):
    images.push_image(registry, 'logs/shared:1',
                      [images.make_layer(seed) for seed in range(3)])
    log = tmp_path / 'tools.log'
    argv = ['--name', '%s/logs/shared:1' % registry.host,
            '--stderrthreshold', 'INFO', '--log-file', str(log)]
    procs = [subprocess.Popen(
        pars.tool_command('puller') + argv
        + ['--directory', str(tmp_path / ('out%d' % i))],
        env=pars.tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for i in range(4)]
    results = [(p, *p.communicate(timeout=120)) for p in procs]
    for proc, _, stderr in results:
        assert proc.returncode == 0, stderr
    lines = _read(log)
    assert all(LINE.match(line) for line in lines), lines
    for proc, _, stderr in results:
        mine = [line for line in lines if _pid(line) == proc.pid]
        # Every record the run wrote to stderr is in the file, whole.
        assert mine == [line for line in stderr.splitlines()
                        if LINE.match(line)]
        assert any(line.endswith('] Pulling %s/logs/shared:1' % registry.host)
                   for line in mine), mine
        assert any('] Pulled ' in line for line in mine), mine


def test_default_threshold_keeps_info_out_of_the_file(tmp_path):
    log = tmp_path / 'tools.log'
    result = pars.run_tool('importer', '--tarball', str(tmp_path / 'missing'),
                           '--directory', str(tmp_path / 'out'),
                           '--log-file', str(log))
    assert result.returncode == 1
    lines = _read(log)
    assert len(lines) == 1 and lines[0].startswith('F'), lines
    assert str(tmp_path / 'missing') in lines[0]
    assert lines[0] in result.stderr


def test_log_file_that_cannot_be_opened_is_one_line(tmp_path):
    path = tmp_path / 'no' / 'such' / 'dir' / 'tools.log'
    result = pars.run_tool('importer', '--tarball', str(tmp_path / 'x'),
                           '--directory', str(tmp_path / 'out'),
                           '--log-file', str(path))
    assert result.returncode == 1
    assert result.stderr == (
        'error: cannot open log file %s: No such file or directory\n' % path)
    assert not (tmp_path / 'out').exists()


# Writes COUNT records through --log-file with a small rotation size, as
# several tool processes at once would.
_WRITER = '''
import logging, sys
from containerregistry.tools import logging_setup
logging_setup.LOG_FILE_MAX_BYTES = 4096
logging_setup.LOG_FILE_BACKUPS = 1000
parser = logging_setup.argparse.ArgumentParser()
logging_setup.DefineCommandLineArgs(parser)
logging_setup.DefineLogFileArg(parser)
logging_setup.Init(parser.parse_args(
    ['--stderrthreshold', 'INFO', '--log-file', sys.argv[1]]))
for i in range(int(sys.argv[2])):
    logging.info('writer %s record %d', sys.argv[3], i)
'''


def test_concurrent_writers_rotate_without_losing_records(tmp_path):
    log = tmp_path / 'tools.log'
    writers, count = 4, 300
    env = dict(pars.tool_env(), PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, '-c', _WRITER, str(log),
                               str(count), str(w)], env=env,
                              stderr=subprocess.DEVNULL)
             for w in range(writers)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    files = [p for p in os.listdir(tmp_path) if p.startswith('tools.log')]
    assert len(files) > 5, files  # it rotated
    records = []
    for name in files:
        lines = _read(tmp_path / name)
        assert os.path.getsize(tmp_path / name) <= 4096 + 200, name
        assert all(LINE.match(line) for line in lines), name
        records += [line.split('] ', 1)[1] for line in lines]
    assert sorted(records) == sorted(
        'writer %d record %d' % (w, i)
        for w in range(writers) for i in range(count))


@pytest.mark.parametrize('flag', [[], ['--log-file', 'x.log']])
def test_the_log_handler_is_loaded_only_for_the_flag(tmp_path, flag):
    probe = '''
import sys
from containerregistry.tools import fast_puller, logging_setup
logging_setup.Init(fast_puller.parser.parse_args(
    ['--name', 'n', '--directory', 'd'] + sys.argv[1:]))
print('concurrent_log_handler' in sys.modules)
'''
    env = dict(pars.tool_env(), PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, '-c', probe] + flag, cwd=tmp_path,
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout == ('True\n' if flag else 'False\n')
