"""The Dask cluster a batch runs on: a local cluster of worker processes, or a scheduler.

Contract: :func:`open_cluster` is a context manager giving a :class:`Cluster` (a
``distributed.Client`` and what is known about the workers).  Without an address it
starts a ``LocalCluster`` of processes sized by :func:`local_cluster_size` (one worker
per GPU when the device may be CUDA and torch sees GPUs; otherwise one per four cores)
and closes it, workers included, on the way out.  With an address it connects to that
scheduler (``dask scheduler`` with ``dask worker`` processes elsewhere) and closes only
its client.  The dashboard is served when asked for and bokeh is installed
(``dashboard_note`` says why not otherwise).

distributed (and torch, to count GPUs) are imported inside the functions only.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: The dashboard port a local cluster asks for (another is picked when it is taken).
DASHBOARD_ADDRESS = ":8787"
#: Run in each local worker process as it starts (it leaves Ctrl-C to the batch command).
WORKER_PRELOAD = "inference.batch.worker_setup"
#: Dask config while a local cluster starts.  Dask's nannies start workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which makes every large array (a batch of patches, a
#: read region) a fresh ``mmap`` and its pages fresh page faults: a slide took 1.5x the CPU
#: time in such a worker (measured: 6.8 against 4.2 CPU-seconds on a 8192 px synthetic
#: slide).  Workers get the allocator's defaults instead, as ``slidelens infer`` has.
NANNY_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
#: Seconds to wait for a remote scheduler to answer.
CONNECT_TIMEOUT_S = 20


class ClusterError(RuntimeError):
    """The cluster could not be started or reached (the message says which and why)."""


@dataclass(frozen=True)
class ClusterRequest:
    """How to get a cluster: ``scheduler`` (an address such as ``tcp://host:8786``) or a
    local one with ``workers`` processes (``None``: :func:`local_cluster_size`) of
    ``threads_per_worker`` slides each; ``dashboard`` on or off."""

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    dashboard: bool = True


@dataclass
class Cluster:
    """A connected client and its workers.

    ``slides_per_host`` is how many slides run at once on this machine for a local
    cluster (workers x threads), ``None`` for a remote one.  ``dashboard`` is the
    dashboard's link or ``None``; ``dashboard_note`` a sentence for the user.
    """

    client: Any
    local: bool
    workers: int
    threads_per_worker: int
    gpus: int
    dashboard: str | None
    dashboard_note: str
    slides_per_host: int | None

    def describe(self) -> str:
        """One line: where the batch runs."""
        where = "local cluster" if self.local else f"scheduler {self.client.scheduler.address}"
        gpus = f", {self.gpus} GPU(s)" if self.gpus else ""
        return (
            f"{where}: {self.workers} worker(s) x {self.threads_per_worker} slide(s) at once{gpus}"
        )


def has_bokeh() -> bool:
    """Whether the dashboard can be served (it needs bokeh)."""
    return importlib.util.find_spec("bokeh") is not None


def visible_gpus(device: str) -> int:
    """CUDA GPUs a local cluster's workers may use: 0 when the device is ``cpu``."""
    if device == "cpu":
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def local_cluster_size(cores: int, gpus: int) -> tuple[int, int]:
    """``(workers, threads_per_worker)`` of a local cluster.

    With GPUs, one worker per GPU, one slide at a time each (the GPU is the slow stage;
    its reader threads keep it fed).  On the CPU, one worker per four cores (at least
    one), each running one slide at a time with its share of the cores as lanes: one
    process already keeps its cores busy with lanes, so more workers mostly overlap what
    a slide does outside its lanes (opening, the tissue mask, writing the outputs) and
    each costs a torch import and its memory.  Measured on 2 cores only
    (``slidelens bench batch``): there 1 worker was as fast as 2, or faster.
    """
    if gpus > 0:
        return gpus, 1
    return max(1, cores // 4), 1


@contextmanager
def open_cluster(request: ClusterRequest, device: str = "auto") -> Iterator[Cluster]:
    """A cluster for one batch (see the module docstring); :class:`ClusterError` when it
    cannot be had."""
    from distributed import Client

    if request.scheduler:
        try:
            client = Client(request.scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {request.scheduler}: {exc}. Is "
                "`dask scheduler` running there, and is the address host:port?"
            ) from exc
        try:
            yield _remote(client, request)
        finally:
            client.close()
        return

    import dask
    from distributed import LocalCluster

    from inference.engine.cores import available_cores

    gpus = visible_gpus(device)
    workers, threads = local_cluster_size(available_cores(), gpus)
    workers = request.workers or workers
    threads = request.threads_per_worker or threads
    dashboard = request.dashboard and has_bokeh()
    try:
        with warnings.catch_warnings(), dask.config.set(NANNY_CONFIG):
            # a taken dashboard port moves to another one; the link printed says which
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                processes=True,
                # the scheduler serves HTTP (health, metrics) even without a dashboard:
                # on a free port then, so two batches never compete for 8787
                dashboard_address=DASHBOARD_ADDRESS if dashboard else ":0",
                scheduler_kwargs={"dashboard": dashboard},
                silence_logs=logging.CRITICAL,  # failures are reported per slide
                preload=[WORKER_PRELOAD],
            )
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise ClusterError(f"cannot start a local Dask cluster: {exc}") from exc
    try:
        client = Client(cluster)
        try:
            yield Cluster(
                client=client,
                local=True,
                workers=workers,
                threads_per_worker=threads,
                gpus=gpus,
                dashboard=client.dashboard_link if dashboard else None,
                dashboard_note=_note(request.dashboard, dashboard),
                slides_per_host=workers * threads,
            )
        finally:
            client.close()
    finally:
        cluster.close()


def _note(asked: bool, served: bool) -> str:
    if served:
        return ""
    if not asked:
        return "dashboard off (--no-dashboard)"
    return "dashboard off: bokeh is not installed (pip install bokeh to watch the workers)"


def _remote(client: Any, request: ClusterRequest) -> Cluster:
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = [int(w.get("nthreads", 1)) for w in workers.values()] or [1]
    try:  # the scheduler serves its HTTP routes anyway; the dashboard needs bokeh there
        served = "dashboard" in info.get("services", {}) and bool(
            client.run_on_scheduler(has_bokeh)
        )
    except Exception:  # an older or locked-down scheduler: assume it has none
        served = False
    return Cluster(
        client=client,
        local=False,
        workers=len(workers),
        threads_per_worker=max(threads),
        gpus=0,
        dashboard=client.dashboard_link if served and request.dashboard else None,
        dashboard_note=(
            ""
            if served and request.dashboard
            else _note(False, False)
            if not request.dashboard
            else "dashboard off: the scheduler has no bokeh (pip install bokeh there to "
            "watch the workers)"
        ),
        slides_per_host=None,
    )
