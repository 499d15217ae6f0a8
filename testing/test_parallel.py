"""The one parallel-run helper (client/v2_2/parallel.py) and its policy:
the first failure stops the rest and is raised; Ctrl-C does not wait for a
stuck task; cleanup after a failure is bounded."""
import signal
import threading
import time

import pytest

from containerregistry.client.v2_2 import flatten
from containerregistry.client.v2_2 import parallel


class Boom(Exception):
    pass


def _returning(value, delay: float = 0.0):
    def task():
        time.sleep(delay)
        return value
    return task


def test_results_come_in_task_order():
    # Later tasks finish first.
    tasks = [_returning(i, 0.05 * (5 - i)) for i in range(6)]
    assert parallel.run_all(tasks, 6) == list(range(6))


def test_one_thread_runs_in_the_callers_thread():
    caller = threading.current_thread()
    assert parallel.run_all([lambda: threading.current_thread()] * 3,
                            1) == [caller] * 3


def test_first_failure_stops_the_rest_and_signals_running_tasks():
    cancel = threading.Event()
    started = []
    running = threading.Event()

    def slow():
        started.append('slow')
        running.set()
        if not cancel.wait(30):
            return 'finished'
        raise parallel.Cancelled()

    def failing():
        running.wait(30)
        started.append('failing')
        raise Boom('layer 2 is damaged')

    def later(i):
        def task():
            started.append(i)
        return task

    tasks = [slow, failing] + [later(i) for i in range(10)]
    with pytest.raises(Boom, match='layer 2 is damaged'):
        parallel.run_all(tasks, 2, cancel=cancel)
    assert cancel.is_set()
    # Two threads: once `failing` failed, no other task started.
    assert sorted(started, key=str) == ['failing', 'slow']


def test_tasks_see_the_cancellation_of_their_own_run():
    running = threading.Event()
    seen = []

    def looping():
        running.set()
        while not parallel.cancelled():
            time.sleep(0.01)
        seen.append('cancelled')
        raise parallel.Cancelled()

    def failing():
        running.wait(30)
        raise Boom('failed')

    assert not parallel.cancelled()  # outside a run
    with pytest.raises(Boom):
        parallel.run_all([looping, failing], 2)
    assert seen == ['cancelled']


def test_a_real_error_is_reported_before_cancellations():
    cancel = threading.Event()
    running = threading.Event()

    def cancelled_first():
        running.wait(30)
        cancel.set()
        raise parallel.Cancelled()

    def real():
        running.set()
        time.sleep(0.2)
        raise Boom('the real cause')

    with pytest.raises(Boom, match='the real cause'):
        parallel.run_all([cancelled_first, real], 2, cancel=cancel)


def test_failure_is_raised_within_the_grace_when_a_task_is_stuck(monkeypatch):
    monkeypatch.setattr(parallel, 'GRACE_SECONDS', 0.5)
    never = threading.Event()

    def stuck():
        never.wait(60)  # ignores the cancel event, like a stalled read

    def failing():
        time.sleep(0.1)
        raise Boom('failed')

    start = time.monotonic()
    with pytest.raises(Boom):
        parallel.run_all([stuck, failing], 2)
    assert time.monotonic() - start < 10
    never.set()


@pytest.fixture
def interrupt_soon():
    """Delivers SIGUSR1, raising KeyboardInterrupt, to this thread soon."""
    def handler(signum, frame):
        raise KeyboardInterrupt()
    previous = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.3, signal.pthread_kill,
                            (threading.main_thread().ident, signal.SIGUSR1))
    timer.start()
    yield
    timer.cancel()
    signal.signal(signal.SIGUSR1, previous)


def test_ctrl_c_does_not_wait_for_a_stuck_task(interrupt_soon):
    never = threading.Event()
    cancel = threading.Event()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        parallel.run_all([lambda: never.wait(60)] * 2, 2, cancel=cancel)
    assert time.monotonic() - start < parallel.GRACE_SECONDS
    assert cancel.is_set()
    never.set()


