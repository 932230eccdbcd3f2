"""The exit codes of every ``slidelens`` command, defined once.

The same fault gives the same code whichever command meets it:

==== ====================================================================================
code meaning
==== ====================================================================================
0    done
1    a slide or a job failed (unreadable slide, a model that fails, a write that fails)
2    usage or bad input (an unknown option, a value out of range, a file of the wrong kind,
     a figure larger than allowed without ``--force``)
3    no window can be opened here (missing system libraries, no display)
130  cancelled by Ctrl-C (128 + SIGINT, as shells report it)
==== ====================================================================================

argparse itself exits with 2 for an unknown option or a missing argument, which agrees.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_WINDOW: Final = 3
EXIT_INTERRUPTED: Final = 130

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_NO_WINDOW", "EXIT_OK", "EXIT_USAGE"]
