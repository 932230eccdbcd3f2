"""Loading a model folder safely: weights and ONNX are data, TorchScript and ``.pt2`` are programs.

A folder may hold its model in several forms (:mod:`inference.models.forms`):

1. ``eager``: a state dict for the card's architecture, ``model.safetensors`` preferred,
   else ``model.pt``, ``model.pth``, ``pytorch_model.bin`` or ``model.bin`` read only with
   ``torch.load(path, weights_only=True, map_location="cpu")`` (a file that would run
   code while unpickling is refused, never retried with ``weights_only=False``); or, for
   a ``backbone+head`` card, its backbone and head files (:mod:`inference.models.composed`);
2. ``pt2``: ``model.pt2``, a ``torch.export`` program (:mod:`inference.models.exported`
   says why it is a program);
3. ``onnx``: ``model.onnx``, run by ONNX Runtime (:mod:`inference.models.onnx_runtime`
   says why it is data);
4. ``torchscript``: ``torchscript_model.pt``, a program.

Programs load only when trusted (``trust=True``, which is remembered in the
:class:`~inference.models.trust.TrustStore`, or a hash the store already trusts);
when a program is the only form, :class:`UntrustedModelError`.  When several forms may
load, the fastest on this machine runs (:mod:`inference.models.selection`: measured
once, remembered), unless ``backend`` names one.  A state dict must fit the card's
architecture exactly (:func:`~inference.models.weights.fit_state_dict`).  torch is
imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from inference.models.architectures import (
    BACKBONE_HEAD,
    ArchitectureError,
    build_architecture,
    default_cam_layer,
)
from inference.models.backends import BackendChoice, BackendStore
from inference.models.card import ModelCard, ModelCardError, load_card
from inference.models.errors import ModelLoadError, UntrustedModelError
from inference.models.forms import (
    FORM_LABELS,
    STATE_DICT_NAMES,
    ModelForm,
    find_forms,
    missing_weights_message,
)
from inference.models.layer_paths import find_layer
from inference.models.timm_models import timm_cam_layer
from inference.models.trust import TrustStore, file_sha256
from inference.models.weights import fit_state_dict, load_state_dict_file

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "STATE_DICT_NAMES",
    "LoadedModel",
    "ModelLoadError",
    "UntrustedModelError",
    "find_weights",
    "load_model",
    "load_state_dict_file",
]

Kind = Literal["eager", "torchscript", "pt2", "onnx"]
#: What ``backend`` may name besides a form: let the measurement decide.
AUTO = "auto"


@dataclass
class LoadedModel:
    """A model ready to run: its card, the module in eval mode, and where it came from.

    ``sha256`` is the identity of the files that run (the weights file's hash; for a
    ``backbone+head`` model the hash of both files' hashes), used in result-cache keys.
    ``kind`` is the form that runs; ``forms`` every form of the folder, ``hashes`` their
    SHA-256 by kind (of those hashed), ``usable`` the kinds that may load here;
    ``backend_choice`` the measurement that picked ``kind`` when several could run.
    """

    card: ModelCard
    module: nn.Module
    weights_path: Path
    sha256: str
    kind: Kind
    device: torch.device
    forms: tuple[ModelForm, ...] = ()
    hashes: dict[str, str] = field(default_factory=dict)
    usable: tuple[str, ...] = ()
    backend_choice: BackendChoice | None = None
    backend_reason: str = ""
    _norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _program: Any = field(default=None, repr=False, compare=False)
    _loader: Callable[[ModelForm], LoadedModel] | None = field(
        default=None, repr=False, compare=False
    )
    _explainer: LoadedModel | None = field(default=None, repr=False, compare=False)

    @property
    def cam_target_layer(self) -> str | None:
        """The layer to explain: the card's ``cam_target_layer``, else the architecture's
        default (built-in table, a composed model's backbone layer, a timm family's);
        ``None`` when none is known (a program whose card names none)."""
        if self.card.cam_target_layer:
            return self.card.cam_target_layer
        try:
            return default_cam_layer(self.card.architecture)
        except ArchitectureError:
            pass
        own = getattr(self.module, "cam_layer", None)
        if isinstance(own, str):
            return own
        return timm_cam_layer(self.module)

    @property
    def program(self) -> Any:
        """A ``.pt2`` model's ``torch.export.ExportedProgram`` (``None`` for other forms)."""
        return self._program

    @property
    def backend(self) -> dict[str, Any]:
        """What runs the model and why, for run records: the form, every form of the
        folder, and the measurement when one chose it."""
        out: dict[str, Any] = {
            "backend": self.kind,
            "label": FORM_LABELS[self.kind],
            "forms": [f.kind for f in self.forms],
            "reason": self.backend_reason,
        }
        if self.backend_choice is not None:
            out["measurement"] = self.backend_choice.as_dict()
        return out

    def explanation_model(self) -> LoadedModel:
        """The model explanations run on: the folder's eager model when this form takes
        no hooks or gradients (ONNX, TorchScript) and the folder has one (loaded once);
        a ``.pt2`` program unflattened (its layers take hooks); else ``self``."""
        if self.kind == "eager":
            return self
        if self._explainer is not None:
            return self._explainer
        if self.kind == "pt2" and self._program is not None:
            from inference.models.exported import unflattened

            module = unflattened(self._program).to(self.device)
            module.eval()
            self._explainer = LoadedModel(
                card=self.card,
                module=module,
                weights_path=self.weights_path,
                sha256=self.sha256,
                kind="pt2",
                device=self.device,
                forms=self.forms,
                hashes=self.hashes,
                usable=self.usable,
                backend_reason="unflattened for explanations",
                _program=self._program,
            )
            self._explainer._explainer = self._explainer
            return self._explainer
        for form in self.forms:  # eager weights are data; a program only when trusted
            usable = form.kind == "eager" or (form.kind == "pt2" and "pt2" in self.usable)
            if usable and self._loader is not None:
                self._explainer = self._loader(form).to(self.device).explanation_model()
                return self._explainer
        return self

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the module to ``device`` (in place) and return ``self``."""
        import torch

        target = torch.device(device)
        try:
            if self.kind == "onnx":
                from inference.models.onnx_runtime import onnx_module

                if target.type != self.device.type:
                    self.module = onnx_module(self.weights_path, str(target))
            else:
                self.module.to(target)
        except (RuntimeError, AssertionError) as exc:
            raise ModelLoadError(
                f"{self.weights_path}: cannot move the model to {target}: {exc}. "
                "Choose another device (cpu always works).",
                path=self.weights_path,
            ) from exc
        self.device = target
        if self._explainer is not None and self._explainer is not self:
            self._explainer.to(target)
        return self

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` (or one ``(H, W, 3)``) uint8 RGB to the network input on
        :attr:`device`: both halves of the input, on the calling thread.

        The array as a uint8 tensor copied to :attr:`device`, then :meth:`to_model_input`.
        For explanations, training and benchmarks; the engine runs the halves apart (its
        readers make the uint8 batch, the thread running the forward passes uploads and
        converts it).  Raises ``ValueError`` for anything but uint8 RGB.
        """
        import torch

        arr = np.asarray(rgb)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(
                f"preprocess expects (N, H, W, 3) uint8 RGB; got {arr.shape} {arr.dtype}"
            )
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        return self.to_model_input(x)

    def to_model_input(self, x: torch.Tensor) -> torch.Tensor:
        """The device half of preprocessing: a ``(N, H, W, 3)`` uint8 RGB tensor to the
        network input ``(N, 3, S, S)`` float32, on ``x``'s device (no copy elsewhere).

        Scaled to 0..1, resized to ``card.input_size`` when H, W differ (bilinear,
        antialiased), then normalised with the card's mean and std.  Every operation
        runs on ``x``'s device, so the caller decides where and on which thread.
        Raises ``ValueError`` for anything but a 4-d uint8 tensor with 3 channels last.
        """
        import torch
        import torch.nn.functional as F

        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(
                f"to_model_input expects an (N, H, W, 3) uint8 tensor; "
                f"got {tuple(x.shape)} {x.dtype}"
            )
        x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        size = self.card.input_size
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        mean, std = self._mean_std(x.device)
        return (x - mean) / std

    def postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        """Apply the card's activation over dim 1 (classes / channels): softmax, sigmoid or
        identity.  Works for ``(N, C)`` and per pixel for ``(N, C, H, W)``; float32 out."""
        import torch

        out = logits.float()
        if self.card.activation == "softmax":
            return torch.softmax(out, dim=1)
        if self.card.activation == "sigmoid":
            return torch.sigmoid(out)
        return out

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The card's mean and std as ``(1, 3, 1, 1)`` tensors on ``device`` (made once)."""
        import torch

        key = str(device)
        if key not in self._norm:
            mean = torch.tensor(self.card.mean, dtype=torch.float32, device=device)
            std = torch.tensor(self.card.std, dtype=torch.float32, device=device)
            self._norm[key] = (mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1))
        return self._norm[key]


