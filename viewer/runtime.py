"""Process settings that keep the window responsive while tiles and models are busy.

* The cyclic garbage collector stops every thread while it runs; a full collection over
  the ~300,000 objects of a running viewer (Qt wrappers, imported modules) took up to
  120 ms, felt as a hitch while panning.  Everything alive once the window is built is
  frozen out of collection and young collections run less often.
* Tile buffers (a few hundred KB each) are given to the OS when the cache evicts them,
  not kept in the heap, so memory follows the cache's byte bound.
* A thread waiting for the GIL gets it sooner, so the GUI thread never waits long
  behind a busy reader or worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

from inference.threads import lower_this_thread_priority

__all__ = ["lower_this_thread_priority", "tune_for_interaction"]

log = logging.getLogger(__name__)

#: glibc's mallopt parameter: allocations at least this big get their own mapping.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024
#: GIL hand-over interval (Python's default is 5 ms).
SWITCH_INTERVAL_S = 0.002


def tune_for_interaction() -> None:
    """Apply the settings above; call once the main window exists.  Idempotent."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 20, 20)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            # a fixed threshold also stops glibc from raising it after each free
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        except (OSError, AttributeError) as exc:  # not glibc: keep the default
            log.debug("mallopt unavailable: %s", exc)
