"""Energy pointing game: does a CAM put its energy on the tumour?

For a region of a slide with a known tumour mask, the *energy share* of a CAM is the sum
of its raw values over tumour pixels divided by its sum over all pixels, both over the
explained tissue (explained patches, tissue mask of :mod:`inference.engine.tissue`).  A uniform
map's share is the tumour fraction of that same area: the *baseline*.  A CAM that points
at the tumour has ``share > baseline`` (``ratio = share / baseline > 1``).

Contract: :func:`energy_share` and :func:`score_case` are the arithmetic,
:func:`choose_region` picks a region mixing tumour and other tissue, :func:`play` runs
every method on every :class:`PointingCase`.  ``slidelens bench pointing``
(:mod:`inference.bench.pointing`) plays it on held-out synthetic slides.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.core.geometry import Rect

if TYPE_CHECKING:
    from inference.engine.job import ModelLike
    from inference.engine.tissue import TissueMask
    from inference.explain.requests import CamRequest, CamResult
    from inference.slides import SlideSource


@dataclass(frozen=True)
class PointingCase:
    """One slide with its tumour truth and the level-0 region to explain on it.

    ``truth``: boolean tumour mask of the whole slide at ``truth_l0_per_px`` level-0 px
    per mask px (origin at the slide's corner).  ``tissue``: the slide's tissue mask.
    """

    name: str
    source: SlideSource
    truth: np.ndarray
    truth_l0_per_px: float
    region: Rect
    tissue: TissueMask


def sample_mask(
    mask: np.ndarray,
    mask_l0_per_px: float,
    l0_origin: tuple[float, float],
    l0_per_px: float,
    shape: tuple[int, int],
) -> np.ndarray:
    """A whole-slide boolean mask sampled at the centres of a canvas's pixels (nearest);
    the canvas has ``shape`` (rows, cols) from ``l0_origin`` at ``l0_per_px``.  Outside
    the mask is False."""
    rows, cols = shape
    l0_xs = l0_origin[0] + (np.arange(cols) + 0.5) * l0_per_px
    l0_ys = l0_origin[1] + (np.arange(rows) + 0.5) * l0_per_px
    m_c = np.floor(l0_xs / mask_l0_per_px).astype(np.intp)
    m_r = np.floor(l0_ys / mask_l0_per_px).astype(np.intp)
    ok_c = (m_c >= 0) & (m_c < mask.shape[1])
    ok_r = (m_r >= 0) & (m_r < mask.shape[0])
    picked = mask[np.clip(m_r, 0, mask.shape[0] - 1)][:, np.clip(m_c, 0, mask.shape[1] - 1)]
    return picked.astype(bool) & ok_r[:, None] & ok_c[None, :]


def energy_share(raw: np.ndarray, tumour: np.ndarray, tissue: np.ndarray) -> tuple[float, float]:
    """``(share, baseline)`` over pixels that are explained (finite) and tissue.

    ``share``: CAM energy on tumour / all CAM energy (NaN when the CAM is all zero);
    ``baseline``: the share a uniform map gets, the tumour fraction of those pixels
    (NaN when there are none).
    """
    valid = np.isfinite(raw) & tissue
    if not valid.any():
        return math.nan, math.nan
    energy = np.maximum(raw[valid].astype(np.float64), 0.0)
    inside = tumour[valid]
    total = float(energy.sum())
    share = float(energy[inside].sum()) / total if total > 0 else math.nan
    return share, float(inside.mean())


def score_case(case: PointingCase, result: CamResult) -> dict[str, float]:
    """Energy share, baseline, their ratio and difference for one explained case."""
    shape = result.raw.shape
    tumour = sample_mask(
        case.truth, case.truth_l0_per_px, result.l0_origin, result.l0_per_px, shape
    )
    tissue = sample_mask(
        case.tissue.mask, case.tissue.l0_per_px, result.l0_origin, result.l0_per_px, shape
    )
    share, baseline = energy_share(result.raw, tumour, tissue)
    return {
        "share": share,
        "baseline": baseline,
        "ratio": share / baseline if baseline > 0 else math.nan,
        "gain": share - baseline,
    }


def choose_region(
    tissue: TissueMask,
    truth: np.ndarray,
    truth_l0_per_px: float,
    l0_patch: int,
    patches: int,
    l0_dimensions: tuple[int, int],
) -> Rect | None:
    """The ``patches`` x ``patches`` window (on a one-patch stride) whose tissue is most
    evenly split between tumour and other tissue, mostly tissue; ``None`` if no window
    holds both."""
    side = l0_patch * patches
    width, height = l0_dimensions
    best: tuple[float, Rect] | None = None
    for l0_y in range(0, max(1, height - side + 1), l0_patch):
        for l0_x in range(0, max(1, width - side + 1), l0_patch):
            rect = Rect(l0_x, l0_y, side, side)
            tissue_frac = tissue.fraction_in(rect)
            window = sample_mask(truth, truth_l0_per_px, (l0_x, l0_y), side / 64, (64, 64))
            tumour_frac = float(window.mean())
            other = max(0.0, tissue_frac - tumour_frac)
            score = min(tumour_frac, other)
            if score > 0.05 and (best is None or score > best[0]):
                best = (score, rect)
    return None if best is None else best[1]


def play(
    model: ModelLike,
    cases: Sequence[PointingCase],
    methods: Sequence[str],
    request: CamRequest,
    *,
    on_result: Callable[[str, str, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Every method on every case; per method the per-case figures and their means.

    ``request`` gives everything but the method.  ``on_result(method, case, figures)``
    is called after each explanation.
    """
    from dataclasses import replace

    from inference.explain.service import explain_region

    out: dict[str, Any] = {}
    for method in methods:
        rows: list[dict[str, Any]] = []
        seconds = 0.0
        for case in cases:
            t0 = time.perf_counter()
            result = explain_region(
                case.source, model, case.region, replace(request, method=method), tissue=case.tissue
            )
            seconds += time.perf_counter() - t0
            figures = score_case(case, result)
            figures["patches"] = float(result.provenance["geometry"]["patches"])
            rows.append({"case": case.name, **figures})
            if on_result is not None:
                on_result(method, case.name, figures)
        out[method] = {
            "share": _nanmean(r["share"] for r in rows),
            "baseline": _nanmean(r["baseline"] for r in rows),
            "ratio": _nanmean(r["ratio"] for r in rows),
            "gain": _nanmean(r["gain"] for r in rows),
            "beats_uniform": sum(1 for r in rows if r["share"] > r["baseline"]),
            "cases": rows,
            "seconds": round(seconds, 3),
        }
    return out


def _nanmean(values: Iterable[float]) -> float:
    arr = np.array(list(values), np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan
