"""What a slide file states about itself, for a project's slide browser.

Contract: :func:`read_slide_facts` opens the file (:func:`inference.slides.open_slide`,
so its checks and messages), reads its dimensions, pixel size, scanner and content id
and a small RGB thumbnail, and closes it.  It never raises for a bad file: the facts
then carry ``error`` (the message naming the file and the cause).  Slow (it reads the
file): call it off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.slides import SlideError, SlideInfo, open_slide

#: Longer side of the thumbnails shown in the browser, in pixels.
THUMBNAIL_SIDE = 96
#: Properties that name the scanner model, by vendor format.
_SCANNER_PROPERTIES = (
    "aperio.ScanScope ID",
    "hamamatsu.Product",
    "leica.device-model",
    "ventana.ScannerModel",
    "philips.DICOM_MANUFACTURER",
    "dicom.ManufacturerModelName",
    "mirax.GENERAL.SLIDE_TYPE",
)


@dataclass(frozen=True)
class SlideFacts:
    """Dimensions (level 0), stated pixel size, scanner, content id and thumbnail of a
    slide, or ``error`` when it could not be read."""

    width: int | None = None
    height: int | None = None
    mpp: float | None = None
    scanner: str = ""
    source_id: str = ""
    thumbnail: np.ndarray | None = None
    error: str = ""


def scanner_name(info: SlideInfo) -> str:
    """The format's vendor, with the scanner model where the slide states one."""
    model = next((str(info.properties[k]) for k in _SCANNER_PROPERTIES if k in info.properties), "")
    return f"{info.vendor} {model}".strip() if model else info.vendor


def read_slide_facts(path: Path, thumbnail_side: int = THUMBNAIL_SIDE) -> SlideFacts:
    """The facts of the slide at ``path`` (see the module docstring)."""
    try:
        source = open_slide(path)
    except SlideError as exc:
        return SlideFacts(error=str(exc))
    except Exception as exc:  # an unexpected library error: still a message
        return SlideFacts(error=f"{Path(path).name}: could not be opened ({exc})  [{path}]")
    try:
        info = source.info
        try:
            thumbnail: np.ndarray | None = source.thumbnail(thumbnail_side)
        except (SlideError, ValueError):
            thumbnail = None
        width, height = info.dimensions
        return SlideFacts(
            width=int(width),
            height=int(height),
            mpp=info.mpp,
            scanner=scanner_name(info),
            source_id=info.source_id,
            thumbnail=thumbnail,
        )
    finally:
        source.close()


def annotation_file(source_id: str, files: Mapping[str, Path] | None = None) -> Path | None:
    """The saved annotations of the slide with ``source_id``, when there are any.

    ``files`` maps content ids to annotation files (for tests); by default the viewer's
    annotation store is asked.
    """
    if not source_id:
        return None
    if files is not None:
        return files.get(source_id)
    from viewer.annotations.storage import AnnotationStore

    main = AnnotationStore().files(source_id).main
    return main if main.is_file() else None
