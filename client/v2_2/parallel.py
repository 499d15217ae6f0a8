"""Runs tasks on a few threads, with one cancellation policy for every tool.

The policy, for `run_all` and `in_order` alike:

- The first failure, in the order the caller reads results (completion
  order for `run_all`, task order for `in_order`), is the one raised, in
  the caller's thread. Once a task fails, no further task starts.
- The CANCEL event is then set, so that running tasks that check it
  (directly, or through `cancelled()`) stop early, raising `Cancelled`,
  which is never the error reported while a real one exists.
- The caller waits for running tasks GRACE_SECONDS at most: a download
  stuck on the network does not hold the failure back. The threads are
  daemons, so a stuck one does not hold the interpreter's exit back either.
- Ctrl-C, SIGTERM or the run's deadline (anything but an `Exception`
  reaching the caller) sets CANCEL and returns at once, without waiting:
  the tool's own cleanup goes first (see tools/cli.py). Tasks that work
  only on local files (`local=True`: compression) are waited for then too,
  GRACE_SECONDS at most: they stop at their next chunk, and must not go on
  writing into a directory the cleanup is removing.

With one thread (or one task) the tasks run in the caller's thread.
"""
import threading
from typing import (Callable, Generic, Iterator, List, Optional, Sequence,
                    TypeVar)

T = TypeVar('T')

# How long a failure waits for the tasks still running before it is raised.
GRACE_SECONDS = 10.0


class Cancelled(Exception):
    """A task stopped early because another one failed."""


# The cancel event of the run whose task this thread runs, if any.
_current = threading.local()


def cancelled() -> bool:
    """Whether another task of the run this thread works for has failed
    (False outside a run): long loops check it between chunks."""
    event = getattr(_current, 'cancel', None)
    return event is not None and event.is_set()


def grace_for(error: Optional[BaseException]) -> float:
    """How long to wait for running work when leaving on ERROR (None: on
    success): GRACE_SECONDS, or nothing on Ctrl-C, SIGTERM or the like."""
    return GRACE_SECONDS if error is None or isinstance(error, Exception) else 0


class _Run(Generic[T]):
    """Tasks run on daemon threads, started in order while allowed.

    The threads start in `start()`, called where a Ctrl-C or SIGTERM
    arriving meanwhile still reaches `stop()`.
    """

    def __init__(self, tasks: Sequence[Callable[[], T]], threads: int,
                 cancel: threading.Event, name: str,
                 ahead: Optional[int] = None) -> None:
        self._tasks = list(tasks)
        self.cancel = cancel
        self._cond = threading.Condition()
        count = len(self._tasks)
        self._results: List[Optional[T]] = [None] * count
        self._errors: List[Optional[BaseException]] = [None] * count
        self._done = [False] * count
        self._failures: List[int] = []  # failed task indexes, in time order
        self._next = 0
        # Tasks before this index may start.
        self._limit = count if ahead is None else ahead + 1
        self._workers = max(1, min(threads, count))
        self._name = name
        self._alive = 0
        self.stopped = False

    def start(self) -> None:
        for number in range(self._workers):
            thread = threading.Thread(target=self._work, daemon=True,
                                      name='%s-%d' % (self._name, number))
            with self._cond:
                self._alive += 1
            thread.start()

    def _take(self) -> Optional[int]:
        with self._cond:
            while True:
                if (self._failures or self.cancel.is_set()
                        or self._next >= len(self._tasks)):
                    return None
                if self._next < self._limit:
                    self._next += 1
                    return self._next - 1
                self._cond.wait()

    def _work(self) -> None:
        _current.cancel = self.cancel
        try:
            while True:
                index = self._take()
                if index is None:
                    return
                try:
                    result = self._tasks[index]()
                except BaseException as e:  # pylint: disable=broad-except
                    with self._cond:
                        self._errors[index] = e
                        self._failures.append(index)
                        self._done[index] = True
                        self._cond.notify_all()
                else:
                    with self._cond:
                        self._results[index] = result
                        self._done[index] = True
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._alive -= 1
                self._cond.notify_all()

    def allow(self, limit: int) -> None:
        """Lets tasks before index LIMIT start."""
        with self._cond:
            if limit > self._limit:
                self._limit = limit
                self._cond.notify_all()

    def wait_all(self) -> List[T]:
        """Every result, in task order, or the first failure raised (once
        the others ended, or GRACE_SECONDS passed)."""
        with self._cond:
            while self._alive and not self._failures:
                self._cond.wait()
        if self._failures:
            self.stop(None)
            raise self._error()
        return self._results  # type: ignore[return-value]

    def result(self, index: int) -> T:
        """The result of task INDEX (waited for), or its failure raised."""
        with self._cond:
            while not self._done[index]:
                if not self._alive:
                    raise Cancelled()
                self._cond.wait()
            error, self._errors[index] = self._errors[index], None
            result, self._results[index] = self._results[index], None
        if error is not None:
            raise error
        return result  # type: ignore[return-value]

    def _error(self) -> BaseException:
        """The first failure in time; a real one before a `Cancelled`."""
        errors = [self._errors[i] for i in self._failures]
        real = [e for e in errors if not isinstance(e, Cancelled)]
        return (real or errors)[0]  # type: ignore[return-value]

    def stop(self, error: Optional[BaseException],
             local: bool = False) -> None:
        """Starts no more tasks and sets CANCEL; then gives running tasks
        GRACE_SECONDS to end, unless ERROR is Ctrl-C, SIGTERM or the like
        and the tasks are not LOCAL."""
        with self._cond:
            self.stopped = True
            self.cancel.set()
            self._cond.notify_all()
            grace = GRACE_SECONDS if local else grace_for(error)
            if grace:
                self._cond.wait_for(lambda: not self._alive, grace)


