"""What one slide's run is asked to do, apart from the slide and the model.

Contract: :class:`SlideSettings` is a small, picklable value (it travels to Dask workers)
built from the command line of ``slidelens infer`` or ``slidelens batch``
(:meth:`SlideSettings.from_namespace`).  :meth:`SlideSettings.result_settings` is the
part the results depend on: the batch runner stores it in each slide's record and
recomputes a slide whose record states other settings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from inference.core.geometry import Rect
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD


@dataclass(frozen=True)
class SlideSettings:
    """The knobs of one slide's inference (``slidelens infer``'s options).

    ``region`` is a level-0 rectangle or ``None`` (the whole slide); ``mpp`` overrides
    the slide's pixel size; ``num_readers``, ``cpu_lanes`` and ``torch_threads`` are
    ``None`` for the engine's defaults.  ``device`` is what was asked for (``auto``,
    ``cpu``, ``cuda`` or ``cuda:N``).
    """

    batch_size: int = 32
    overlap: float | None = None
    region: Rect | None = None
    mpp: float | None = None
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD
    num_readers: int | None = None
    cpu_lanes: int | None = None
    torch_threads: int | None = None
    trust: bool = False
    force: bool = False
    no_cache: bool = False
    device: str = "auto"

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> SlideSettings:
        """The settings held by a parsed ``infer``/``batch`` command line."""
        return cls(
            batch_size=args.batch_size,
            overlap=args.overlap,
            region=args.region,
            mpp=args.mpp,
            tissue_threshold=args.tissue_threshold,
            num_readers=args.num_readers,
            cpu_lanes=args.cpu_lanes,
            torch_threads=args.torch_threads,
            trust=args.trust,
            force=args.force,
            no_cache=args.no_cache,
            device=args.device,
        )

    def result_settings(self) -> dict[str, Any]:
        """The settings a slide's results depend on, as plain JSON values.

        Batch size, reader threads, lanes and torch threads change how fast a slide
        runs, not what it computes, so they are left out; the device is in because the
        precision follows it (mixed precision on CUDA).
        """
        return {
            "region": None if self.region is None else list(self.region.to_int()),
            "overlap": self.overlap,
            "mpp": self.mpp,
            "tissue_threshold": self.tissue_threshold,
            "device": self.device,
        }