def test_ctrl_c_waits_for_local_tasks_to_stop(interrupt_soon):
    """Local tasks (compression) stop at their next chunk once cancelled;
    they are waited for, so none writes after the caller's cleanup."""
    cancel = threading.Event()
    ended = []

    def chunks():
        while not cancel.wait(0.05):
            pass
        time.sleep(0.2)  # the chunk it was writing
        ended.append(time.monotonic())
        raise parallel.Cancelled()

    with pytest.raises(KeyboardInterrupt):
        parallel.run_all([chunks] * 2, 2, cancel=cancel, local=True)
    returned = time.monotonic()
    assert len(ended) == 2 and max(ended) <= returned


def test_ctrl_c_while_threads_start_stops_those_started(monkeypatch):
    """A signal landing while the run starts its threads still cancels
    them (and waits for local ones): none goes on after the caller's
    cleanup."""
    started = []
    real_start = threading.Thread.start

    def start(thread):
        real_start(thread)
        started.append(thread)
        if len(started) == 1:
            raise KeyboardInterrupt()

    monkeypatch.setattr(threading.Thread, 'start', start)
    cancel = threading.Event()
    ended = []

    def task():
        while not cancel.wait(0.05):
            pass
        ended.append(True)
        raise parallel.Cancelled()

    try:
        with pytest.raises(KeyboardInterrupt):
            parallel.run_all([task] * 2, 2, cancel=cancel, local=True)
        assert cancel.is_set()
        assert ended == [True]
    finally:
        cancel.set()


def test_ctrl_c_leaves_in_order_without_waiting(interrupt_soon):
    never = threading.Event()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with parallel.in_order([lambda: never.wait(60)] * 3, 2, 1) as results:
            list(results)
    assert time.monotonic() - start < parallel.GRACE_SECONDS
    never.set()


def test_in_order_yields_in_order_and_looks_ahead_a_bounded_distance():
    lock = threading.Lock()
    started = []
    consumed = []

    def task(i):
        def run():
            with lock:
                started.append(i)
            time.sleep(0.01 * ((7 * i) % 5))
            return i
        return run

    with parallel.in_order([task(i) for i in range(20)], 4, 2) as results:
        for value in results:
            with lock:
                # Never more than 2 beyond the one being read.
                assert max(started) <= value + 2
            consumed.append(value)
    assert consumed == list(range(20))


def test_in_order_raises_the_earliest_failure_and_starts_nothing_after():
    started = []
    third_failed = threading.Event()

    def task(i):
        def run():
            started.append(i)
            if i == 1:
                third_failed.wait(30)
                raise Boom('layer 1')
            if i == 3:
                third_failed.set()
                raise Boom('layer 3')
            return i
        return run

    got = []
    with pytest.raises(Boom, match='layer 1'):
        with parallel.in_order([task(i) for i in range(10)], 4, 4) as results:
            for value in results:
                got.append(value)
    assert got == [0]
    assert max(started) <= 4


def test_leaving_in_order_early_cancels_the_rest():
    cancel = threading.Event()

    def task():
        cancel.wait(30)
        return cancel.is_set()

    with parallel.in_order([lambda: 'first'] + [task] * 5, 3, 3,
                           cancel=cancel) as results:
        assert next(results) == 'first'
    assert cancel.is_set()


def test_flattens_read_ahead_leaves_a_stuck_read_on_ctrl_c(interrupt_soon):
    """flatten's read-ahead thread follows the same policy."""
    never = threading.Event()

    class Stuck:
        closed = False

        def read(self, size):
            never.wait(60)
            return b''

        def close(self):
            self.closed = True

    raw = Stuck()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with flatten._ReadAhead(raw) as stream:  # pylint: disable=protected-access
            stream.read(10)
    assert time.monotonic() - start < parallel.GRACE_SECONDS
    assert not raw.closed  # still being read: left to the process's end
    never.set()
