"""leftovers: temporary names that say which process wrote them."""
import os
import socket
import subprocess


from containerregistry.client.v2_2 import leftovers


def _dead_pid() -> int:
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


def test_only_ended_processes_of_this_host_are_abandoned():
    host = leftovers.host()
    dead = _dead_pid()
    assert host.split(':')[0] == socket.gethostname()
    assert leftovers.tag() == '%d@%s' % (os.getpid(), host)
    assert not leftovers.abandoned(leftovers.tag())
    assert leftovers.abandoned('%d@%s' % (dead, host))
    assert not leftovers.abandoned('%d@%s.other' % (dead, host))
    assert not leftovers.abandoned('x@%s' % host)


def test_pattern_finds_the_tag_in_dotted_and_dashed_names(tmp_path):
    host = leftovers.host()
    dead = _dead_pid()
    pattern = leftovers.pattern(r'\..+\.', r'\.\d+\.tmp')
    name = '.000.tar.gz.%d@%s.12345.tmp' % (dead, host)
    assert pattern.match(name).group('owner') == '%d@%s' % (dead, host)
    names = [name, '.000.tar.gz.%d@a.b-c.1.tmp' % dead, '000.tar.gz',
             '.000.tar.gz.%d.1.tmp' % dead]  # the old form: no host, kept
    for n in names:
        (tmp_path / n).write_bytes(b'x')
    (tmp_path / ('.d.%d@%s.2.tmp' % (dead, host))).mkdir()
    removed = leftovers.remove_abandoned(str(tmp_path), pattern)
    assert removed == sorted([name, '.d.%d@%s.2.tmp' % (dead, host)])
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])


def test_create_beside_clears_only_its_own_files(tmp_path):
    host = leftovers.host()
    dead = _dead_pid()
    mine = '.out.tar.%d@%s.abc_123.tmp' % (dead, host)
    others = ['.other.tar.%d@%s.abc_123.tmp' % (dead, host),
              '.out.tar.%d@%s.abc_456.tmp' % (os.getpid(), host)]
    for name in [mine] + others:
        (tmp_path / name).write_bytes(b'x')
    fd, temp = leftovers.create_beside(str(tmp_path / 'out.tar'))
    os.close(fd)
    assert os.path.basename(temp).startswith('.out.tar.%s.' % leftovers.tag())
    assert temp.endswith('.tmp')
    assert sorted(os.listdir(tmp_path)) == sorted(others + [os.path.basename(temp)])
