"""Loading a model folder safely: weights are data, TorchScript is a program.

Which file is loaded, in order of preference:

1. ``model.safetensors`` (safe by design: tensors only);
2. a state dict ``model.pt``, ``model.pth``, ``pytorch_model.bin`` or ``model.bin``, read
   only with ``torch.load(path, weights_only=True, map_location="cpu")``.  A file that
   would run code while unpickling is refused (never retried with ``weights_only=False``);
3. ``torchscript_model.pt``, a program: loaded only when trusted (``trust=True``, which is
   remembered in the :class:`~inference.models.trust.TrustStore`, or a hash the store
   already trusts).  Otherwise :class:`UntrustedModelError`.

A state dict must fit the card's architecture exactly (after stripping a ``module.`` /
``model.`` / ``_orig_mod.`` prefix shared by every key); otherwise the error lists a few
missing and unexpected keys and shape mismatches.  torch is imported inside functions only.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from inference.models.architectures import (
    ArchitectureError,
    build_architecture,
    default_cam_layer,
    is_known_architecture,
)
from inference.models.card import TORCHSCRIPT_NAME, ModelCard, ModelError, load_card
from inference.models.trust import TrustStore, file_sha256

if TYPE_CHECKING:
    import torch
    from torch import nn

#: State-dict files, most preferred first (safetensors before pickles).
STATE_DICT_NAMES = ("model.safetensors", "model.pt", "model.pth", "pytorch_model.bin", "model.bin")
_PREFIXES = ("module.", "model.", "_orig_mod.")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
_SHOW = 5


class ModelLoadError(ModelError):
    """A model folder's weights could not be loaded; the message names the file, the
    cause and what to do.  ``path`` is the file (or folder) concerned."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class UntrustedModelError(ModelLoadError):
    """A TorchScript program that the user has not trusted; nothing of it was run.

    ``sha256`` is the file's hash (what trusting it records) and ``path`` the file.
    """

    def __init__(self, path: Path, sha256: str) -> None:
        super().__init__(
            f"{path}: refused: a TorchScript model is a program that runs code when loaded, "
            "and you have not trusted this one. If you trust where it came from, load it "
            "with --trust (command line) or confirm in the viewer; SlideLens then remembers "
            f"it by its SHA-256 ({sha256[:16]}...).",
            path=path,
        )
        self.sha256 = sha256


