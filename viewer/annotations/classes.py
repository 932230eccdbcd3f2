"""Annotation classes: :class:`AnnotationClass`, the defaults and the :class:`ClassPalette`.

A class is a name and an RGB colour; a palette is the classes a GUI offers, in menu
order.  The default classes and their colours come from :mod:`inference.core.palette`
(the one palette SlideLens and its exports share).  A palette compares names as
:func:`~inference.core.palette.class_key` does (case, spacing and spelling do not
matter), so a file's "Tumor" is the palette's "Tumour"; the other spellings it met are
kept as the class's aliases, for the user to see.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from psygnal import Signal

from inference.core.palette import DEFAULT_CLASS_COLOURS, RGB, class_key

__all__ = [
    "DEFAULT_CLASSES",
    "MAX_CLASS_NAME_CHARS",
    "RGB",
    "AnnotationClass",
    "ClassPalette",
    "as_rgb",
]

MAX_CLASS_NAME_CHARS = 200


def as_rgb(colour: Iterable[int]) -> RGB:
    """``colour`` as an RGB triple; :class:`ValueError` unless three integers 0-255."""
    values = tuple(colour)
    if len(values) != 3 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values
    ):
        raise ValueError(f"a colour is three integers 0-255, not {values!r}")
    return (values[0], values[1], values[2])


@dataclass(frozen=True)
class AnnotationClass:
    """A class annotations can carry: a name (unique in a palette) and an RGB colour."""

    name: str
    colour: RGB

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a class needs a non-empty name")
        if len(self.name) > MAX_CLASS_NAME_CHARS:
            raise ValueError(f"a class name is at most {MAX_CLASS_NAME_CHARS} characters")
        object.__setattr__(self, "colour", as_rgb(self.colour))


#: The classes a new palette starts with (from
#: :data:`inference.core.palette.DEFAULT_CLASS_COLOURS`).
DEFAULT_CLASSES: tuple[AnnotationClass, ...] = tuple(
    AnnotationClass(name, colour) for name, colour in DEFAULT_CLASS_COLOURS
)


class ClassPalette:
    """The classes offered for annotations, in menu order; names are unique by
    :func:`~inference.core.palette.class_key` (no "Tumor" beside "Tumour").

    ``changed`` fires after any change (aliases included).  An :class:`AnnotationSet`
    keeps every class its annotations use in its palette.  A class given twice under
    two spellings keeps the first; the second becomes an alias (:meth:`aliases`).
    """

    changed = Signal()

    def __init__(self, classes: Iterable[AnnotationClass] = DEFAULT_CLASSES) -> None:
        self._classes: dict[str, AnnotationClass] = {}
        self._keys: dict[str, str] = {}
        self._aliases: dict[str, list[str]] = {}
        for cls in classes:
            found = self.find(cls.name)
            if found is None:
                self._put(cls)
            elif found.name != cls.name:
                self._alias(found.name, cls.name)
            else:
                self._classes[cls.name] = cls

    def __repr__(self) -> str:
        return f"ClassPalette({list(self._classes.values())!r})"

    def __iter__(self) -> Iterator[AnnotationClass]:
        return iter(list(self._classes.values()))

    def __len__(self) -> int:
        return len(self._classes)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, AnnotationClass):
            return self._classes.get(name.name) == name
        return name in self._classes

    def get(self, name: str) -> AnnotationClass | None:
        """The class of exactly this name (see :meth:`find` for any spelling)."""
        return self._classes.get(name)

    def find(self, name: str) -> AnnotationClass | None:
        """The class ``name`` means, however it is spelt (by ``class_key``), or ``None``."""
        found = self._keys.get(class_key(name))
        return self._classes[found] if found is not None else None

    def aliases(self, name: str) -> tuple[str, ...]:
        """Other spellings met for the class ``name`` (e.g. ``("Tumor",)``), first first."""
        return tuple(self._aliases.get(name, ()))

    def names(self) -> list[str]:
        return list(self._classes)

    def add(self, cls: AnnotationClass) -> None:
        """Add a new class (re-adding an identical one does nothing).

        :class:`ValueError` if a class of that name exists with another colour: recolour
        with ``AnnotationSet.recolour_class`` so annotations follow (and undo works); or
        under another spelling: it is that class.
        """
        existing = self.find(cls.name)
        if existing == cls:
            return
        if existing is not None and existing.name != cls.name:
            raise ValueError(f"class {cls.name!r} is the palette's {existing.name!r}")
        if existing is not None:
            raise ValueError(f"class {cls.name!r} already exists with colour {existing.colour}")
        self._put(cls)
        self.changed.emit()

    def set_colour(self, name: str, colour: Iterable[int]) -> AnnotationClass:
        """Give an existing class a new colour in the palette only (annotations keep
        theirs; ``AnnotationSet.recolour_class`` does both).  :class:`KeyError` if absent."""
        if name not in self._classes:
            raise KeyError(name)
        cls = AnnotationClass(name, as_rgb(colour))
        if self._classes[name] != cls:
            self._classes[name] = cls
            self.changed.emit()
        return cls

    def ensure(self, cls: AnnotationClass) -> AnnotationClass:
        """The palette's class of ``cls.name`` however it is spelt, adding ``cls`` if the
        name is new; another spelling of a known class is remembered as its alias."""
        existing = self.find(cls.name)
        if existing is None:
            self._put(cls)
            self.changed.emit()
            return cls
        if existing.name != cls.name and self._alias(existing.name, cls.name):
            self.changed.emit()
        return existing

    def remove(self, name: str) -> None:
        """Drop a class from the menu (annotations that carry it keep it)."""
        if self._classes.pop(name, None) is not None:
            self._keys.pop(class_key(name), None)
            self._aliases.pop(name, None)
            self.changed.emit()

    def _put(self, cls: AnnotationClass) -> None:
        self._classes[cls.name] = cls
        self._keys[class_key(cls.name)] = cls.name

    def _alias(self, name: str, spelling: str) -> bool:
        """Remember ``spelling`` for class ``name``; whether it was new."""
        known = self._aliases.setdefault(name, [])
        if spelling in known:
            return False
        known.append(spelling)
        return True
