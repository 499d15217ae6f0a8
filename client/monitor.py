"""Hooks for monitoring client-side operations (unused by the tools)."""
import abc
from types import TracebackType


class Context(metaclass=abc.ABCMeta):
    """A context manager that every monitored client operation runs in."""

    @abc.abstractmethod
    def __init__(self, operation: str):
        self._operation = operation

    @abc.abstractmethod
    def __enter__(self) -> 'Context':
        return self

    @abc.abstractmethod
    def __exit__(self, exc_type: type[BaseException] | None,
                 exc_value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Ends the operation; never suppresses the exception."""


class Nop(Context):
    """The default Context: records nothing."""

    def __init__(self, operation: str):
        super().__init__(operation)

    def __enter__(self) -> 'Nop':
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc_value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None
