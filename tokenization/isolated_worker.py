"""Run calls that may kill their process (a native library's abort) in a child process, one item at a time.

A Rust or C abort (moyopy aborts on a failed allocation; see ``benchmarks/RESULTS.md``, "moyopy as the v2
backend") ends the whole process: no ``except`` can catch it. :class:`IsolatedWorker` runs each call in one
long-lived child process. When the child dies, the call raises :class:`~tokenization.scope_errors.WorkerDiedError`
naming the item; when it answers nothing within ``timeout`` seconds (a hang, or an item too costly), it is killed and
the call raises :class:`~tokenization.scope_errors.TimeLimitError` (reason ``resource_limit``). The next call starts
a fresh child. So a batch reports that item as a typed error row and goes on.

Example:

    >>> with IsolatedWorker() as worker:
    ...     worker.call(pow, 2, 10)
    1024
"""

from __future__ import annotations

import multiprocessing
import resource
from collections.abc import Callable
from typing import Any

from .scope_errors import TimeLimitError, WorkerDiedError

__all__ = ["IsolatedWorker"]


def _serve(connection, memory_limit: int | None) -> None:
    """The child's loop: ``(function, args)`` in, ``("ok", result)`` or ``("raised", exception)`` out."""
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    while True:
        message = connection.recv()
        if message is None:
            return
        function, args = message
        try:
            answer = ("ok", function(*args))
        except Exception as exc:  # noqa: BLE001  (handed back to the caller, who re-raises it)
            answer = ("raised", exc)
        connection.send(answer)


class IsolatedWorker:
    """One child process that runs calls in turn and is replaced when it dies.

    Args:
        memory_limit: address-space limit of the child in bytes (``RLIMIT_AS``), so that a runaway allocation
            fails (and aborts the child) before it takes the machine's memory; ``None`` for no limit.
        timeout: longest wait in seconds for one call; the child is then killed (``None``: wait for ever).
        context: a ``multiprocessing`` start method (``"fork"``, ``"spawn"``, ``"forkserver"``); functions and
            arguments must be picklable for ``"spawn"``.
    """

    def __init__(self, memory_limit: int | None = None, timeout: float | None = None, context: str = "fork"):
        self.memory_limit = memory_limit
        self.timeout = timeout
        self._context = multiprocessing.get_context(context)
        self._process = None
        self._connection = None
        self.deaths = 0

    def _start(self) -> None:
        self._connection, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child, self.memory_limit), daemon=True)
        self._process.start()
        child.close()

    def call(self, function: Callable, *args, source: str | None = None) -> Any:
        """``function(*args)`` in the child process.

        Args:
            function: a picklable callable (a module-level function).
            args: its arguments.
            source: the item's name, for the error.

        Returns:
            What ``function`` returned.

        Raises:
            TimeLimitError: no answer within ``timeout`` (the child is killed; the next call starts a new one).
            WorkerDiedError: the child died (the next call starts a new one).
            Exception: whatever ``function`` raised, re-raised here.
        """
        if self._process is None or not self._process.is_alive():
            self._start()
        try:
            self._connection.send((function, args))
            if not self._connection.poll(self.timeout):
                self._process.kill()
                self._process.join(5)
                self._process = None
                self.deaths += 1
                raise TimeLimitError(
                    f"no answer within {self.timeout:g} s (the time limit of one item); the worker was killed",
                    source,
                )
            status, value = self._connection.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError) as exc:
            self._process.join(5)
            code = self._process.exitcode
            self._process = None
            self.deaths += 1
            detail = str(exc) or "the connection closed"
            raise WorkerDiedError(f"the worker process died (exit code {code}): {detail}", source) from None
        if status == "raised":
            raise value
        return value

    def close(self) -> None:
        """Stop the child (it finishes the call in progress, if any)."""
        if self._process is not None and self._process.is_alive():
            self._connection.send(None)
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
        self._process = None

    def __enter__(self) -> IsolatedWorker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
