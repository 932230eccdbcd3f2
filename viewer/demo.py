"""The demo slide: made once with the synthetic generator and kept in the user data folder."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from inference.core.paths import user_data_dir


def demo_slide_path() -> Path:
    return user_data_dir() / "demo" / "demo.tiff"


def ensure_demo_slide(regenerate: bool = False) -> Path:
    """The demo slide's path, writing it first if it is missing (or ``regenerate``)."""
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = demo_slide_path()
    if path.exists() and not regenerate:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Making the demo slide (once): {path}", file=sys.stderr)

    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 0.25:  # a few updates a second, not one a tile
            last[0] = now
            print(f"\r  {done:,}/{total:,} tiles", end="", file=sys.stderr, flush=True)

    write_synthetic_slide(path, SynthParams.demo(), progress=progress)
    print(file=sys.stderr)
    return path
