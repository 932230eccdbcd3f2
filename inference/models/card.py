"""Model cards: a model folder's ``config.json``, validated and read into :class:`ModelCard`.

The file is WSInfer's model config (spec_version "1.0", architecture, num_classes,
class_names, patch_size_pixels, spacing_um_px, transform of Resize/ToTensor/Normalize), so
WSInfer zoo folders work as they are, plus an optional ``slidelens`` object (task,
activation, cam_target_layer, cam_layer_layout, description, licence, intended_use,
metrics, training, origin, domain, grading, truth_classes, embedding_layer, aggregation;
model_args for a ``timm:``
architecture; backbone and head for the ``backbone+head`` architecture).

Validation is the JSON Schema in ``resources/schemas/model-card.schema.json`` plus checks a
schema cannot state (class count, known architecture, transform order).  Every problem is
reported as ``<folder>/config.json: field '<field>': <problem>``; all problems of one card
are reported together.  No torch here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from inference.models.architectures import (
    BACKBONE_HEAD,
    TIMM_PREFIX,
    architecture_task,
    is_known_architecture,
    known_architectures,
)
from inference.models.domain import ModelDomain
from inference.models.timm_models import model_args_problems

CONFIG_NAME = "config.json"
TORCHSCRIPT_NAME = "torchscript_model.pt"
#: A ``torch.export`` program (``torch.export.save``).
PT2_NAME = "model.pt2"
#: An ONNX model run by ONNX Runtime.
ONNX_NAME = "model.onnx"
#: Files that run without building the card's architecture (so it may have any name).
SELF_CONTAINED_NAMES = (TORCHSCRIPT_NAME, PT2_NAME, ONNX_NAME)
SCHEMA_NAME = "model-card.schema.json"

Task = Literal["classification", "segmentation"]
Activation = Literal["softmax", "sigmoid", "none"]


class ModelError(Exception):
    """Base of every model problem a user can cause (bad card, weights that do not load).

    Catch this to show ``str(exc)``: it names the file, the cause and what to do.
    """


class ModelCardError(ModelError, ValueError):
    """A card is missing, not JSON, or invalid.

    ``path`` is the config file; ``problems`` the ``(field, problem)`` pairs ("" as field
    for problems of the whole file).  ``str(exc)`` reads, for one problem,
    ``<folder>/config.json: field 'spacing_um_px': must be a positive number (got -1)``.
    """

    def __init__(self, path: Path, problems: Iterable[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        parts = [f"field '{f}': {p}" if f else p for f, p in self.problems]
        super().__init__(f"{self.path}: " + "; ".join(parts))


@dataclass(frozen=True)
class ModelCard:
    """Everything SlideLens needs to know about a model, read from its card.

    ``input_size`` is the side the network sees (after the Resize step; the patch size
    when there is none).  ``mean``/``std`` are the Normalize arguments on the 0..1 scale
    (0 and 1 when there is no Normalize step).  ``activation`` defaults to sigmoid for one
    output and softmax otherwise.  ``metrics`` are the held-out figures the card reports;
    ``raw`` is the JSON as read.
    """

    folder: Path
    name: str
    architecture: str
    num_classes: int
    class_names: tuple[str, ...]
    patch_size_pixels: int
    spacing_um_px: float
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    task: Task = "classification"
    activation: Activation = "softmax"
    #: A one-output model's class applies at or above this probability.
    threshold: float = 0.5
    cam_target_layer: str | None = None
    #: ``nchw``, ``nhwc`` or ``tokens``; ``None``: found from the model.
    cam_layer_layout: str | None = None
    description: str = ""
    licence: str = ""
    intended_use: str = ""
    metrics: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False
    )
    raw: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False
    )

    @property
    def config_path(self) -> Path:
        """The card's ``config.json``."""
        return self.folder / CONFIG_NAME

    @property
    def training(self) -> Mapping[str, Any]:
        """The free-form ``slidelens.training`` object (empty when absent)."""
        sl = self.raw.get("slidelens", {})
        training = sl.get("training", {}) if isinstance(sl, Mapping) else {}
        return cast(Mapping[str, Any], training)

    @property
    def model_args(self) -> Mapping[str, Any]:
        """``slidelens.model_args``: timm.create_model keyword arguments (empty when absent)."""
        return self._slidelens_object("model_args")

    @property
    def backbone(self) -> Mapping[str, Any]:
        """``slidelens.backbone`` of a ``backbone+head`` card (empty otherwise)."""
        return self._slidelens_object("backbone")

    @property
    def head(self) -> Mapping[str, Any]:
        """``slidelens.head`` of a ``backbone+head`` card (empty otherwise)."""
        return self._slidelens_object("head")

    @property
    def domain(self) -> ModelDomain:
        """``slidelens.domain``: what the model was made for, and whether it is for
        diagnosis (see :mod:`inference.models.domain`; empty when the card says nothing)."""
        return ModelDomain.from_data(self._slidelens_object("domain"))

    @property
    def grading(self) -> Mapping[str, Any]:
        """``slidelens.grading``: how a slide's grade follows from its class map (read by
        :mod:`inference.results.grading`; empty when the model grades nothing)."""
        return self._slidelens_object("grading")

    @property
    def embedding_layer(self) -> str | None:
        """``slidelens.embedding_layer``: the layer whose output is a patch's embedding
        (``None``: the model's penultimate layer, see :mod:`inference.engine.embedding`)."""
        sl = self.raw.get("slidelens", {})
        value = sl.get("embedding_layer") if isinstance(sl, Mapping) else None
        return str(value) if value else None

    @property
    def aggregation(self) -> Mapping[str, Any]:
        """``slidelens.aggregation``: how a slide-level answer is made from the patch
        outputs (read by :mod:`inference.slide_level.spec`; empty when absent)."""
        return self._slidelens_object("aggregation")

    @property
    def truth_classes(self) -> Mapping[str, str]:
        """``slidelens.truth_classes``: ground-truth class name -> model class name (empty
        when absent)."""
        return cast(Mapping[str, str], self._slidelens_object("truth_classes"))

    def _slidelens_object(self, key: str) -> Mapping[str, Any]:
        sl = self.raw.get("slidelens", {})
        value = sl.get(key, {}) if isinstance(sl, Mapping) else {}
        return cast(Mapping[str, Any], value if isinstance(value, Mapping) else {})


