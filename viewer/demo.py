"""The demo slide: made once with the synthetic generator and kept in the user data folder."""

from __future__ import annotations

import sys
from pathlib import Path

from inference.paths import user_data_dir


def demo_slide_path() -> Path:
    return user_data_dir() / "demo" / "demo.tiff"


def ensure_demo_slide(regenerate: bool = False) -> Path:
    """The demo slide's path, writing it first if it is missing (or ``regenerate``)."""
    from inference.slides.synth import SynthParams, write_synthetic_slide

    path = demo_slide_path()
    if path.exists() and not regenerate:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Making the demo slide (once): {path}", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        print(f"\r  {done}/{total} tiles", end="", file=sys.stderr, flush=True)

    write_synthetic_slide(path, SynthParams.demo(), progress=progress)
    print(file=sys.stderr)
    return path
