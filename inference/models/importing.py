"""``slidelens models import``: a model folder (card + weights, checked) from what a user has.

Contract: :func:`import_model` reads a source (:mod:`inference.models.import_sources`:
a WSInfer zoo download, a timm checkpoint folder, a TorchScript, ``.pt2`` or ONNX file),
maps what it can onto a card, and writes ``<out>/<name>/`` with ``config.json`` and the
weights copied as files (Hugging Face symlinks followed; pickled state dicts rewritten
as ``safetensors``, tensors only).  The :class:`ImportReport` says what was found, what
was mapped, what was left (files, settings SlideSource does not apply), what was
checked, and which card fields are missing and which flag gives each
(:data:`FLAGS`); with anything missing nothing is written.  The folder is written
beside the target, checked there (the card validates; weights and ONNX models load and
give one output per class; a program loads only with ``trust``) and then moved into
place, so a failed import leaves nothing behind.  Errors are
:class:`~inference.models.card.ModelError`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.models.architectures import BACKBONE_HEAD, TIMM_PREFIX
from inference.models.card import (
    CONFIG_NAME,
    ONNX_NAME,
    PT2_NAME,
    TORCHSCRIPT_NAME,
    ModelCardError,
    ModelError,
    load_card,
)
from inference.models.forms import STATE_DICT_NAMES, find_forms
from inference.models.import_sources import Source, find_source
from inference.models.timm_models import FORBIDDEN_ARGS

if TYPE_CHECKING:
    from inference.models.trust import TrustStore

#: Card fields a source may lack, and the flag that gives each.
FLAGS: dict[str, str] = {
    "spacing_um_px": "--spacing UM_PER_PX (micrometres per pixel of the training patches)",
    "patch_size_pixels": "--patch-size PIXELS (side of a patch read at that spacing)",
    "class_names": "--classes NAME,NAME,... (one per output, in output order)",
    "slidelens.head": (
        "--head HEAD.safetensors (a Linear or MLP head trained on this backbone's embeddings)"
    ),
}
#: Files a source's model may come in, copied under these names.
_PROGRAM_NAMES = {"torchscript": TORCHSCRIPT_NAME, "pt2": PT2_NAME, "onnx": ONNX_NAME}
_ARCH_NAMES = {"torchscript": "torchscript-program", "pt2": "torch-export-program", "onnx": "onnx"}


class ModelImportError(ModelError):
    """An import that cannot be written; ``report`` holds what was found so far."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ImportOptions:
    """What the command line may add to or override in the source's card."""

    name: str | None = None
    spacing: float | None = None
    patch_size: int | None = None
    classes: tuple[str, ...] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_size: int | None = None
    card: Path | None = None
    head: Path | None = None
    pool: str | None = None
    force: bool = False
    trust: bool = False


@dataclass
class ImportReport:
    """What an import found, mapped, left, checked and still needs."""

    source: Source
    found: list[str] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    folder: Path | None = None


def _apply_flags(card: dict[str, Any], options: ImportOptions, report: ImportReport) -> None:
    """Flags fill what the card lacks and override what it says (each noted)."""
    given = {
        "spacing_um_px": options.spacing,
        "patch_size_pixels": options.patch_size,
        "class_names": list(options.classes) if options.classes else None,
    }
    for key, value in given.items():
        if value is None:
            continue
        before = card.get(key)
        card[key] = value
        how = "from the flag" if before is None else f"from the flag (the card said {before})"
        if before != value:
            report.mapped.append(f"{key} = {value} {how}")
    if options.classes:
        card["num_classes"] = len(options.classes)
    if options.mean is not None or options.std is not None:
        steps = [s for s in card.get("transform", []) if s.get("name") != "Normalize"]
        steps.append(
            {
                "name": "Normalize",
                "arguments": {
                    "mean": list(options.mean or (0.0, 0.0, 0.0)),
                    "std": list(options.std or (1.0, 1.0, 1.0)),
                },
            }
        )
        card["transform"] = steps
        report.mapped.append("Normalize mean/std from --mean/--std")
    for key in ("spacing_um_px", "patch_size_pixels", "class_names"):
        if card.get(key) is None:
            report.missing.append((key, FLAGS[key]))