def find_weights(folder: Path, card: ModelCard | None = None) -> tuple[Path, str]:
    """The main file of the form loaded when nothing was measured, and its kind.

    State dicts win over programs and ONNX, unless the card's architecture cannot be
    built (an unknown name: only a program or ONNX can run then).  ``card`` is read
    from the folder when not given (and ignored when invalid).  Raises
    :class:`ModelLoadError` when the folder holds no weights.
    """
    folder = Path(folder)
    if card is None:
        try:
            card = load_card(folder)
        except ModelCardError:
            card = None
    forms = find_forms(folder, card)
    if not forms:
        raise ModelLoadError(missing_weights_message(folder, card), path=folder)
    return forms[0].path, forms[0].kind


def load_model(
    folder: Path,
    *,
    trust: bool = False,
    trust_store: TrustStore | None = None,
    device: str = "cpu",
    backend: str | None = None,
    backend_store: BackendStore | None = None,
) -> LoadedModel:
    """Load a model folder (card + one of its forms) into a :class:`LoadedModel`.

    ``trust`` allows the folder's programs (TorchScript, ``.pt2``) and records their
    hashes in ``trust_store`` (default: the user's store); a hash the store already
    trusts loads without ``trust``.  ``backend`` (``eager``, ``pt2``, ``onnx``,
    ``torchscript``; ``None`` or ``auto``: the fastest usable form, see the module
    docstring) picks the form.  Raises :class:`~inference.models.card.ModelCardError`
    for a bad card, :class:`UntrustedModelError` for an untrusted program that is the
    only (or the requested) form, and :class:`ModelLoadError` for weights that are
    unsafe, unreadable or do not fit, or a backend the folder lacks; all are
    :class:`~inference.models.card.ModelError`.
    """
    folder = Path(folder)
    card = load_card(folder)
    forms = find_forms(folder, card)
    if not forms:
        raise ModelLoadError(missing_weights_message(folder, card), path=folder)
    store = trust_store if trust_store is not None else TrustStore()
    wanted = None if backend in (None, AUTO) else backend
    if wanted is not None:
        by_kind = {f.kind: f for f in forms}
        if wanted not in by_kind:
            raise ModelLoadError(
                f"{folder}: no {wanted!r} form here; this folder offers "
                f"{', '.join(f.kind for f in forms)} (or use --backend auto)",
                path=folder,
            )
        forms_to_use = [by_kind[wanted]]
    else:
        forms_to_use = forms
    hashes: dict[str, str] = {f.kind: _form_sha256(f) for f in forms_to_use}
    from inference.models.selection import choose, usable_forms

    usable, skipped = usable_forms(
        forms_to_use, hashes, trust=trust, trust_store=store, device=device
    )
    if not usable:
        first = forms_to_use[0]
        if first.is_program:
            raise UntrustedModelError(first.path, hashes[first.kind], first.kind)
        raise ModelLoadError(f"{first.path}: {skipped[first.kind]}", path=first.path)

    def load(form: ModelForm) -> LoadedModel:
        model = _load_form(card, form, hashes.get(form.kind) or _form_sha256(form), device)
        model.forms = tuple(forms)
        model.hashes = dict(hashes)
        model.usable = tuple(f.kind for f in usable)
        model._loader = load
        return model

    if len(usable) == 1:
        model = load(usable[0])
        only = "the only form" if len(forms) == 1 else "the only usable form"
        model.backend_reason = "requested" if wanted else only
        if skipped:
            notes = "; ".join(f"{k}: {v}" for k, v in skipped.items())
            model.backend_reason += f"; skipped: {notes}"
        return model
    form, measured, choice = choose(
        usable, hashes, folder, device, load, store=backend_store, skipped=skipped
    )
    model = measured if isinstance(measured, LoadedModel) else load(form)
    model.backend_choice = choice
    model.backend_reason = f"fastest here (measured by {choice.measured_by})"
    return model


