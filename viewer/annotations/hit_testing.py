"""Which annotations lie under a point or in a rectangle (level-0 px), for picking,
editing handles, rubber-band selection and culling."""

from __future__ import annotations

from collections.abc import Iterable

from viewer.annotations.model import Annotation, VertexHit


def annotations_at_point(
    top_first: Iterable[Annotation], l0_x: float, l0_y: float, l0_tolerance: float = 0.0
) -> list[Annotation]:
    """The annotations of ``top_first`` (topmost first) under a point, the one a click
    should pick first.

    A hit is a point inside an area, or within ``l0_tolerance`` level-0 px of an
    outline, a ruler or a point (a GUI passes its pick radius in screen pixels times
    level-0 px per screen pixel).  Order: smallest area first (points and rulers have
    none), so a click inside a small annotation lying in a big one picks the small one;
    among equals the topmost first.
    """
    hits = [a for a in top_first if a.hit(l0_x, l0_y, l0_tolerance)]
    hits.sort(key=lambda a: a.l0_area)  # stable: topmost first among equals
    return hits


def nearest_vertex(
    top_first: Iterable[Annotation],
    l0_x: float,
    l0_y: float,
    l0_tolerance: float,
    ids: Iterable[str] | None = None,
) -> VertexHit | None:
    """The editable handle nearest a point within ``l0_tolerance``, or ``None``.

    Looks at the annotations of ``top_first`` (topmost first) whose id is in ``ids``,
    or at all of them when ``ids`` is ``None``; among equally near handles the topmost
    annotation's wins.
    """
    wanted = None if ids is None else set(ids)
    best: VertexHit | None = None
    t = l0_tolerance
    for annotation in top_first:
        if wanted is not None and annotation.id not in wanted:
            continue
        x0, y0, x1, y1 = annotation.l0_bounds
        if l0_x < x0 - t or l0_x > x1 + t or l0_y < y0 - t or l0_y > y1 + t:
            continue
        hit = annotation.vertex_at(l0_x, l0_y, l0_tolerance)
        if hit is not None and (best is None or hit.l0_distance < best.l0_distance):
            best = hit
    return best


def annotations_in_rect(
    annotations: Iterable[Annotation],
    l0_x0: float,
    l0_y0: float,
    l0_x1: float,
    l0_y1: float,
    *,
    fully_inside: bool = False,
) -> list[Annotation]:
    """The annotations whose bounding box meets the rectangle (or lies inside it with
    ``fully_inside``, as QuPath's drag-to-select does), in the order given.

    By bounding box: right for culling what to paint and for rubber-band selection.
    """
    ax0, ax1 = min(l0_x0, l0_x1), max(l0_x0, l0_x1)
    ay0, ay1 = min(l0_y0, l0_y1), max(l0_y0, l0_y1)
    out = []
    for annotation in annotations:
        x0, y0, x1, y1 = annotation.l0_bounds
        if fully_inside:
            if ax0 <= x0 and x1 <= ax1 and ay0 <= y0 and y1 <= ay1:
                out.append(annotation)
        elif x0 <= ax1 and ax0 <= x1 and y0 <= ay1 and ay0 <= y1:
            out.append(annotation)
    return out
