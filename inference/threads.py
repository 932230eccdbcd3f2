"""Thread priority: let busy helper threads yield the CPU to the threads that matter."""

from __future__ import annotations

import os
import threading


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
