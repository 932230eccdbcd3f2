"""Blending per-patch raw maps into one canvas, and its one normalisation range.

Contract: :func:`stitch` resizes each patch's raw map (non-negative, never min-max
scaled) to the patch's footprint on the plan's canvas and blends them with a Hann
window, so the overlap bands between patches cross-fade smoothly; canvas pixels no patch
covers are NaN.  :func:`normalisation` gives the whole canvas ONE range: ``0`` to a high
percentile of the raw values over every explained pixel (or the request's fixed
``vmax``), so that neighbouring patches stay comparable, with a JSON-ready record of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.explain.methods import ExplainError
from inference.explain.planning import Plan
from inference.explain.requests import CamRequest


def stitch(plan: Plan, maps: np.ndarray) -> np.ndarray:
    """Blend per-patch raw maps into the plan's canvas (Hann weights; NaN where none)."""
    import cv2

    from inference.results.store import hann_weights

    h, w = plan.shape
    t = plan.tile_px
    sums = np.zeros((h, w), np.float64)
    weights = np.zeros((h, w), np.float64)
    window = hann_weights(t).astype(np.float64)
    ox, oy = plan.l0_origin
    for (l0_x, l0_y), cam in zip(plan.grid.l0_xy(plan.p_ij), maps, strict=True):
        src: np.ndarray = np.asarray(cam, np.float32)
        if src.shape != (t, t):
            shrink = src.shape[0] > t or src.shape[1] > t
            src = cv2.resize(
                src, (t, t), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
        m_x = round((l0_x - ox) / plan.l0_per_px)
        m_y = round((l0_y - oy) / plan.l0_per_px)
        x0, y0 = max(m_x, 0), max(m_y, 0)
        x1, y1 = min(m_x + t, w), min(m_y + t, h)
        if x1 <= x0 or y1 <= y0:
            continue
        tile = src[y0 - m_y : y1 - m_y, x0 - m_x : x1 - m_x]
        win = window[y0 - m_y : y1 - m_y, x0 - m_x : x1 - m_x]
        sums[y0:y1, x0:x1] += np.maximum(tile, 0) * win
        weights[y0:y1, x0:x1] += win
    out = np.full((h, w), np.nan, np.float32)
    has = weights > 0
    out[has] = (sums[has] / weights[has]).astype(np.float32)
    return out


def normalisation(
    raw: np.ndarray, request: CamRequest, n_patches: int
) -> tuple[float, dict[str, Any]]:
    values = raw[np.isfinite(raw)]
    if request.vmax is not None:
        if not request.vmax > 0:
            raise ExplainError(f"vmax must be positive, not {request.vmax}")
        return float(request.vmax), {
            "kind": "fixed",
            "vmin": 0.0,
            "vmax": float(request.vmax),
            "display": "clip(raw / vmax, 0, 1)",
        }
    if not 0 < request.percentile <= 100:
        raise ExplainError(f"percentile must be in (0, 100], not {request.percentile}")
    vmax = float(np.percentile(values, request.percentile)) if values.size else 0.0
    note = None
    if not vmax > 0:
        top = float(values.max()) if values.size else 0.0
        vmax, note = (top, "percentile was 0; used the maximum") if top > 0 else (1.0, "map is 0")
    doc: dict[str, Any] = {
        "kind": "shared-percentile",
        "percentile": request.percentile,
        "vmin": 0.0,
        "vmax": vmax,
        "over": f"every explained pixel of the {n_patches} blended patch(es), one range",
        "display": "clip(raw / vmax, 0, 1)",
        "per_patch_minmax": False,
    }
    if note:
        doc["note"] = note
    return vmax, doc
