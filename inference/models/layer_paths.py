"""A submodule by dotted path, where a number may count from the end (``blocks.-1.norm1``).

Contract: :func:`find_layer` returns the submodule and its canonical name (the name
``named_modules()`` gives it, ``blocks.11.norm1``), or ``None`` when the path does not
lead to a module.  A negative number indexes the children of a numbered container
(``nn.Sequential``, ``nn.ModuleList``, and their counterparts in a
``torch.export.unflatten`` module) in order.  No torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def find_layer(module: nn.Module, path: str) -> tuple[str, nn.Module] | None:
    """``(canonical name, submodule)`` at ``path``, or ``None`` (see the module docstring)."""
    if not path:
        return None
    current = module
    names: list[str] = []
    for part in path.split("."):
        children = dict(current.named_children())
        if part in children:
            names.append(part)
            current = children[part]
            continue
        if not part.startswith("-") or not part[1:].isdigit():
            return None
        keys = sorted((k for k in children if k.isdigit()), key=int)
        index = int(part)
        if not keys or len(keys) != len(children) or index < -len(keys):
            return None
        names.append(keys[index])
        current = children[keys[index]]
    return ".".join(names), current


def declared_layout(module: nn.Module, path: str) -> str | None:
    """``"nhwc"`` when a module on the way to the layer declares channels-last outputs
    (timm's ``output_fmt == "NHWC"``, as its Swin models do), else ``None``."""
    current = module
    for part in ["", *path.split(".")]:
        if part:
            found = find_layer(current, part)
            if found is None:
                return None
            current = found[1]
        if str(getattr(current, "output_fmt", "")).upper() == "NHWC":
            return "nhwc"
    return None
