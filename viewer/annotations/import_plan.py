"""Adding a file's annotations to a slide's set without ever giving two annotations one id.

A GeoJSON feature keeps its id (QuPath's and ours are UUIDs), so importing a file a
second time, or a file exported from this slide, brings annotations whose ids the set
already has.  :func:`plan_import` says which before anything changes (so a GUI asks
once), and :func:`apply_import` adds the file as one undo step under a
:class:`ConflictPolicy`:

* ``REPLACE``: each conflicting annotation replaces the one of its id, in place;
* ``KEEP_BOTH``: the conflicting ones are added under new ids;
* ``SKIP``: the conflicting ones are left out.

Annotations without a conflict are added on top in every case.  Class names are read
as the set's palette reads them (:meth:`ClassPalette.find`: QuPath's "Tumor" is the
palette's "Tumour"); the plan lists those spellings so the user is told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from viewer.annotations.annotation_set import AnnotationSet
from viewer.annotations.model import Annotation

__all__ = ["ConflictPolicy", "ImportOutcome", "ImportPlan", "apply_import", "plan_import"]


class ConflictPolicy(StrEnum):
    """What to do with an imported annotation whose id the set already has."""

    REPLACE = "replace"
    KEEP_BOTH = "keep both"
    SKIP = "skip"


@dataclass(frozen=True)
class ImportPlan:
    """What importing ``annotations`` (file order) into a set would do.

    ``conflicts``: the ids among them that the set already has; ``class_spellings``:
    each class name of the file that the set's palette knows under another spelling,
    with that spelling (``{"Tumor": "Tumour"}``).
    """

    annotations: tuple[Annotation, ...]
    conflicts: frozenset[str] = frozenset()
    class_spellings: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_conflicts(self) -> bool:
        return bool(self.conflicts)

    def question(self, file_name: str) -> str:
        """The one question to ask when there are conflicts, naming the file."""
        n, total = len(self.conflicts), len(self.annotations)
        which = "it is" if n == 1 else "they are"
        return (
            f"{n} of the {total} annotations in {file_name} "
            f"{'has' if n == 1 else 'have'} the id of an annotation already on this slide "
            f"(the file was imported before, or exported from this slide), so {which} "
            "probably already here.\n\n"
            "Replace: the file's version takes the place of the one here.\n"
            "Keep both: the file's are added beside them, under new ids.\n"
            "Skip: only the annotations that are not here yet are added."
        )


def plan_import(incoming: Iterable[Annotation], target: AnnotationSet) -> ImportPlan:
    """The plan of importing ``incoming`` into ``target`` (nothing changes yet)."""
    annotations = tuple(incoming)
    conflicts = frozenset(a.id for a in annotations if a.id in target)
    spellings: dict[str, str] = {}
    for annotation in annotations:
        name = annotation.class_name
        if name is None or name in spellings:
            continue
        known = target.palette.find(name)
        if known is not None and known.name != name:
            spellings[name] = known.name
    return ImportPlan(annotations, conflicts, spellings)


@dataclass(frozen=True)
class ImportOutcome:
    """What :func:`apply_import` did: annotations ``added``, ``replaced`` (their value
    changed), ``unchanged`` (replaced by an identical value) and ``skipped``."""

    added: int
    replaced: int = 0
    unchanged: int = 0
    skipped: int = 0
    class_spellings: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One sentence for the status bar, e.g. ``Added 3 annotations, replaced 2.``"""
        parts = [f"added {self.added} annotation{'' if self.added == 1 else 's'}"]
        if self.replaced:
            parts.append(f"replaced {self.replaced}")
        if self.unchanged:
            parts.append(f"{self.unchanged} already as in the file")
        if self.skipped:
            parts.append(f"skipped {self.skipped} already here")
        text = ", ".join(parts)
        if self.class_spellings:
            read = ", ".join(f"'{k}' as {v}" for k, v in self.class_spellings.items())
            text += f"; classes read {read}"
        return text[0].upper() + text[1:] + "."


def apply_import(
    plan: ImportPlan,
    target: AnnotationSet,
    policy: ConflictPolicy | str = ConflictPolicy.KEEP_BOTH,
    *,
    text: str = "Import annotations",
) -> ImportOutcome:
    """Import the plan's annotations into ``target`` as one undo step under ``policy``
    (a :class:`ConflictPolicy` or its value; :class:`ValueError` for another).

    Conflicts are looked up again now, so a set that changed since the plan still never
    gets two annotations with one id.
    """
    policy = ConflictPolicy(policy)
    additions: list[Annotation] = []
    replacements: list[Annotation] = []
    skipped = 0
    for annotation in plan.annotations:
        if annotation.id not in target:
            additions.append(annotation)
        elif policy is ConflictPolicy.REPLACE:
            replacements.append(annotation)
        elif policy is ConflictPolicy.KEEP_BOTH:
            additions.append(annotation.with_new_id())
        else:
            skipped += 1
    added, replaced = target.import_annotations(additions, replacements, text=text)
    return ImportOutcome(
        added=len(added),
        replaced=len(replaced),
        unchanged=len(replacements) - len(replaced),
        skipped=skipped,
        class_spellings=dict(plan.class_spellings),
    )
