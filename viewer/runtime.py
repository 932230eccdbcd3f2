"""Process settings that keep the window responsive while tiles and models are busy.

* The cyclic garbage collector stops every thread while it runs; a full collection over
  the ~300,000 objects of a running viewer (Qt wrappers, imported modules) took up to
  120 ms, felt as a hitch while panning.  Everything alive once the window is built is
  frozen out of collection and young collections run less often.
* glibc's allocator keeps freed memory for reuse (see :mod:`inference.core.allocator`).
* A thread waiting for the GIL gets it sooner, so the GUI thread never waits long
  behind a busy reader or worker thread.
"""

from __future__ import annotations

import gc
import sys

from inference.core.allocator import tune_allocator
from inference.core.threads import lower_this_thread_priority

__all__ = ["lower_this_thread_priority", "tune_for_interaction"]

#: GIL hand-over interval (Python's default is 5 ms).
SWITCH_INTERVAL_S = 0.002


def tune_for_interaction() -> None:
    """Apply the settings above; call once the main window exists.  Idempotent."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 20, 20)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    tune_allocator()
