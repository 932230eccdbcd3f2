"""``slidelens export`` of a segmentation result: clipped to the slide and its tissue as
the viewer clips it (unless ``--no-tissue-clip``), and the model's warning on the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from inference.engine.tissue import tissue_mask
from inference.models.registry import bundled_model
from inference.results.exports import write_result_npz
from inference.slides import open_slide
from tests.unit.test_result_layer_views import segmentation_everywhere
from viewer.__main__ import main

#: Level-0 px per figure pixel (``--mpp 8`` on the 0.5 µm/px synthetic slide).
L0_PER_PX = 16


def _seg_results(folder: Path, slide: Path) -> Path:
    """A U-Net result that says "tumour" everywhere, with the run JSON ``slidelens infer``
    writes beside it (naming the bundled U-Net, whose card states its domain)."""
    source = open_slide(slide)
    try:
        l0_w, l0_h = source.info.dimensions
        source_id = source.info.source_id
    finally:
        source.close()
    entry = bundled_model("segmentation")
    assert entry is not None
    folder.mkdir(parents=True)
    write_result_npz(folder / f"{slide.stem}.result.npz", segmentation_everywhere(l0_w, l0_h))
    run = {
        "slide": {"path": str(slide), "source_id": source_id},
        "model": {"name": entry.name, "sha256": "ab" * 32, "folder": str(entry.folder)},
    }
    (folder / f"{slide.stem}.run.json").write_text(json.dumps(run))
    return folder


def _figure(slide: Path, out: Path, *extra: str) -> np.ndarray:
    args = ["export", str(slide), "--mpp", "8", "--opacity", "1", "--no-scale-bar"]
    assert main([*args, *extra, "--out", str(out)]) == 0
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_a_segmentation_figure_is_clipped_to_the_tissue_and_carries_the_warning(
    synthetic_slide: Path, tmp_path: Path
) -> None:
    results = _seg_results(tmp_path / "results", synthetic_slide)
    plain = _figure(synthetic_slide, tmp_path / "plain.png", "--no-legend")
    clipped = _figure(
        synthetic_slide, tmp_path / "seg.png", "--results", str(results), "--no-legend"
    )
    loose = _figure(
        synthetic_slide,
        tmp_path / "loose.png",
        "--results",
        str(results),
        "--no-legend",
        "--no-tissue-clip",
    )
    source = open_slide(synthetic_slide)
    try:
        tissue = tissue_mask(source)
    finally:
        source.close()
    h, w = plain.shape[:2]
    rows = ((np.arange(h) + 0.5) * L0_PER_PX // tissue.l0_per_px).astype(int)
    cols = ((np.arange(w) + 0.5) * L0_PER_PX // tissue.l0_per_px).astype(int)
    m_h, m_w = tissue.mask.shape
    on_tissue = tissue.mask[np.minimum(rows, m_h - 1)[:, None], np.minimum(cols, m_w - 1)[None, :]]
    # below the top rows, where the warning's box sits (top-right) without a legend
    on_tissue[:80] = False
    off_tissue = ~tissue.mask[
        np.minimum(rows, m_h - 1)[:, None], np.minimum(cols, m_w - 1)[None, :]
    ]
    off_tissue[:80] = False
    changed = np.abs(clipped - plain).max(axis=2) > 8
    assert changed[on_tissue].mean() > 0.9
    assert changed[off_tissue].mean() < 0.02  # no blocks on the glass
    loose_changed = np.abs(loose - plain).max(axis=2) > 8
    assert loose_changed[off_tissue].mean() > 0.9  # the user turned the clip off
    doc = json.loads((tmp_path / "seg.png.json").read_text())
    layer = doc["layers"][0]
    assert layer["settings"]["clip_to_tissue"] is True
    assert layer["provenance"]["domain"]["slide_in_domain"] is True
    # the demo U-Net is not for diagnosis: said on the figure even without a legend
    assert doc["overlays"]["warnings"] == [{"layer": layer["name"], "warning": "NOT FOR DIAGNOSIS"}]
    r, g, b = (clipped[..., k] for k in range(3))
    assert ((r > 140) & (g < 40) & (b < 40)).sum() > 100  # the warning, in red
