"""Short jobs off the GUI thread (reading a ground-truth file, a tissue mask) with the
answer delivered back on the GUI thread.  Model work goes to the inference worker."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class BackgroundCalls(QObject):
    """``call(fn, on_done, on_error)`` runs ``fn()`` on a daemon thread and then calls
    ``on_done(result)`` or ``on_error(message)`` on the GUI thread.  Errors are caught
    whatever their type, so a failing call never goes unnoticed or kills anything.
    :meth:`forget` / :meth:`forget_pending` drop the answer of calls whose result is no
    longer wanted (their slide was closed): the thread finishes, nobody is called."""

    _done = Signal(int, object)
    _error = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable[[Any], None], Callable[[str], None]]] = {}
        self._threads: list[threading.Thread] = []
        self._done.connect(self._on_done)
        self._error.connect(self._on_error)

    def call(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None],
        name: str = "slidelens-background",
    ) -> int:
        call_id = next(self._ids)
        self._callbacks[call_id] = (on_done, on_error)

        def work() -> None:
            try:
                result = fn()
            except Exception as exc:
                log.debug("background call %s failed", name, exc_info=True)
                self._emit(self._error, call_id, str(exc) or type(exc).__name__)
                return
            self._emit(self._done, call_id, result)

        thread = threading.Thread(target=work, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return call_id

    @staticmethod
    def _emit(signal: Any, call_id: int, payload: object) -> None:
        try:
            signal.emit(call_id, payload)
        except RuntimeError:  # the window closed meanwhile: nobody is left to tell
            log.debug("background call %s finished after its owner was deleted", call_id)

    def forget(self, call_id: int) -> None:
        """Never call back for ``call_id`` (it still runs to its end, unobserved)."""
        self._callbacks.pop(call_id, None)

    def forget_pending(self) -> None:
        """:meth:`forget` every call that has not answered yet."""
        self._callbacks.clear()

    def wait(self, timeout: float = 30.0) -> None:
        """Join running calls (tests and shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _on_done(self, call_id: int, result: object) -> None:
        callbacks = self._callbacks.pop(call_id, None)
        if callbacks is not None:
            callbacks[0](result)

    def _on_error(self, call_id: int, message: str) -> None:
        callbacks = self._callbacks.pop(call_id, None)
        if callbacks is not None:
            callbacks[1](message)