def _transform(patch: int | None, input_size: int | None, mean: Any, std: Any) -> list[Any]:
    steps: list[dict[str, Any]] = []
    if input_size and patch and input_size != patch:
        steps.append({"name": "Resize", "arguments": {"size": int(input_size)}})
    steps.append({"name": "ToTensor"})
    if mean is not None and std is not None:
        steps.append(
            {"name": "Normalize", "arguments": {"mean": list(mean)[:3], "std": list(std)[:3]}}
        )
    return steps


def _origin(source: Source) -> dict[str, Any]:
    out: dict[str, Any] = {"imported_by": "slidelens models import", "source": str(source.path)}
    out["source_kind"] = source.kind
    if source.hub is not None:
        out |= {"hugging_face_repo": source.hub.repo_id, "revision": source.hub.revision}
    return out


def _wsinfer(source: Source, options: ImportOptions, report: ImportReport) -> tuple[Any, Any]:
    card = json.loads(json.dumps(source.config))
    report.found.append(
        f"{CONFIG_NAME}: WSInfer model config {card.get('spec_version', '?')}, architecture "
        f"{card.get('architecture')!r}, {card.get('num_classes')} classes, "
        f"{card.get('patch_size_pixels')} px at {card.get('spacing_um_px') or '?'} um/px"
    )
    _apply_flags(card, options, report)
    files = {}
    for name in (*STATE_DICT_NAMES, TORCHSCRIPT_NAME, PT2_NAME, ONNX_NAME):
        if (source.folder / name).is_file():
            files[name] = source.folder / name
            report.found.append(f"weights: {name}")
    if not files:
        raise ModelImportError(
            f"{source.folder}: no weights beside {CONFIG_NAME}; a WSInfer model needs "
            f"one of {', '.join((*STATE_DICT_NAMES, TORCHSCRIPT_NAME))}",
            report,
        )
    report.mapped.append("the WSInfer config as the card (SlideLens reads WSInfer's keys)")
    return card, files


