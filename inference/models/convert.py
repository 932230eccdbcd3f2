"""Converting a loaded model to a ``torch.export`` program (``.pt2``) or ONNX, as a model folder.

Contract: :func:`convert_model` exports a loaded eager, TorchScript or ``.pt2`` model
(``torch.export`` with a dynamic batch; TorchScript through ``TS2EPConverter``, so
users can move off TorchScript) and writes ``model.pt2`` or ``model.onnx`` into a model
folder with the source's card.  The card gains what the new form cannot tell by itself:
the CAM layer by its canonical name, its layout when channels-last, and an ``origin``.
Unless ``alone``, the source's eager weights (data, never a program) are copied too,
so the folder offers both forms: the fastest runs, and explanations use the eager one.
The written form is loaded back and its logits compared with the source's on the same
patches (:attr:`Conversion.max_abs_diff`); a ``.pt2`` written here is trusted (it was
made on this machine from a model the user had loaded).  Raises
:class:`~inference.models.errors.ModelLoadError` for what cannot be converted.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from inference.models.card import CONFIG_NAME, ONNX_NAME, PT2_NAME
from inference.models.errors import ModelLoadError
from inference.models.layer_paths import declared_layout, find_layer
from inference.models.trust import TrustStore, file_sha256

if TYPE_CHECKING:
    import torch

    from inference.models.loading import LoadedModel

Target = Literal["pt2", "onnx"]
#: Largest difference between the source's and the converted form's logits (fp32).
TOLERANCE = 1e-3


@dataclass
class Conversion:
    """What :func:`convert_model` wrote: the folder, the new file, the copied files and
    how far the new form's logits are from the source's on the check patches."""

    folder: Path
    path: Path
    copied: list[Path] = field(default_factory=list)
    max_abs_diff: float = 0.0
    card_changes: list[str] = field(default_factory=list)


def _example(model: LoadedModel, count: int, seed: int) -> torch.Tensor:
    import torch

    side = int(model.card.patch_size_pixels)
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (count, side, side, 3), dtype=torch.uint8, generator=generator)
    return model.to_model_input(rgb.to(model.device)).cpu()


def _card_for(model: LoadedModel, target: Target) -> tuple[dict[str, Any], list[str]]:
    card = json.loads(json.dumps(dict(model.card.raw)))
    sl = card.setdefault("slidelens", {})
    changes = []
    layer = model.cam_target_layer
    explain = model.explanation_model() if model.kind != "onnx" else model
    found = find_layer(explain.module, layer) if layer and explain.kind != "torchscript" else None
    if found is not None and sl.get("cam_target_layer") != found[0]:
        sl["cam_target_layer"] = found[0]
        changes.append(f"slidelens.cam_target_layer = {found[0]!r}")
    if found is not None and "cam_layer_layout" not in sl:
        layout = declared_layout(explain.module, found[0])
        if layout:
            sl["cam_layer_layout"] = layout
            changes.append(f"slidelens.cam_layer_layout = {layout!r}")
    sl["origin"] = {
        **(sl.get("origin") if isinstance(sl.get("origin"), dict) else {}),
        "converted_by": "slidelens models convert",
        "converted_from": str(model.card.folder),
        "converted_from_form": model.kind,
        "converted_from_sha256": model.sha256,
        "converted_to": target,
    }
    return card, changes


def _out_folder(out: Path, source: Path, force: bool) -> bool:
    """Make ``out`` ready; True when it is the source folder itself."""
    same = out.exists() and out.resolve() == source.resolve()
    if out.exists() and not out.is_dir():
        raise ModelLoadError(f"{out}: exists and is not a folder; choose another --out", path=out)
    if not same and out.is_dir() and any(out.iterdir()) and not force:
        raise ModelLoadError(
            f"{out}: folder is not empty; choose another --out, or --force to write into it",
            path=out,
        )
    out.mkdir(parents=True, exist_ok=True)
    return same


def convert_model(
    model: LoadedModel,
    target: Target,
    out: Path,
    *,
    alone: bool = False,
    force: bool = False,
    trust_store: TrustStore | None = None,
) -> Conversion:
    """Write ``model`` as ``target`` into the model folder ``out`` (see the docstring)."""
    if model.kind == "onnx":
        raise ModelLoadError(
            f"{model.weights_path}: an ONNX model cannot be converted back to a torch "
            "program; convert from the eager weights or the TorchScript file instead",
            path=model.weights_path,
        )
    if model.kind == target:
        raise ModelLoadError(
            f"{model.weights_path}: the model already runs as {target}; nothing to convert",
            path=model.weights_path,
        )
    device = model.device
    model.to("cpu")  # exported on the CPU; put back where it was afterwards
    try:
        return _convert(model, target, Path(out), alone, force, trust_store)
    finally:
        model.to(device)


def _convert(
    model: LoadedModel,
    target: Target,
    out: Path,
    alone: bool,
    force: bool,
    trust_store: TrustStore | None,
) -> Conversion:
    from inference.models.exported import export_program, save_program
    from inference.models.onnx_runtime import export_onnx

    same = _out_folder(out, model.card.folder, force)
    example = _example(model, 2, seed=0)
    program = model.program if model.kind == "pt2" else export_program(model.module, example)
    path = out / (PT2_NAME if target == "pt2" else ONNX_NAME)
    if target == "pt2":
        save_program(program, path)
        (trust_store or TrustStore()).trust(file_sha256(path), path)
    else:
        export_onnx(program, example, path)
    result = Conversion(folder=out, path=path)
    card, result.card_changes = _card_for(model, target)
    (out / CONFIG_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    if not alone and not same:
        for form in model.forms:
            if form.kind == "eager":
                for file in form.files:
                    shutil.copyfile(file, out / file.name)
                    result.copied.append(out / file.name)
    result.max_abs_diff = _compare(model, path, target)
    if not result.max_abs_diff <= TOLERANCE:
        raise ModelLoadError(
            f"{path}: the converted model's logits differ from the source's by "
            f"{result.max_abs_diff:.3g} (more than {TOLERANCE:g}); it was written, but "
            "do not use it",
            path=path,
        )
    return result


def _compare(model: LoadedModel, path: Path, target: Target) -> float:
    """Largest logit difference between source and converted form on three patches
    (a batch size the export never saw)."""
    import torch

    x = _example(model, 3, seed=1)
    if target == "pt2":
        from inference.models.exported import load_pt2

        converted = load_pt2(path)[1]
    else:
        from inference.models.onnx_runtime import onnx_module

        converted = onnx_module(path, "cpu")
    with torch.inference_mode():
        expected = model.module(x).float()
        got = converted(x).float()
    if tuple(got.shape) != tuple(expected.shape):
        raise ModelLoadError(
            f"{path}: the converted model returns {tuple(got.shape)} where the source "
            f"returns {tuple(expected.shape)}",
            path=path,
        )
    return float((got - expected).abs().max())
