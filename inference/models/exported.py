"""``torch.export`` programs (``.pt2``): loading, unflattening for CAMs, and exporting.

Trust: a ``.pt2`` archive is mostly a JSON graph of ATen operators plus raw weight
buffers, but ``torch.export.load`` does more than read data.  In torch 2.14 it
(``torch/export/pt2_archive/_package.py``, ``torch/_export/serde/serialize.py``):
unpickles the sample inputs with ``torch.load``, falling back to
``weights_only=False`` when the safe load fails; unpickles weights and constants that
are tensor subclasses and "opaque" objects with ``torch.load(weights_only=False)`` /
``pickle.loads``; parses symbolic shape expressions with ``sympy.sympify``, which
evaluates Python; and resolves node targets by name over the whole ``torch``
namespace, not only ATen operators.  A crafted archive therefore runs code on load
(the tests build one whose sample inputs create a file).  So a ``.pt2`` is a
program, like TorchScript: :mod:`inference.models.loading` loads it only when trusted
(:class:`~inference.models.trust.TrustStore`, by SHA-256).  A program that SlideLens
exported itself (``slidelens models convert``) is trusted when written.

Running: :func:`load_pt2` returns the exported program's flat module (fastest) and
:func:`unflattened` its module hierarchy (``torch.export.unflatten``), where forward
hooks work, so every CAM runs on it and Grad-CAM equals eager's.  :func:`export_program`
exports an eager module, or converts a TorchScript module (``TS2EPConverter``), with a
dynamic batch dimension.  torch is imported inside functions only.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.models.errors import ModelLoadError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.export import ExportedProgram

#: Largest batch an exported program accepts.
MAX_BATCH = 4096


def load_program(path: Path) -> ExportedProgram:
    """``torch.export.load`` of a trusted file; :class:`ModelLoadError` when it is not one."""
    import torch

    try:
        with warnings.catch_warnings(), _quiet_torch_logs():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: not a loadable torch.export program ({type(exc).__name__}: {exc}); "
            "save it with torch.export.save from this torch version or newer",
            path=path,
        ) from exc


def load_pt2(path: Path) -> tuple[ExportedProgram, nn.Module]:
    """The program and its flat module, ready to run (eval semantics are baked in)."""
    program = load_program(path)
    try:
        module: nn.Module = program.module()
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: the torch.export program cannot be run here ({exc})", path=path
        ) from exc
    return program, module


def unflattened(program: ExportedProgram) -> nn.Module:
    """The program with its original module hierarchy (hooks work on its submodules)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module: nn.Module = torch.export.unflatten(program)
    return module


def export_program(module: Any, example: torch.Tensor) -> ExportedProgram:
    """An exported program of ``module`` (eager or TorchScript) for inputs shaped like
    ``example`` with any batch size.  Raises :class:`ModelLoadError` when torch cannot
    export it (the message says why)."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with warnings.catch_warnings(), _quiet_torch_logs():
            warnings.simplefilter("ignore")
            if isinstance(module, torch.jit.ScriptModule):
                from torch._export.converter import TS2EPConverter

                # the converted program's module has eval semantics and no .eval()
                module = TS2EPConverter(module.eval(), (example,)).convert().module()
            else:
                module = module.eval()
            return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:
        raise ModelLoadError(
            f"torch.export cannot export this model ({type(exc).__name__}: {exc})"
        ) from exc


def save_program(program: ExportedProgram, path: Path) -> None:
    """``torch.export.save`` to ``path``."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(program, str(path))


class _quiet_torch_logs:
    """Silence torch.export's warnings logged while loading or exporting."""

    def __enter__(self) -> None:
        self.loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for lg, level in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(level)