def run_all(tasks: Sequence[Callable[[], T]], threads: int,
            cancel: Optional[threading.Event] = None,
            name: str = 'parallel', local: bool = False) -> List[T]:
    """Runs TASKS on up to THREADS threads; their results, in task order.

    The first task to fail stops the rest (see the module's docstring);
    CANCEL, if given, is the event set then, for tasks to check. LOCAL
    tasks are waited for on Ctrl-C and SIGTERM too.
    """
    cancel = cancel if cancel is not None else threading.Event()
    tasks = list(tasks)
    if min(threads, len(tasks)) <= 1:
        results = []
        try:
            for task in tasks:
                results.append(task())
        except BaseException:
            cancel.set()
            raise
        return results
    run = _Run(tasks, threads, cancel, name)
    try:
        run.start()
        return run.wait_all()
    except BaseException as e:
        if not run.stopped:
            run.stop(e, local)
        raise


class in_order(Generic[T]):  # pylint: disable=invalid-name
    """Results of TASKS in task order, at most AHEAD tasks beyond the one
    being read started (so that few results are held), on up to THREADS
    threads. A context manager:

        with parallel.in_order(tasks, threads, ahead) as results:
            for result in results:
                ...

    A failing task stops the tasks after it from starting; its error is
    raised where its result would have come, so the error raised is the
    failure of the earliest task. Leaving the block sets CANCEL (given, or
    the run's own) and gives running tasks GRACE_SECONDS to end; on Ctrl-C
    or SIGTERM it does not wait.
    """

    def __init__(self, tasks: Sequence[Callable[[], T]], threads: int,
                 ahead: int, cancel: Optional[threading.Event] = None,
                 name: str = 'parallel') -> None:
        self._tasks = list(tasks)
        self._threads = threads
        self._ahead = max(0, ahead)
        self._cancel = cancel if cancel is not None else threading.Event()
        self._name = name
        self._run: Optional[_Run[T]] = None

    def __enter__(self) -> Iterator[T]:
        if min(self._threads, len(self._tasks)) <= 1:
            return (task() for task in self._tasks)
        self._run = _Run(self._tasks, self._threads, self._cancel, self._name,
                         self._ahead)
        try:
            self._run.start()
        except BaseException as e:
            self._run.stop(e)
            raise
        return self._results(self._run)

    def _results(self, run: _Run[T]) -> Iterator[T]:
        for index in range(len(self._tasks)):
            run.allow(index + self._ahead + 1)
            yield run.result(index)

    def __exit__(self, unused_type, error: Optional[BaseException],
                 unused_traceback) -> None:
        if self._run is None:
            self._cancel.set()
            return
        self._run.stop(error)