def load_card(folder: Path) -> ModelCard:
    """Read and validate ``folder/config.json``.

    Raises :class:`ModelCardError` naming the file and every problem found: the folder or
    file is missing, the file is not JSON (with line and column), or fields are invalid.
    """
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise ModelCardError(path, [("", "model folder does not exist (a model is a folder)")])
    if not path.is_file():
        raise ModelCardError(
            path, [("", f"missing: a model folder needs a {CONFIG_NAME} (WSInfer model config)")]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelCardError(path, [("", "not UTF-8 text; a card is a JSON file")]) from None
    except OSError as exc:
        raise ModelCardError(path, [("", f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelCardError(
            path, [("", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")]
        ) from None
    problems = validate_card_data(data, folder)
    if problems:
        raise ModelCardError(path, problems)
    return _card_from_valid(folder, data)


def validate_card_data(data: Any, folder: Path | None = None) -> list[tuple[str, str]]:
    """Every problem of a parsed card as ``(field, problem)``; empty when valid.

    ``folder`` lets an unknown architecture pass when the folder holds a TorchScript or
    ``torch.export`` program or an ONNX model (which need no architecture to build).
    """
    if not isinstance(data, dict):
        return [("", f"must be a JSON object (got {_json_type(data)})")]
    problems = _schema_problems(data)
    bad = {f for f, _ in problems}
    problems += _semantic_problems(data, bad, folder)
    return problems


@functools.cache
def card_schema() -> Mapping[str, Any]:
    """The model-card JSON Schema from ``resources/schemas``."""
    import resources

    path = Path(resources.__file__).parent / "schemas" / SCHEMA_NAME
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _schema_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(card_schema())
    found: dict[str, str] = {}
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        where = _field_name(error.absolute_path)
        if error.validator == "required":
            instance = error.instance if isinstance(error.instance, dict) else {}
            for key in error.validator_value:
                if key not in instance:
                    found.setdefault(_join(where, key), "is required but missing")
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    found.setdefault(
                        _join(where, key), f"unknown field (allowed: {', '.join(allowed)})"
                    )
            continue
        message = error.schema.get("x-message") if isinstance(error.schema, dict) else None
        text = f"{message} (got {_show(error.instance)})" if message else error.message
        found.setdefault(where, text)
    return list(found.items())


def _semantic_problems(
    data: dict[str, Any], bad: set[str], folder: Path | None
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    sl = data.get("slidelens") if isinstance(data.get("slidelens"), dict) else {}
    assert isinstance(sl, dict)
    n = data.get("num_classes")
    names = data.get("class_names")
    if (
        "num_classes" not in bad
        and "class_names" not in bad
        and isinstance(n, int)
        and isinstance(names, list)
        and len(names) != n
    ):
        problems.append(
            ("class_names", f"has {len(names)} names but num_classes is {n}; give one per class")
        )
    arch = data.get("architecture")
    self_contained = folder is not None and any(
        (folder / name).is_file() for name in SELF_CONTAINED_NAMES
    )
    if (
        "architecture" not in bad
        and isinstance(arch, str)
        and not is_known_architecture(arch)
        and not self_contained
    ):
        problems.append(
            (
                "architecture",
                f"unknown architecture {arch!r}; known: {', '.join(known_architectures())}, "
                f"'{TIMM_PREFIX}<name>' for timm, or '{BACKBONE_HEAD}' (a folder with "
                f"{', '.join(SELF_CONTAINED_NAMES)} may use any name)",
            )
        )
    if isinstance(arch, str) and "architecture" not in bad:
        problems += _composition_problems(arch, sl, bad)
    task = sl.get("task", "classification")
    if isinstance(arch, str) and "slidelens.task" not in bad:
        arch_task = architecture_task(arch)
        if arch_task is not None and arch_task != task:
            problems.append(
                (
                    "slidelens.task",
                    f"is {task!r} but architecture {arch!r} is a {arch_task} network",
                )
            )
    if sl.get("activation") == "softmax" and n == 1:
        problems.append(
            (
                "slidelens.activation",
                "softmax over a single output is always 1; use 'sigmoid' for one class",
            )
        )
    steps = data.get("transform")
    if (
        "transform" not in bad
        and isinstance(steps, list)
        and not any(f.startswith("transform[") for f in bad)
    ):
        problems += _transform_problems(steps)
    if "class_names" not in bad and isinstance(names, list):
        problems += _class_reference_problems(sl, [str(x) for x in names], bad)
    return problems


def _class_reference_problems(
    sl: dict[str, Any], names: list[str], bad: set[str]
) -> list[tuple[str, str]]:
    """``slidelens.grading.patterns`` and ``slidelens.truth_classes`` name model classes."""
    problems: list[tuple[str, str]] = []
    grading = sl.get("grading")
    refs: list[tuple[str, Iterable[Any]]] = []
    if isinstance(grading, dict) and isinstance(grading.get("patterns"), dict):
        refs.append(("slidelens.grading.patterns", grading["patterns"].keys()))
    if isinstance(sl.get("truth_classes"), dict):
        refs.append(("slidelens.truth_classes", sl["truth_classes"].values()))
    for where, named in refs:
        unknown = sorted({str(x) for x in named} - set(names))
        if unknown and where not in bad:
            problems.append(
                (
                    where,
                    f"names {', '.join(map(repr, unknown))}, not classes of the model "
                    f"({', '.join(names)})",
                )
            )
    return problems


def _composition_problems(arch: str, sl: dict[str, Any], bad: set[str]) -> list[tuple[str, str]]:
    """``backbone+head`` needs both parts (and they need it); weights are files of the
    folder; ``model_args`` suit timm and name no download."""
    problems: list[tuple[str, str]] = []
    composed = arch == BACKBONE_HEAD
    for part in ("backbone", "head"):
        given = isinstance(sl.get(part), dict)
        if composed and not given and f"slidelens.{part}" not in bad:
            problems.append((f"slidelens.{part}", f"is required when architecture is {arch!r}"))
        if given and not composed:
            problems.append(
                (
                    f"slidelens.{part}",
                    f"is only read when architecture is '{BACKBONE_HEAD}' (it is {arch!r})",
                )
            )
        if given and isinstance(sl[part].get("weights"), str):
            name = sl[part]["weights"]
            if name in ("", ".", "..") or any(c in name for c in "/\\") or name.startswith("."):
                problems.append(
                    (
                        f"slidelens.{part}.weights",
                        f"must be a file name inside the model folder, not a path (got {name!r})",
                    )
                )
    args_at = {"slidelens.model_args": sl.get("model_args")}
    if isinstance(sl.get("backbone"), dict):
        args_at["slidelens.backbone.model_args"] = sl["backbone"].get("model_args")
    for where, args in args_at.items():
        if not isinstance(args, dict) or where in bad:
            continue
        if where == "slidelens.model_args" and not arch.startswith(TIMM_PREFIX):
            problems.append((where, f"is read only for '{TIMM_PREFIX}<name>' architectures"))
        problems += [(where, p) for p in model_args_problems(args)]
    return problems


def _transform_problems(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    names = [step["name"] for step in steps]
    for name in ("Resize", "ToTensor", "Normalize"):
        if names.count(name) > 1:
            problems.append(("transform", f"has {names.count(name)} {name} steps; allow one"))
    if "ToTensor" not in names:
        problems.append(("transform", "needs a ToTensor step (pixels to 0..1 tensors)"))
    elif "Normalize" in names and names.index("Normalize") < names.index("ToTensor"):
        problems.append(("transform", "Normalize must come after ToTensor"))
    for i, step in enumerate(steps):
        if step["name"] == "Resize":
            size = step["arguments"]["size"]
            if isinstance(size, list) and len(size) == 2 and size[0] != size[1]:
                problems.append((f"transform[{i}].arguments.size", f"must be square (got {size})"))
    return problems


def _card_from_valid(folder: Path, data: dict[str, Any]) -> ModelCard:
    sl: dict[str, Any] = data.get("slidelens", {})
    num_classes = int(data["num_classes"])
    patch = int(data["patch_size_pixels"])
    input_size = patch
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    for step in data["transform"]:
        args = step.get("arguments", {})
        if step["name"] == "Resize":
            size = args["size"]
            input_size = int(size[0] if isinstance(size, list) else size)
        elif step["name"] == "Normalize":
            m, s = args["mean"], args["std"]
            mean = (float(m[0]), float(m[1]), float(m[2]))
            std = (float(s[0]), float(s[1]), float(s[2]))
    activation = sl.get("activation", "sigmoid" if num_classes == 1 else "softmax")
    return ModelCard(
        folder=folder,
        name=folder.resolve().name,
        architecture=str(data["architecture"]),
        num_classes=num_classes,
        class_names=tuple(str(c) for c in data["class_names"]),
        patch_size_pixels=patch,
        spacing_um_px=float(data["spacing_um_px"]),
        input_size=input_size,
        mean=mean,
        std=std,
        task=sl.get("task", "classification"),
        activation=activation,
        threshold=float(sl.get("threshold", 0.5)),
        cam_target_layer=sl.get("cam_target_layer"),
        cam_layer_layout=sl.get("cam_layer_layout"),
        description=sl.get("description", ""),
        licence=sl.get("licence", ""),
        intended_use=sl.get("intended_use", ""),
        metrics=MappingProxyType({k: float(v) for k, v in sl.get("metrics", {}).items()}),
        raw=MappingProxyType(data),
    )


def _field_name(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, str(part))
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