@dataclass
class LoadedModel:
    """A model ready to run: its card, the module in eval mode, and where it came from.

    ``sha256`` is the weights file's hash, the model's identity in result-cache keys.
    """

    card: ModelCard
    module: nn.Module
    weights_path: Path
    sha256: str
    kind: Literal["eager", "torchscript"]
    device: torch.device
    _norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def cam_target_layer(self) -> str | None:
        """The layer to explain: the card's ``cam_target_layer``, else the architecture's
        default; ``None`` when neither is known (TorchScript or timm without one)."""
        if self.card.cam_target_layer:
            return self.card.cam_target_layer
        try:
            return default_cam_layer(self.card.architecture)
        except ArchitectureError:
            return None

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the module to ``device`` (in place) and return ``self``."""
        import torch

        target = torch.device(device)
        try:
            self.module.to(target)
        except (RuntimeError, AssertionError) as exc:
            raise ModelLoadError(
                f"{self.weights_path}: cannot move the model to {target}: {exc}. "
                "Choose another device (cpu always works).",
                path=self.weights_path,
            ) from exc
        self.device = target
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
    """The weights file to load and its kind (``"eager"`` or ``"torchscript"``).

    State dicts win over TorchScript, unless the card's architecture cannot be built
    (an unknown name: only the program can run then).  Raises :class:`ModelLoadError`
    when the folder holds no weights.
    """
    folder = Path(folder)
    buildable = card is None or is_known_architecture(card.architecture)
    script = folder / TORCHSCRIPT_NAME
    if buildable:
        for name in STATE_DICT_NAMES:
            if (folder / name).is_file():
                return folder / name, "eager"
    if script.is_file():
        return script, "torchscript"
    raise ModelLoadError(
        f"{folder}: no weights found; a model folder needs one of "
        f"{', '.join((*STATE_DICT_NAMES, TORCHSCRIPT_NAME))} beside config.json",
        path=folder,
    )


def load_model(
    folder: Path,
    *,
    trust: bool = False,
    trust_store: TrustStore | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Load a model folder (card + weights) into a :class:`LoadedModel` in eval mode.

    ``trust`` allows a TorchScript program and records its hash in ``trust_store``
    (default: the user's store); a hash the store already trusts loads without ``trust``.
    Raises :class:`~inference.models.card.ModelCardError` for a bad card,
    :class:`UntrustedModelError` for an untrusted program, and :class:`ModelLoadError`
    for weights that are unsafe, unreadable or do not fit; all are :class:`ModelError`.
    """
    folder = Path(folder)
    card = load_card(folder)
    path, kind = find_weights(folder, card)
    sha = file_sha256(path)
    if kind == "torchscript":
        store = trust_store if trust_store is not None else TrustStore()
        if trust:
            store.trust(sha, path)
        elif not store.is_trusted(sha):
            raise UntrustedModelError(path, sha)
        module = _load_torchscript(path)
    else:
        module = _build_eager(card, path)
    module.eval()
    import torch

    loaded = LoadedModel(
        card=card,
        module=module,
        weights_path=path,
        sha256=sha,
        kind="torchscript" if kind == "torchscript" else "eager",
        device=torch.device("cpu"),
    )
    return loaded.to(device) if torch.device(device).type != "cpu" else loaded


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without running any code from it.

    ``.safetensors`` through safetensors; anything else through ``torch.load`` with
    ``weights_only=True``.  A checkpoint that wraps the state dict (``{"state_dict": ...}``)
    is unwrapped.  Raises :class:`ModelLoadError` for a pickle that holds code (refused,
    never run), a TorchScript archive, or a file that is not weights.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{path}: not a readable safetensors file ({exc}); "
                "re-export the weights with safetensors.torch.save_file",
                path=path,
            ) from exc
    if _is_torchscript_archive(path):
        raise ModelLoadError(
            f"{path}: refused: this is a TorchScript program, not a state dict; name it "
            f"{TORCHSCRIPT_NAME} and load it only if you trust it (--trust)",
            path=path,
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path}: refused: this file contains code, not just weights, and SlideLens "
            "never runs code from a weights file. Ask for a model.safetensors, or save "
            "model.state_dict() (weights only) from a Python you trust.",
            path=path,
        ) from exc
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: not a PyTorch state dict ({type(exc).__name__}: {exc}); "
            "provide model.safetensors or a state dict saved with torch.save",
            path=path,
        ) from exc
    return _as_state_dict(obj, path)


def _is_torchscript_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ModelLoadError(
            f"{path}: holds no state dict (got {type(obj).__name__}); "
            "save model.state_dict() or use safetensors",
            path=path,
        )
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelLoadError(
            f"{path}: entries that are not tensors: {', '.join(map(str, bad[:_SHOW]))}; "
            "save model.state_dict() only",
            path=path,
        )
    return {str(k): v for k, v in obj.items()}


def _strip_prefixes(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, Any]:
    """Drop a prefix every key shares (``module.``, ``model.``...) until keys match."""
    while not expected.issuperset(state):
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                break
        else:
            break
    return state


def _build_eager(card: ModelCard, path: Path) -> nn.Module:
    try:
        module = build_architecture(card.architecture, card.num_classes, card.task)
    except ArchitectureError as exc:
        raise ModelLoadError(f"{card.config_path}: {exc}", path=card.config_path) from exc
    state = load_state_dict_file(path)
    model_state = module.state_dict()
    state = _strip_prefixes(state, set(model_state))
    missing = [k for k in model_state if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in model_state]
    mismatched = [
        f"{k} is {tuple(state[k].shape)} in the file but {tuple(v.shape)} in the model"
        for k, v in model_state.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({', '.join(missing[:_SHOW])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:_SHOW])})")
        if mismatched:
            parts.append("shape mismatch: " + "; ".join(mismatched[:_SHOW]))
        raise ModelLoadError(
            f"{path}: the weights do not fit architecture {card.architecture!r} with "
            f"{card.num_classes} classes: {', '.join(parts)}. Check 'architecture' and "
            "'num_classes' in config.json.",
            path=path,
        )
    module.load_state_dict(state, strict=False)
    layer = card.cam_target_layer
    if layer and layer not in dict(module.named_modules()):
        raise ModelLoadError(
            f"{card.config_path}: field 'slidelens.cam_target_layer': the model has no "
            f"layer {layer!r}; use a dotted module name such as "
            f"{_suggest_layer(card.architecture)!r}",
            path=card.config_path,
        )
    return module


def _suggest_layer(architecture: str) -> str:
    try:
        return default_cam_layer(architecture)
    except ArchitectureError:
        return "layer4"


def _load_torchscript(path: Path) -> nn.Module:
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
