"""The one class palette of SlideLens: the viewer, its figures and every export use it.

Qt-free and dependency-free (standard library only), so ``inference`` writers and the
viewer share it without ``inference`` importing ``viewer``.

* Model classes are coloured by index: class ``k`` of a result is :func:`class_colour`
  ``(k)``, from :data:`CLASS_PALETTE` (Okabe-Ito, readable by colour-blind viewers),
  cycling after its end.  The heatmap's argmax map and legend, the exported figures and
  the GeoJSON that ``slidelens infer`` writes for QuPath all use it, so QuPath shows
  the colours SlideLens shows.
* Annotation classes are coloured by name: :data:`DEFAULT_CLASS_COLOURS` are the classes
  a new annotation palette starts with (QuPath's default colours, so classes keep their
  colour across a QuPath round trip); :func:`named_class_colour` gives the colour of a
  class a file names without one.
"""

from __future__ import annotations

import hashlib

RGB = tuple[int, int, int]

#: Distinct colours for model classes (Okabe-Ito), in class order: blue, vermillion,
#: bluish green, reddish purple, orange, sky blue, yellow, grey.
CLASS_PALETTE: tuple[RGB, ...] = (
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (240, 228, 66),
    (120, 120, 120),
)

#: The annotation classes a new palette starts with, in menu order (QuPath's colours).
DEFAULT_CLASS_COLOURS: tuple[tuple[str, RGB], ...] = (
    ("Tumour", (200, 0, 0)),
    ("Stroma", (150, 200, 150)),
    ("Immune cells", (160, 90, 160)),
    ("Necrosis", (50, 50, 50)),
    ("Other", (255, 200, 0)),
)

#: What an annotation without a class is drawn in (QuPath's default annotation red).
UNCLASSIFIED_COLOUR: RGB = (255, 0, 0)


def class_colour(index: int) -> RGB:
    """The colour of model class ``index`` (cycling after the palette's end)."""
    return CLASS_PALETTE[index % len(CLASS_PALETTE)]


def class_colours(count: int) -> list[RGB]:
    """The colours of classes ``0 .. count - 1``, in order."""
    return [class_colour(k) for k in range(count)]


def named_class_colour(name: str) -> RGB:
    """The colour of an annotation class named ``name``: its default colour if it is one
    of :data:`DEFAULT_CLASS_COLOURS`, else a stable colour derived from the name."""
    for default_name, colour in DEFAULT_CLASS_COLOURS:
        if default_name == name:
            return colour
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return (64 + digest[0] % 192, 64 + digest[1] % 192, 64 + digest[2] % 192)