def _form_sha256(form: ModelForm) -> str:
    if len(form.files) == 1:
        return file_sha256(form.path)
    import hashlib

    parts = "\n".join(f"{p.name}:{file_sha256(p)}" for p in form.files)
    return hashlib.sha256(parts.encode()).hexdigest()


def _load_form(card: ModelCard, form: ModelForm, sha: str, device: str) -> LoadedModel:
    """One form loaded on the CPU, in eval mode, then moved to ``device``."""
    import torch

    program = None
    if form.kind == "torchscript":
        module = _load_torchscript(form.path)
    elif form.kind == "pt2":
        from inference.models.exported import load_pt2

        program, module = load_pt2(form.path)
    elif form.kind == "onnx":
        from inference.models.onnx_runtime import onnx_module

        module = onnx_module(form.path, "cpu")
    elif card.architecture == BACKBONE_HEAD:
        from inference.models.composed import build_backbone_head

        module = build_backbone_head(card)
    else:
        module = _build_eager(card, form.path)
    if form.kind != "pt2":  # an exported program has eval semantics baked in
        module.eval()
    if form.kind == "eager":
        _check_cam_layer(card, module)
    loaded = LoadedModel(
        card=card,
        module=module,
        weights_path=form.path,
        sha256=sha,
        kind=form.kind,
        device=torch.device("cpu"),
        _program=program,
    )
    return loaded.to(device) if torch.device(device).type != "cpu" else loaded