def _timm(source: Source, options: ImportOptions, report: ImportReport) -> tuple[Any, Any]:
    cfg = source.config
    arch = str(cfg["architecture"])
    pre = cfg.get("pretrained_cfg") if isinstance(cfg.get("pretrained_cfg"), dict) else {}
    assert isinstance(pre, dict)
    num = int(cfg.get("num_classes", pre.get("num_classes", 0)) or 0)
    candidates = [source.folder / n for n in ("model.safetensors", "pytorch_model.bin")]
    weights = next((p for p in candidates if p.is_file()), None)
    report.found.append(
        f"{CONFIG_NAME}: timm checkpoint config, architecture {arch!r}, "
        f"{'a feature extractor' if num == 0 else f'{num} classes'}"
    )
    if weights is None:
        raise ModelImportError(
            f"{source.folder}: no model.safetensors or pytorch_model.bin beside {CONFIG_NAME}",
            report,
        )
    report.found.append(f"weights: {weights.name}")
    args = {k: v for k, v in (cfg.get("model_args") or {}).items() if k not in FORBIDDEN_ARGS}
    dropped = sorted(set(cfg.get("model_args") or {}) - set(args))
    if dropped:
        report.unmapped.append(f"model_args {', '.join(dropped)} (set by the card or refused)")
    input_size = int((pre.get("input_size") or [3, 224, 224])[-1])
    mean = options.mean or pre.get("mean")
    std = options.std or pre.get("std")
    patch = options.patch_size
    labels = cfg.get("label_names")
    classes = list(options.classes) if options.classes else None
    files: dict[str, Path] = {}
    sl: dict[str, Any] = {"task": "classification"}
    if num == 0:
        if options.head is None:
            report.missing.append(("slidelens.head", FLAGS["slidelens.head"]))
            num_out = len(classes) if classes else 0
        else:
            from inference.models.composed import head_outputs

            num_out = head_outputs(options.head)
            report.found.append(f"head: {options.head.name} with {num_out} outputs")
            sl["backbone"] = {"architecture": TIMM_PREFIX + arch, "weights": "backbone.safetensors"}
            if args:
                sl["backbone"]["model_args"] = args
            if options.pool:
                sl["backbone"]["pool"] = options.pool
            sl["head"] = {"weights": "head.safetensors"}
            files = {"backbone.safetensors": weights, "head.safetensors": options.head}
            report.mapped.append(f"architecture backbone+head: timm:{arch} + {options.head.name}")
        architecture = BACKBONE_HEAD
    else:
        num_out = num
        architecture = TIMM_PREFIX + arch
        files = {"model.safetensors": weights}
        if args:
            sl["model_args"] = args
        report.mapped.append(f"architecture timm:{arch} with {num} classes")
    if classes is None and isinstance(labels, list) and len(labels) == num_out and num_out:
        classes = [str(x) for x in labels]
        report.mapped.append("class_names from label_names")
    if mean is not None:
        report.mapped.append(f"Normalize mean {list(mean)} std {list(std or [])} (pretrained_cfg)")
    report.mapped.append(f"network input {input_size} px (pretrained_cfg.input_size)")
    interpolation = pre.get("interpolation")
    if interpolation and interpolation != "bilinear":
        report.unmapped.append(
            f"pretrained_cfg.interpolation {interpolation!r}: SlideLens resizes bilinear "
            "(antialiased)"
        )
    crop = pre.get("crop_pct")
    if crop not in (None, 1, 1.0):
        report.unmapped.append(
            f"pretrained_cfg.crop_pct {crop}: no centre crop, the whole patch is resized"
        )
    sl["origin"] = _origin(source)
    card = {
        "spec_version": "1.0",
        "architecture": architecture,
        "num_classes": num_out or (len(classes) if classes else None),
        "class_names": classes,
        "patch_size_pixels": patch,
        "spacing_um_px": options.spacing,
        "transform": _transform(patch or input_size, input_size, mean, std),
        "slidelens": sl,
    }
    for key, flag in FLAGS.items():
        if key in card and card[key] is None:
            report.missing.append((key, flag))
    if classes and num_out and len(classes) != num_out:
        report.missing.append(
            ("class_names", f"--classes with {num_out} names (got {len(classes)})")
        )
    return card, files


