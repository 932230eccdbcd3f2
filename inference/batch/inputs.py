"""Which slides a batch runs over, and the name of each slide's result folder.

Contract: :func:`collect_slides` turns ``slidelens batch``'s inputs (folders, slide files,
and list files of one path per line) into :class:`BatchItem`\\ s in a stable order:

* a folder is searched recursively for files with a whole-slide extension
  (:data:`~inference.slides.preflight.OPENSLIDE_EXTENSIONS` except ``.dcm``: a DICOM
  slide is a series of files, so list one file per slide; plain PNG/JPEG images, often
  masks or thumbnails beside the slides, are taken only when named or listed),
  skipping hidden files and folders and the output folder;  the result folder of a slide
  found in a folder is its path below that folder without the extension, with ``/``
  written ``--`` (``case1/a.svs`` -> ``case1--a``), so equal names in different
  subfolders do not collide;
* a slide file, or a line of a list file, gives a folder named after the file's stem
  (:func:`~inference.batch.one_slide.output_stem`); a relative path in a list file is
  relative to the list file's folder; blank lines and lines starting with ``#`` are
  skipped.

Files that do not exist are kept (they fail later with a message naming them), a
folder or list file that cannot be read raises :class:`BatchInputError`.  Two slides
that would share a result folder are both kept; :func:`duplicate_names` says which
ones to refuse (every one after the first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from inference.batch.one_slide import output_stem
from inference.batch.settings import SlideSettings
from inference.slides.preflight import OPENSLIDE_EXTENSIONS

#: Extensions a folder search picks up.
FOLDER_EXTENSIONS = frozenset(OPENSLIDE_EXTENSIONS - {".dcm"})
#: How a subfolder is written in a result folder's name.
FOLDER_SEPARATOR = "--"


class BatchInputError(ValueError):
    """A folder or list file of slides that cannot be used (the message says why)."""


@dataclass(frozen=True)
class BatchItem:
    """One slide of a batch: the file, its result folder's name and its files' stem.

    ``mpp`` is this slide's pixel size for a slide that states none (one the user typed
    in the viewer); ``--mpp`` on the command line, for every slide, wins over it.
    """

    slide: Path
    name: str
    stem: str
    mpp: float | None = None

    @classmethod
    def for_file(cls, slide: Path, name: str | None = None, mpp: float | None = None) -> BatchItem:
        stem = output_stem(slide)
        return cls(slide=slide, name=name or stem, stem=stem, mpp=mpp)

    def settings(self, settings: SlideSettings) -> SlideSettings:
        """``settings`` for this slide: with its own pixel size where none is given."""
        if settings.mpp is None and self.mpp is not None:
            return replace(settings, mpp=self.mpp)
        return settings


def _strip_extension(relative: Path) -> str:
    parts = [*relative.parent.parts, output_stem(relative)]
    return FOLDER_SEPARATOR.join(parts)


def slides_in_folder(folder: Path, exclude: Iterable[Path] = ()) -> list[BatchItem]:
    """The slides below ``folder`` (see the module docstring), sorted by path."""
    skip = {p.resolve() for p in exclude}
    found: list[BatchItem] = []
    try:
        paths = sorted(folder.rglob("*"))
    except OSError as exc:
        raise BatchInputError(f"{folder}: cannot list the folder: {exc}") from exc
    for path in paths:
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if any(parent.resolve() in skip for parent in [path, *path.parents]):
            continue
        if path.suffix.lower() in FOLDER_EXTENSIONS and path.is_file():
            found.append(BatchItem.for_file(path, _strip_extension(relative)))
    return found


def slides_in_list(list_file: Path) -> list[BatchItem]:
    """The slides a list file names, one path per line, in the file's order."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"{list_file}: cannot read the slide list: {exc}") from exc
    items = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        items.append(BatchItem.for_file(path))
    return items


def collect_slides(
    inputs: Sequence[Path], list_file: Path | None = None, out: Path | None = None
) -> list[BatchItem]:
    """Every slide the inputs name, in order; a folder's slides sorted by path.

    ``out`` (the batch's output folder) is never searched.  Raises
    :class:`BatchInputError` when nothing names a slide.
    """
    items: list[BatchItem] = []
    exclude = [out] if out is not None else []
    for entry in inputs:
        if entry.is_dir():
            items.extend(slides_in_folder(entry, exclude))
        else:
            items.append(BatchItem.for_file(entry))
    if list_file is not None:
        items.extend(slides_in_list(list_file))
    if not items:
        where = ", ".join(str(p) for p in inputs) or str(list_file)
        raise BatchInputError(
            f"no slides found in {where} (looked for {', '.join(sorted(FOLDER_EXTENSIONS))})"
        )
    return items


def duplicate_names(items: Sequence[BatchItem]) -> dict[int, str]:
    """Index -> message for each item whose result folder an earlier item already has
    (the same file listed twice, or two files with one name)."""
    first: dict[str, BatchItem] = {}
    refused: dict[int, str] = {}
    for index, item in enumerate(items):
        key = item.name.casefold()  # one folder on case-insensitive file systems
        if key in first:
            other = first[key]
            same = other.slide.resolve() == item.slide.resolve()
            refused[index] = (
                f"listed twice (as {other.slide})"
                if same
                else f"same result folder name {item.name!r} as {other.slide}; "
                "run it with another --out or rename it"
            )
        else:
            first[key] = item
    return refused
