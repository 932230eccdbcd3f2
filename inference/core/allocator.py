"""Tune glibc's allocator for this program's pattern: many large buffers freed and
allocated again at once (a model's activations batch after batch, decoded tiles).

With glibc's defaults every thread's arena gives freed memory above 128 KB (raised only
as large blocks are freed) back to the kernel, and takes it back page by page, each
page a fault the kernel answers by zeroing it: measured here over 55 batches of the
demo classifier headless, the two CPU lanes took about 950,000 page faults (some 270,000
a second) and ran at 506 patches/s; with the settings below, about 56,000 faults and
614 patches/s, for about 60 MB more RSS.  In the viewer the difference was larger (a
fixed 128 KB mmap threshold, used there before, cost 2.8x the CPU per batch).  Freed
memory past these bounds still goes back to the OS, so the viewer's memory follows its
tile cache's byte bound.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# glibc's mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: Blocks at least this big get their own mapping (the most glibc raises it to itself).
MMAP_THRESHOLD_BYTES = 32 << 20
#: Free memory an arena keeps at its top before giving it back to the OS.
TRIM_THRESHOLD_BYTES = 32 << 20
#: Extra memory an arena takes when it grows, and keeps when it trims.
TOP_PAD_BYTES = 32 << 20

_done = False


def tune_allocator() -> bool:
    """Apply the settings above once per process (glibc only; elsewhere nothing).

    Returns whether they are in effect.  Call it early, before threads allocate much.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        settings = (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (_M_TOP_PAD, TOP_PAD_BYTES),
        )
        applied = all(libc.mallopt(param, value) == 1 for param, value in settings)
    except (OSError, AttributeError) as exc:  # not glibc: keep the defaults
        log.debug("mallopt unavailable: %s", exc)
        return False
    _done = applied
    return applied