def _onnx_input_side(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    sides = [d.dim_value for d in dims[2:]] if len(dims) == 4 else []
    return int(sides[0]) if sides and sides[0] > 0 and sides[0] == sides[-1] else None


def _onnx_data_files(path: Path) -> list[Path]:
    """Files an ONNX model keeps its tensors in (external data), beside it."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            for entry in tensor.external_data:
                if entry.key == "location":
                    names.add(entry.value)
    return [path.parent / n for n in sorted(names)]


def _program(source: Source, options: ImportOptions, report: ImportReport) -> tuple[Any, Any]:
    report.found.append(f"{source.path.name}: {source.label}")
    card_path = options.card or (source.folder / CONFIG_NAME)
    if card_path.is_file():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        report.found.append(f"card: {card_path}")
        report.mapped.append(f"the card {card_path.name}")
    else:
        side = _onnx_input_side(source.path) if source.kind == "onnx" else None
        input_size = options.input_size or side
        patch = options.patch_size
        card = {
            "spec_version": "1.0",
            "architecture": _ARCH_NAMES[source.kind],
            "num_classes": len(options.classes) if options.classes else None,
            "class_names": list(options.classes) if options.classes else None,
            "patch_size_pixels": patch,
            "spacing_um_px": options.spacing,
            "transform": _transform(patch, input_size, options.mean, options.std),
            "slidelens": {"task": "classification"},
        }
        report.mapped.append("a card from the flags (no config.json given: --card)")
        if side:
            report.mapped.append(f"network input {side} px (the ONNX graph's input)")
        if options.mean is None:
            report.unmapped.append(
                "normalisation: none given, the model gets RGB scaled to 0..1 "
                "(--mean R,G,B --std R,G,B if it was trained normalised)"
            )
    _apply_flags(card, options, report)
    files = {_PROGRAM_NAMES[source.kind]: source.path}
    if source.kind == "onnx":
        files |= {p.name: p for p in _onnx_data_files(source.path)}
    return card, files


def _copy(src: Path, dest: Path, report: ImportReport) -> None:
    """Copy a file's content (following symlinks); a pickled state dict becomes safetensors."""
    if dest.suffix == ".safetensors" and src.suffix != ".safetensors":
        from safetensors.torch import save_file

        from inference.models.weights import load_state_dict_file

        state = load_state_dict_file(src)
        save_file({k: v.contiguous().clone() for k, v in state.items()}, str(dest))
        report.mapped.append(f"{src.name} rewritten as {dest.name} (tensors only)")
        return
    shutil.copyfile(src, dest)


def _check(folder: Path, options: ImportOptions, report: ImportReport, store: Any) -> None:
    """Load every form that may be loaded and check it gives one output per class."""
    import torch

    from inference.models.loading import load_model

    card = load_card(folder)
    for form in find_forms(folder, card):
        if form.is_program and not options.trust:
            report.checked.append(
                f"{form.path.name}: not loaded, a program runs code when loaded; SlideLens "
                "asks for trust on first use (--trust checks it now)"
            )
            continue
        model = load_model(folder, backend=form.kind, trust=options.trust, trust_store=store)
        side = card.patch_size_pixels
        with torch.inference_mode():
            out = model.module(model.preprocess(np.zeros((1, side, side, 3), np.uint8)))
        outputs = int(out.shape[1]) if out.ndim > 1 else 1
        if outputs != card.num_classes:
            raise ModelImportError(
                f"{form.path.name}: gives {outputs} outputs per patch but the card has "
                f"{card.num_classes} classes; give --classes with {outputs} names",
                report,
            )
        report.checked.append(
            f"{form.path.name}: loads ({form.label}) and gives {outputs} outputs per patch"
        )


def import_model(
    path: Path,
    out_root: Path,
    options: ImportOptions | None = None,
    *,
    trust_store: TrustStore | None = None,
) -> ImportReport:
    """Import ``path`` as ``out_root/<name>`` (see the module docstring).

    Returns the report; ``report.folder`` is ``None`` when card fields are missing
    (``report.missing``).  Raises :class:`~inference.models.card.ModelError` (the
    source, the card or the weights) and leaves nothing written then.
    """
    options = options or ImportOptions()
    source = find_source(path)
    report = ImportReport(source)
    if source.hub is not None:
        report.found.append(
            f"Hugging Face cache: {source.hub.repo_id}, snapshot {source.hub.revision[:12]} "
            f"({source.hub.note})"
        )
    builders = {"wsinfer": _wsinfer, "timm": _timm}
    card, files = builders.get(source.kind, _program)(source, options, report)
    if source.path.is_dir():
        used = {p.resolve() for p in files.values()} | {(source.folder / CONFIG_NAME).resolve()}
        for extra in sorted(source.folder.iterdir()):
            if extra.is_file() and extra.resolve() not in used:
                report.unmapped.append(f"{extra.name} (not used)")
    sl = card.setdefault("slidelens", {})
    if isinstance(sl, dict):
        sl.setdefault("origin", _origin(source))
    if report.missing:
        return report
    name = options.name or source.default_name
    target = Path(out_root) / name
    _make_room(target, options.force, report)
    Path(out_root).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=out_root))
    try:
        (staging / CONFIG_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        for dest, src in files.items():
            _copy(src, staging / dest, report)
        try:
            _check(staging, options, report, trust_store)
        except ModelCardError as exc:  # name the card as the user will find it
            raise ModelImportError(str(exc).replace(str(staging), str(target)), report) from exc
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    report.folder = target
    return report


def _make_room(target: Path, force: bool, report: ImportReport) -> None:
    if not target.exists():
        return
    if not force:
        raise ModelImportError(
            f"{target}: exists; choose another --name or --out, or --force to replace it",
            report,
        )
    if not target.is_dir() or not (target / CONFIG_NAME).is_file():
        raise ModelImportError(
            f"{target}: exists and is not a model folder; --force replaces model folders only",
            report,
        )
