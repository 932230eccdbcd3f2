"""The one palette of SlideLens: the viewer, its figures and every export use it.

Qt-free and dependency-free (standard library only), so ``inference`` writers and the
viewer share it without ``inference`` importing ``viewer``.

Every colour on a figure has one meaning:

* Annotation classes are coloured by name: :data:`DEFAULT_CLASS_COLOURS` are the classes
  a new annotation palette starts with; :func:`named_class_colour` gives the colour of a
  class a file names without one.  Names are compared by :func:`class_key`: case,
  spacing and spelling do not matter (QuPath's "Tumor" is our "Tumour").
* Model classes are coloured by :func:`result_class_colours`: a class whose name is a
  default annotation class (by :func:`class_key`) gets that class's colour, so "tumour"
  is one colour in a heatmap's legend and on a Tumour annotation; the other classes
  take :data:`CLASS_PALETTE` (Okabe-Ito, readable by colour-blind viewers) in class
  order, skipping the colours that already mean something (the roles below, the
  default classes and the named classes of the same result), cycling after its end.
  The heatmap's class map and legend, the exported figures and the GeoJSON that
  ``slidelens infer`` writes for QuPath all use it, so QuPath shows SlideLens's colours.
* Roles that are not classes: :data:`UNCLASSIFIED_COLOUR` (an annotation without a
  class) and :data:`GROUND_TRUTH_COLOUR` (the ground-truth outline).  Each differs from
  the Tumour colour and from the other role, so a figure with a Tumour annotation, an
  unclassified one, the ground truth and a heatmap can be read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

RGB = tuple[int, int, int]

#: Distinct colours for model classes (Okabe-Ito): blue, vermillion, bluish green,
#: reddish purple, orange, sky blue, yellow, grey.
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

#: Tumour: vermillion, the Okabe-Ito red, far from the roles' sky blue and black.
TUMOUR_COLOUR: RGB = (213, 94, 0)

#: The annotation classes a new palette starts with, in menu order.  QuPath's colours,
#: except Tumour (QuPath's (200, 0, 0) is the red of an unclassified QuPath
#: annotation) and Necrosis (QuPath's (50, 50, 50) is next to the ground truth's black).
DEFAULT_CLASS_COLOURS: tuple[tuple[str, RGB], ...] = (
    ("Tumour", TUMOUR_COLOUR),
    ("Stroma", (150, 200, 150)),
    ("Immune cells", (160, 90, 160)),
    ("Necrosis", (120, 120, 120)),
    ("Other", (255, 200, 0)),
)

#: What an annotation without a class is drawn in: sky blue.
UNCLASSIFIED_COLOUR: RGB = (86, 180, 233)

#: The ground-truth outline ("Load ground truth", ``slidelens export --truth``): black.
GROUND_TRUTH_COLOUR: RGB = (0, 0, 0)

#: US spellings read as the British ones SlideLens names its classes with.
_SPELLINGS = {
    "tumor": "tumour",
    "tumors": "tumours",
    "hemorrhage": "haemorrhage",
    "edema": "oedema",
    "color": "colour",
}


def class_key(name: str) -> str:
    """What two class names must share to be one class: the words of ``name``, case-folded,
    with US spellings made British (``"Tumor: Positive"`` and ``"tumour positive"`` are
    one class; ``"immune_cells"`` is ``"Immune cells"``)."""
    text = "".join(c if c.isalnum() else " " for c in name.casefold())
    words = [_SPELLINGS.get(word, word) for word in text.split()]
    return " ".join(words) if words else name.strip().casefold()


_DEFAULT_BY_KEY: dict[str, RGB] = {class_key(n): c for n, c in DEFAULT_CLASS_COLOURS}
#: Colours a model class without a name of its own never takes.
_RESERVED: frozenset[RGB] = frozenset(
    {UNCLASSIFIED_COLOUR, GROUND_TRUTH_COLOUR, *_DEFAULT_BY_KEY.values()}
)


def class_colour(index: int) -> RGB:
    """Colour ``index`` of :data:`CLASS_PALETTE` (cycling after its end)."""
    return CLASS_PALETTE[index % len(CLASS_PALETTE)]


def default_class_colour(name: str) -> RGB | None:
    """The colour of the default class that ``name`` names (by :func:`class_key`), or
    ``None`` when it names none."""
    return _DEFAULT_BY_KEY.get(class_key(name))


def result_class_colours(class_names: Sequence[str]) -> list[RGB]:
    """The colours of a model's classes, in class order (see the module docstring): a
    default class's colour by name, else the next free colour of :data:`CLASS_PALETTE`."""
    named = [default_class_colour(name) for name in class_names]
    taken = _RESERVED | {c for c in named if c is not None}
    free = [c for c in CLASS_PALETTE if c not in taken] or list(CLASS_PALETTE)
    colours: list[RGB] = []
    unnamed = 0
    for colour in named:
        if colour is None:
            colour = free[unnamed % len(free)]
            unnamed += 1
        colours.append(colour)
    return colours


def named_class_colour(name: str) -> RGB:
    """The colour of an annotation class named ``name``: its default colour if it names
    one of :data:`DEFAULT_CLASS_COLOURS` (by :func:`class_key`), else a stable colour
    derived from its :func:`class_key` (so "Mitosis" and "mitosis" share it)."""
    colour = default_class_colour(name)
    if colour is not None:
        return colour
    digest = hashlib.sha256(class_key(name).encode("utf-8")).digest()
    return (64 + digest[0] % 192, 64 + digest[1] % 192, 64 + digest[2] % 192)