def _build_eager(card: ModelCard, path: Path) -> nn.Module:
    try:
        module = build_architecture(
            card.architecture, card.num_classes, card.task, card.model_args or None
        )
    except ArchitectureError as exc:
        raise ModelLoadError(f"{card.config_path}: {exc}", path=card.config_path) from exc
    fit_state_dict(
        module,
        load_state_dict_file(path),
        path,
        f"architecture {card.architecture!r} with {card.num_classes} classes",
        "Check 'architecture' and 'num_classes' in config.json.",
    )
    return module


def _check_cam_layer(card: ModelCard, module: nn.Module) -> None:
    layer = card.cam_target_layer
    if layer and find_layer(module, layer) is None:
        raise ModelLoadError(
            f"{card.config_path}: field 'slidelens.cam_target_layer': the model has no "
            f"layer {layer!r}; use a dotted module name such as "
            f"{_suggest_layer(card.architecture)!r}",
            path=card.config_path,
        )


def _suggest_layer(architecture: str) -> str:
    try:
        return default_cam_layer(architecture)
    except ArchitectureError:
        return "layer4"


def _load_torchscript(path: Path) -> nn.Module:
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream, but it is how WSInfer ships its zoo.
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*jit.*")
            module: nn.Module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: not a loadable TorchScript program ({type(exc).__name__}: {exc}); "
            "export it again with torch.jit.save",
            path=path,
        ) from exc
    return module
