"""Dask worker preload for a local cluster's workers (``LocalCluster(preload=...)``).

Contract: :func:`dask_setup` runs in each worker process as it starts and makes it
ignore SIGINT.  Ctrl-C in a terminal reaches the whole process group; the batch
command handles it (it cancels the tasks and closes the cluster, which stops the
workers), so workers must not die of it first with a traceback each.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    """Ignore SIGINT in this worker process (called by Dask with the worker)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
