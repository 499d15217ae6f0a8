"""file_lock: one holder at a time across processes, and a bounded wait."""
import subprocess
import sys
import time

import pytest

from containerregistry.client.v2_2 import file_lock

_HOLD = '''
import fcntl, sys, time
f = open(sys.argv[1], 'a')
fcntl.flock(f, fcntl.LOCK_EX)
print('held', flush=True)
time.sleep(60)
'''


def _holder(path):
    proc = subprocess.Popen([sys.executable, '-c', _HOLD, path],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == 'held\n'
    return proc


def test_wait_is_bounded_while_another_process_holds_it(tmp_path):
    path = str(tmp_path / 'index.json.lock')
    holder = _holder(path)
    try:
        start = time.monotonic()
        with pytest.raises(file_lock.LockTimeout, match='index.json.lock'):
            with file_lock.exclusive(path, wait=0.5):
                pass
        assert time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_releases_it(tmp_path):
    path = str(tmp_path / 'lock')
    holder = _holder(path)
    holder.kill()
    holder.wait()
    with file_lock.exclusive(path, wait=5):
        with pytest.raises(file_lock.LockTimeout):
            with file_lock.exclusive(path, wait=0.1):
                pass
