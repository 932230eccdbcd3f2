"""Threads: priorities that let busy helper threads yield the CPU to the threads that
matter, and a shared/exclusive gate for an object several threads use."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def lower_this_thread_priority(niceness: int) -> bool:
    """Make the calling thread yield the CPU to others when both want it.

    On Linux niceness is per thread and threads inherit it, so threads started from a
    niced thread are nice too.  Returns whether it took effect (elsewhere callers fall
    back to what their toolkit offers, or to nothing).
    """
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except (AttributeError, OSError):
        return False
    return True


class SharedExclusiveLock:
    """Many holders at once (``shared``) or one alone (``exclusive``), exclusive first.

    For a model used by several threads: forward passes share it, while something that
    changes it for a while (hooks for an explanation) needs it to itself.  A waiting
    exclusive holder stops new shared ones, so a steady stream of them cannot starve it.
    The exclusive holder may also take it shared (it already has it alone).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._owner: int | None = None
        self._exclusive_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        if self._owner == threading.get_ident():
            yield
            return
        with self._cond:
            while self._owner is not None or self._exclusive_waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if self._shared == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:
            yield
            return
        with self._cond:
            self._exclusive_waiting += 1
            try:
                while self._owner is not None or self._shared:
                    self._cond.wait()
            finally:
                self._exclusive_waiting -= 1
            self._owner = me
        try:
            yield
        finally:
            with self._cond:
                self._owner = None
                self._cond.notify_all()


_gates: weakref.WeakKeyDictionary[Any, SharedExclusiveLock] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def use_gate(obj: Any) -> SharedExclusiveLock:
    """The one :class:`SharedExclusiveLock` of ``obj`` (e.g. a model's module), made on
    first use and gone with ``obj``."""
    with _gates_lock:
        gate = _gates.get(obj)
        if gate is None:
            gate = _gates[obj] = SharedExclusiveLock()
        return gate
