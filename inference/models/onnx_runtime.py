"""ONNX models run by ONNX Runtime, behind the same module contract as any torch model.

Trust: an ``.onnx`` file is a protobuf graph of ONNX operators and tensors.  ONNX
Runtime parses it with no pickle and no Python: it can only run the operators built
into the runtime (custom operator libraries load only when the caller registers them,
which SlideLens never does), and it refuses external-data files that lie outside the
model's folder.  So an ONNX model is data, like safetensors weights: it loads without
the trust a TorchScript or ``torch.export`` program needs.

Contract: :func:`onnx_module` returns a :class:`torch.nn.Module` without parameters
whose ``forward`` takes a float ``(N, 3, S, S)`` tensor and returns the logits as a
float32 tensor on the input's device, so the engine's forward step runs it as it runs
any module.  It keeps one ``InferenceSession`` per torch thread count (made on first
use with that many intra-op threads), so the engine's CPU lanes, one torch thread each,
do not oversubscribe the cores.  On ``cuda`` it uses ONNX Runtime's CUDA provider
(``pip install onnxruntime-gpu`` instead of ``onnxruntime``); inputs pass through host
memory.  It has no gradients and no layers to hook: explanations use the forward-only
methods, or the eager form of the same folder.  :func:`export_onnx` writes an exported
program as ONNX.  torch and onnxruntime are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.models.errors import ModelLoadError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.export import ExportedProgram

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def onnxruntime_version() -> str:
    """The installed ONNX Runtime's version ("not installed" without it)."""
    from importlib import metadata

    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def providers_for(device: str) -> list[str]:
    """ONNX Runtime providers for a torch device string; raises :class:`ModelLoadError`
    when ``cuda`` is asked for and this ONNX Runtime has no CUDA provider."""
    import onnxruntime

    if not device.startswith("cuda"):
        return [_CPU]
    if _CUDA not in onnxruntime.get_available_providers():
        raise ModelLoadError(
            "ONNX Runtime here runs on the CPU only; for CUDA install onnxruntime-gpu "
            "(pip install onnxruntime-gpu) or run on the CPU"
        )
    return [_CUDA, _CPU]


def _session(path: Path, providers: list[str], threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # idle workers yield at once instead of spinning, so they leave the cores to the
    # slide readers and the viewer
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)


def onnx_module(path: Path, device: str = "cpu") -> nn.Module:
    """The ONNX model at ``path`` as a module (see the module docstring).

    Raises :class:`ModelLoadError` naming the file when ONNX Runtime cannot load it or
    its input is not one float image batch.
    """
    import torch

    providers = providers_for(device)
    try:
        first = _session(path, providers, torch.get_num_threads())
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: ONNX Runtime cannot load this model ({type(exc).__name__}: {exc})",
            path=path,
        ) from exc
    inputs = first.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
        found = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        raise ModelLoadError(
            f"{path}: SlideLens feeds one float image batch (N, 3, H, W); this model "
            f"takes {found or 'no input'}",
            path=path,
        )
    return _module_class()(path, providers, first)


@functools.cache
def _module_class() -> type[nn.Module]:
    """The wrapper's class, defined on first use so torch loads lazily."""
    import numpy as np
    import torch
    from torch import nn

    class OnnxModule(nn.Module):
        """An ONNX Runtime session as a parameter-free module: tensor in, logits out."""

        def __init__(self, path: Path, providers: list[str], first: Any) -> None:
            super().__init__()
            self.path = Path(path)
            self.providers = providers
            self.input_name = str(first.get_inputs()[0].name)
            self._sessions: dict[int, Any] = {torch.get_num_threads(): first}
            self._lock = threading.Lock()

        def session(self) -> Any:
            """The session for the calling thread's torch thread count (made once)."""
            threads = torch.get_num_threads()
            with self._lock:
                if threads not in self._sessions:
                    self._sessions[threads] = _session(self.path, self.providers, threads)
                return self._sessions[threads]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feed = np.ascontiguousarray(x.detach().float().cpu().numpy())
            out = self.session().run(None, {self.input_name: feed})[0]
            return torch.from_numpy(np.asarray(out, np.float32)).to(x.device)

    return OnnxModule


def export_onnx(program: ExportedProgram, example: torch.Tensor, path: Path) -> None:
    """Write an exported program as ONNX (``torch.onnx.export``, dynamo exporter; the
    program's dynamic batch dimension stays dynamic).  Raises :class:`ModelLoadError`
    when the exporter fails."""
    import torch

    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            exported = torch.onnx.export(program, (example,), dynamo=True, verbose=False)
            assert exported is not None
            exported.save(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: the ONNX exporter failed ({type(exc).__name__}: {exc})", path=path
        ) from exc
