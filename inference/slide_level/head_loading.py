"""Loading a learned slide-level head safely: weights are data, TorchScript is a program.

Contract: :func:`load_head` reads a head's weights file and returns a :class:`LoadedHead`
in eval mode on the CPU.  A ``.safetensors`` file (preferred) or a state dict read with
``torch.load(weights_only=True)`` (a pickle that would run code is refused, never
retried) is fitted to the head :func:`~inference.slide_level.heads.build_head` builds
from its sizes (:func:`~inference.models.weights.fit_state_dict`: exactly, or an error
listing what does not fit).  ``torchscript_model.pt`` (WSInfer-MIL's form) is a program:
it loads only when trusted (``trust=True`` records its SHA-256 in the
:class:`~inference.models.trust.TrustStore`; a hash trusted before loads without it),
otherwise :class:`~inference.models.errors.UntrustedModelError`.  Every failure is a
:class:`~inference.models.card.ModelError` naming the file.  torch is imported inside
functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.models.card import TORCHSCRIPT_NAME
from inference.models.errors import ModelLoadError, UntrustedModelError
from inference.models.trust import TrustStore, file_sha256
from inference.models.weights import fit_state_dict, is_torchscript_archive, load_state_dict_file
from inference.slide_level.heads import HeadShapeError, build_head

if TYPE_CHECKING:
    from torch import nn


@dataclass
class LoadedHead:
    """A head ready to run: its module (eval mode, CPU), form, file and SHA-256."""

    module: nn.Module
    kind: str  # "eager" or "torchscript"
    path: Path
    sha256: str


def load_head(
    head_type: str,
    path: Path,
    *,
    trust: bool = False,
    trust_store: TrustStore | None = None,
) -> LoadedHead:
    """Load the ``head_type`` head (``abmil``, ``clam``, ``conv_pool``) from ``path``
    (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: the head's weights file is missing", path=path)
    sha = file_sha256(path)
    if path.name == TORCHSCRIPT_NAME or (
        path.suffix != ".safetensors" and is_torchscript_archive(path) and trust
    ):
        return _load_program(path, sha, trust, trust_store)
    state = load_state_dict_file(path)  # refuses pickles that hold code and TorchScript
    try:
        module = build_head(head_type, state)
    except HeadShapeError as exc:
        raise ModelLoadError(
            f"{path}: not the weights of a {head_type} head ({exc}); check 'type'",
            path=path,
        ) from exc
    fit_state_dict(
        module,
        state,
        path,
        f"a {head_type} head",
        "Save the head's state_dict() with safetensors.torch.save_file.",
    )
    module.eval()
    return LoadedHead(module, "eager", path, sha)


def _load_program(path: Path, sha: str, trust: bool, trust_store: TrustStore | None) -> LoadedHead:
    import warnings

    import torch

    store = trust_store if trust_store is not None else TrustStore()
    if trust:
        store.trust(sha, path)
    elif not store.is_trusted(sha):
        raise UntrustedModelError(path, sha, "torchscript")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module: Any = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: not a loadable TorchScript program ({type(exc).__name__}: {exc})",
            path=path,
        ) from exc
    module.eval()
    return LoadedHead(module, "torchscript", path, sha)
