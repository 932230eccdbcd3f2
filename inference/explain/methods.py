"""Explanation methods by name: raw (never min-max scaled) maps for a batch of model inputs.

Hook-based methods are pytorch-grad-cam's classes (``gradcam``, ``gradcam++``,
``xgradcam``, ``layercam``, ``hirescam``, ``eigencam``, ``scorecam``) with one change to its
template method (``BaseCAM.compute_cam_per_layer`` / ``aggregate_multi_layers``): the map
of each input is returned raw (ReLU only) at the target layer's resolution, instead of
being min-max scaled to 0..1 and resized by ``scale_cam_image``.  Score-CAM overrides only
``get_cam_weights``, with our own loop over channel batches so that it reports progress,
stops between batches when cancelled, halves its batch on out-of-memory and runs its
masked forward passes under fp16 autocast on CUDA.  Eigen-CAM keeps the library's
projection but computes it with an economy SVD (the library's full SVD needs
``(H*W)^2`` floats, 20 GB for a 224 x 224 segmentation layer).

Hook-free methods need only gradients or forward passes of the whole model, so they also
explain TorchScript programs (which accept no hooks): input-gradient ``saliency``,
``integrated-gradients`` (from a blank-glass baseline) and ``occlusion`` (blank-glass
windows).  Their maps are at the model's input resolution.

What to explain is a plain callable target, called on one sample's output:
:class:`ClassTarget` for classifiers, :class:`SegmentationTarget` for segmentation
networks.  Hooks and frozen parameters are always restored before a runner returns; no
state is left on the (shared) model.  torch and pytorch_grad_cam are imported inside
functions only; nothing here prints.
"""

from __future__ import annotations

import difflib
import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

#: ``progress(done, total)``: work units done so far of ``total`` (see :class:`ProgressTracker`).
ProgressCallback = Callable[[int, int], None]
#: A target: one sample's model output (logits ``(C,)`` or ``(C, H, W)``) to a scalar tensor.
Target = Callable[["torch.Tensor"], "torch.Tensor"]


class ExplainError(Exception):
    """An explanation cannot be made; ``str(exc)`` names the cause and what to do."""


class MethodUnavailableError(ExplainError):
    """The method cannot explain this model (e.g. a hook-based CAM on TorchScript)."""


class LayerNotFoundError(ExplainError):
    """The target layer is not a module of the model; the message lists nearby names."""


class ExplainCancelled(Exception):
    """The caller set the cancel event; the explanation stopped between two batches."""


# -- the methods -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodSpec:
    """One explanation method.

    ``hook_based``: needs forward hooks on a target layer (not possible on TorchScript).
    ``class_specific``: the map changes with the target class (Eigen-CAM's does not).
    ``slow``: many forward passes per patch; report progress and allow cancel.
    """

    name: str
    label: str
    hook_based: bool
    class_specific: bool
    slow: bool
    description: str


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("gradcam", "Grad-CAM", True, True, False, "mean gradient per channel"),
        MethodSpec("gradcam++", "Grad-CAM++", True, True, False, "higher-order gradient weights"),
        MethodSpec("xgradcam", "XGrad-CAM", True, True, False, "activation-weighted gradients"),
        MethodSpec("layercam", "Layer-CAM", True, True, False, "positive gradients per location"),
        MethodSpec("hirescam", "HiRes-CAM", True, True, False, "gradient times activation"),
        MethodSpec(
            "eigencam", "Eigen-CAM", True, False, False, "first principal component (any class)"
        ),
        MethodSpec(
            "scorecam", "Score-CAM", True, True, True, "score of the input masked by each channel"
        ),
        MethodSpec("saliency", "Saliency", False, True, False, "input gradient magnitude"),
        MethodSpec(
            "integrated-gradients",
            "Integrated gradients",
            False,
            True,
            True,
            "gradients along a path from blank glass",
        ),
        MethodSpec(
            "occlusion",
            "Occlusion",
            False,
            True,
            True,
            "score drop when blank glass hides a window",
        ),
    )
}

HOOK_FREE_METHODS: tuple[str, ...] = tuple(n for n, s in METHODS.items() if not s.hook_based)
HOOK_METHODS: tuple[str, ...] = tuple(n for n, s in METHODS.items() if s.hook_based)

_ALIASES = {"ig": "integrated-gradients", "integratedgradients": "integrated-gradients"}


def method_spec(name: str) -> MethodSpec:
    """The method called ``name`` (case, ``-`` and ``_`` ignored: ``Grad-CAM`` is ``gradcam``).

    Raises :class:`ExplainError` listing the known names.
    """
    key = name.strip().lower()
    if key in METHODS:
        return METHODS[key]
    squashed = key.replace("-", "").replace("_", "").replace(" ", "")
    for known in METHODS:
        if known.replace("-", "") == squashed:
            return METHODS[known]
    if squashed in _ALIASES:
        return METHODS[_ALIASES[squashed]]
    raise ExplainError(f"unknown explanation method {name!r}; known: {', '.join(METHODS)}")


TORCHSCRIPT_REASON = (
    "needs forward hooks on a layer, and TorchScript models accept none "
    "(register_forward_hook is not supported on ScriptModules); "
    f"use {', '.join(HOOK_FREE_METHODS)}"
)


def is_torchscript(module: Any) -> bool:
    """Whether a module is a TorchScript program (which accepts no hooks)."""
    import torch

    return isinstance(module, torch.jit.ScriptModule)


# -- targets -----------------------------------------------------------------------------------


class ClassTarget:
    """The logit of one class in a classifier's output for one sample (shape ``(C,)``)."""

    def __init__(self, index: int) -> None:
        self.index = int(index)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim != 1:
            raise ExplainError(
                f"a class target expects one sample's class scores (C,), got {tuple(output.shape)}"
            )
        return output[self.index]

    def __repr__(self) -> str:
        return f"ClassTarget({self.index})"


class SegmentationTarget:
    """The sum of one class's logits over a mask, for one sample's ``(C, H, W)`` output.

    ``mask`` is a boolean ``(h, w)`` array at the network's input resolution (``None``:
    every pixel); it is resized (nearest) when the output has another resolution.
    """

    def __init__(self, index: int, mask: np.ndarray | None = None) -> None:
        self.index = int(index)
        self.mask = None if mask is None else np.asarray(mask, bool)
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def _mask_for(self, like: torch.Tensor) -> torch.Tensor | None:
        if self.mask is None:
            return None
        import torch
        import torch.nn.functional as F

        key = (tuple(like.shape), str(like.device), like.dtype)
        if key not in self._cache:
            m = torch.from_numpy(self.mask.astype(np.float32))
            if tuple(m.shape) != tuple(like.shape):
                m = F.interpolate(m[None, None], size=tuple(like.shape), mode="nearest")[0, 0]
            self._cache[key] = m.to(device=like.device, dtype=like.dtype)
        return self._cache[key]

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim != 3:
            raise ExplainError(
                "a segmentation target expects one sample's (C, H, W) output, "
                f"got {tuple(output.shape)}"
            )
        channel = output[self.index]
        mask = self._mask_for(channel)
        return channel.sum() if mask is None else (channel * mask).sum()

    def __repr__(self) -> str:
        covered = "all" if self.mask is None else f"{int(self.mask.sum())}"
        return f"SegmentationTarget({self.index}, pixels={covered})"


# -- layers ------------------------------------------------------------------------------------


def resolve_layer(module: nn.Module, name: str, model_name: str = "model") -> nn.Module:
    """The submodule at a dotted path such as ``layer4`` or ``features.2``.

    Raises :class:`LayerNotFoundError` naming the model and listing nearby valid names.
    """
    modules = dict(module.named_modules())
    if name and name in modules:
        return modules[name]
    names = [n for n in modules if n]
    near = difflib.get_close_matches(name, names, n=6, cutoff=0.5)
    if not near:
        prefix = name.rsplit(".", 1)[0] if "." in name else ""
        near = [n for n in names if prefix and n.startswith(prefix + ".")][:6]
    if not near:
        near = [n for n in names if "." not in n][:8]
    raise LayerNotFoundError(
        f"{model_name} has no layer {name!r}; nearby valid names: {', '.join(near)} "
        "(a layer is a dotted module path, as in model.named_modules())"
    )


def guess_channels(layer: nn.Module) -> int | None:
    """The channels a layer most likely outputs, read from its last convolution or batch
    norm (``None`` when it has neither), without running anything."""
    from torch import nn

    for sub in reversed(list(layer.modules())):
        if isinstance(sub, nn.Conv2d | nn.ConvTranspose2d):
            return int(sub.out_channels)
        if isinstance(sub, nn.BatchNorm2d):
            return int(sub.num_features)
    return None


class _Probed(Exception):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


def layer_output_shape(module: nn.Module, layer: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    """The shape of ``layer``'s output for input ``x``, stopping the forward pass right there.

    A temporary forward hook raises once it has seen the output, so only the layers up to
    ``layer`` run; the hook is removed before this returns.
    """
    import torch

    def hook(_m: nn.Module, _i: Any, output: Any) -> None:
        tensor = output[0] if isinstance(output, tuple | list) else output
        raise _Probed(tuple(tensor.shape))

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            module(x)
    except _Probed as probe:
        return probe.shape
    finally:
        handle.remove()
    raise ExplainError("the target layer was not used by the model's forward pass")


# -- progress, cancel, batching ----------------------------------------------------------------


class ProgressTracker:
    """Counts work units and reports them; raises :class:`ExplainCancelled` on request.

    ``callback(done, total)`` runs on the calling thread: first when :meth:`start` gives
    the total, then after every batch, and ``(total, total)`` at :meth:`finish`.
    """

    def __init__(
        self, callback: ProgressCallback | None, cancel: threading.Event | None = None
    ) -> None:
        self.callback = callback
        self.cancel = cancel
        self.done = 0
        self.total = 0

    def check(self) -> None:
        """Raise :class:`ExplainCancelled` when the cancel event is set."""
        if self.cancel is not None and self.cancel.is_set():
            raise ExplainCancelled("explanation cancelled")

    def start(self, total: int) -> None:
        self.total = max(0, int(total))
        self.done = 0
        self._report()

    def advance(self, units: int) -> None:
        self.done = min(self.total, self.done + int(units))
        self._report()

    def finish(self) -> None:
        self.done = self.total
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is torch running out of (GPU or CPU) memory."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


class BatchLoop:
    """Runs ``fn(start, stop)`` over ``range(count)`` in batches, halving on out-of-memory.

    Before each batch it checks for cancel; after each batch it advances ``tracker`` by the
    batch's size (when ``counts``).  ``batch_size`` keeps the halved size for later calls.
    """

    def __init__(
        self, tracker: ProgressTracker, batch_size: int, device: torch.device, *, counts: bool
    ) -> None:
        self.tracker = tracker
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self.counts = counts
        self.halvings = 0

    def run(self, count: int, fn: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """Results of every batch concatenated along axis 0."""
        import torch

        parts: list[np.ndarray] = []
        start = 0
        while start < count:
            self.tracker.check()
            size = min(self.batch_size, count - start)
            try:
                parts.append(fn(start, start + size))
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                if size <= 1:
                    raise ExplainError(
                        f"out of memory on {self.device} even with a batch of one; close other "
                        "programs using it, explain a smaller region, or use the CPU"
                    ) from exc
                self.batch_size = max(1, size // 2)
                self.halvings += 1
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start += size
            if self.counts:
                self.tracker.advance(size)
        return np.concatenate(parts) if len(parts) != 1 else parts[0]


def autocast_for(device: torch.device) -> Any:
    """fp16 autocast on CUDA (for forward passes without gradients), nothing elsewhere."""
    import torch

    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return nullcontext()


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Parameters stop requiring gradients for a block (then are restored).

    Gradients then flow to the input only, and nothing accumulates in the shared model's
    ``.grad`` fields.
    """
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _score_batch(module: Any, inputs: torch.Tensor, targets: Sequence[Target]) -> np.ndarray:
    """``targets[i](module(inputs)[i])`` as float32, without gradients."""
    import torch

    outputs = module(inputs)
    values = torch.stack([t(o).float() for t, o in zip(targets, outputs, strict=True)])
    return values.detach().cpu().numpy().astype(np.float32)


# -- runner ------------------------------------------------------------------------------------


@dataclass
class RunSettings:
    """Knobs shared by the methods.

    ``patch_batch``: inputs per gradient pass; ``masked_batch``: masked inputs per forward
    pass (Score-CAM, occlusion, integrated-gradient steps).  ``baseline``: the input that
    means "blank glass" ``(1, 3, S, S)`` (integrated gradients, occlusion).
    """

    patch_batch: int
    masked_batch: int
    ig_steps: int = 32
    occlusion_grid: int = 7
    baseline: torch.Tensor | None = None


def work_units(spec: MethodSpec, patches: int, channels: int, settings: RunSettings) -> int:
    """Progress units of a method over ``patches`` patches (``channels``: Score-CAM's)."""
    if spec.name == "scorecam":
        return patches * max(1, channels)
    if spec.name == "integrated-gradients":
        return patches * settings.ig_steps
    if spec.name == "occlusion":
        return patches * occlusion_windows(1, settings.occlusion_grid)[1]
    return patches


def occlusion_windows(size: int, grid: int) -> tuple[list[tuple[int, int]], int]:
    """Top-left corners of the occlusion windows on a ``size`` square and their count.

    Windows are ``ceil(size / grid)`` wide at half that stride; the last row and column
    reach the edge.  (With ``size == 1`` only the count, ``(2 * grid - 1) ** 2``, is exact.)
    """
    if size <= 1:
        return [], (2 * grid - 1) ** 2
    win = max(1, math.ceil(size / grid))
    stride = max(1, win // 2)
    starts = list(range(0, size - win + 1, stride))
    if starts[-1] != size - win:
        starts.append(size - win)
    corners = [(y, x) for y in starts for x in starts]
    return corners, len(corners)


class MethodRunner(Protocol):
    """Raw maps for a batch: ``(n, 3, S, S)`` inputs and ``n`` targets to ``(n, h, w)``
    float32 non-negative maps.  ``close`` releases whatever the runner holds (hooks)."""

    def __call__(self, x: torch.Tensor, targets: Sequence[Target]) -> np.ndarray: ...

    def close(self) -> None: ...


@functools.cache
def cam_classes() -> dict[str, type]:
    """pytorch-grad-cam's classes with our raw-map template step (built on first use)."""
    from pytorch_grad_cam import (
        EigenCAM,
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        LayerCAM,
        ScoreCAM,
        XGradCAM,
    )

    class RawMaps:
        """Replaces the template's scaling step: ReLU only, at the layer's resolution.

        ``BaseCAM`` min-max scales every image to 0..1 (``scale_cam_image``), which makes
        neighbouring patches incomparable; the caller normalises a whole region at once.
        """

        activations_and_grads: Any
        target_layers: list[Any]
        get_cam_image: Callable[..., np.ndarray]

        def compute_cam_per_layer(
            self, input_tensor: torch.Tensor, targets: list[Target], eigen_smooth: bool
        ) -> list[np.ndarray]:
            acts = [a.cpu().data.numpy() for a in self.activations_and_grads.activations]
            grads = [g.cpu().data.numpy() for g in self.activations_and_grads.gradients]
            cams = []
            for i, layer in enumerate(self.target_layers):
                a = acts[i] if i < len(acts) else None
                g = grads[i] if i < len(grads) else None
                cam = self.get_cam_image(input_tensor, layer, targets, a, g, eigen_smooth)
                cams.append(np.maximum(np.nan_to_num(cam), 0).astype(np.float32))
            return cams

        def aggregate_multi_layers(self, cams: list[np.ndarray]) -> np.ndarray:
            return np.mean(np.stack(cams, axis=1), axis=1)

    class LoopScoreCAM(RawMaps, ScoreCAM):
        """Score-CAM whose channel loop reports progress, cancels, and adapts its batch."""

        loop: BatchLoop

        def get_cam_weights(
            self,
            input_tensor: torch.Tensor,
            target_layer: Any,
            targets: list[Target],
            activations: np.ndarray,
            grads: Any,
        ) -> np.ndarray:
            return score_cam_weights(
                self.model,
                input_tensor,
                targets,
                activations,
                self.loop,
                after_batch=self.activations_and_grads.activations.clear,
            )

    class LeanEigenCAM(RawMaps, EigenCAM):
        """Eigen-CAM whose projection uses an economy SVD.

        The library's ``get_2d_projection`` asks for the full ``U`` of an
        ``(H*W) x C`` matrix, ``(H*W)^2`` floats: 20 GB for a 224 x 224 layer.
        """

        def get_cam_image(
            self,
            input_tensor: torch.Tensor,
            target_layer: Any,
            targets: list[Target],
            activations: np.ndarray,
            grads: Any,
            eigen_smooth: bool,
        ) -> np.ndarray:
            return first_component_projection(activations)

    def raw(cls: type) -> type:
        return type(f"Raw{cls.__name__}", (RawMaps, cls), {})

    return {
        "gradcam": raw(GradCAM),
        "gradcam++": raw(GradCAMPlusPlus),
        "xgradcam": raw(XGradCAM),
        "layercam": raw(LayerCAM),
        "hirescam": raw(HiResCAM),
        "eigencam": LeanEigenCAM,
        "scorecam": LoopScoreCAM,
    }


def first_component_projection(activations: np.ndarray) -> np.ndarray:
    """Eigen-CAM's map: each sample's centred activations ``(H*W, C)`` projected on their
    first right singular vector, ``(n, H, W)`` float32: pytorch-grad-cam's
    ``get_2d_projection`` (same LAPACK call, so the same sign), with an economy SVD.

    NumPy's BLAS runs on one thread here: its threads next to torch's busy OpenMP
    threads made each SVD some 30 times slower on a two-core machine.
    """
    from threadpoolctl import threadpool_limits  # a dependency of pytorch-grad-cam's sklearn

    acts = np.nan_to_num(np.asarray(activations, np.float32))
    out = []
    with threadpool_limits(limits=1, user_api="blas"):
        for sample in acts:
            flat = sample.reshape(sample.shape[0], -1).T
            flat = flat - flat.mean(axis=0)
            _, _, vt = np.linalg.svd(flat, full_matrices=False)
            out.append((flat @ vt[0]).reshape(sample.shape[1:]))
    return np.asarray(out, np.float32)


def score_cam_weights(
    module: Any,
    x: torch.Tensor,
    targets: Sequence[Target],
    activations: np.ndarray,
    loop: BatchLoop,
    *,
    after_batch: Callable[[], None] | None = None,
) -> np.ndarray:
    """Score-CAM channel weights ``(n, C)``: softmax over channels of the target's score
    on the input masked by each channel's activation map (upsampled, scaled to 0..1).

    Masked inputs are made batch by batch (memory stays bounded); every batch is one
    ``loop`` step (progress, cancel, halving on out-of-memory); fp16 autocast on CUDA.
    """
    import torch
    import torch.nn.functional as F

    acts = torch.from_numpy(np.ascontiguousarray(activations)).to(x.device, torch.float32)
    n, c = int(acts.shape[0]), int(acts.shape[1])
    flat = acts.flatten(2)
    # bilinear upsampling with aligned corners keeps each map's extremes
    lows, highs = flat.min(dim=-1).values, flat.max(dim=-1).values
    size = tuple(x.shape[-2:])
    weights = np.zeros((n, c), np.float32)
    for i in range(n):
        sample = x[i : i + 1].detach()

        def batch(c0: int, c1: int, i: int = i, sample: torch.Tensor = sample) -> np.ndarray:
            with torch.no_grad(), autocast_for(x.device):
                up = F.interpolate(
                    acts[i : i + 1, c0:c1], size=size, mode="bilinear", align_corners=True
                )[0]
                lo = lows[i, c0:c1, None, None]
                hi = highs[i, c0:c1, None, None]
                masks = (up - lo) / (hi - lo + 1e-8)
                masked = sample * masks[:, None]
                scores = _score_batch(module, masked, [targets[i]] * (c1 - c0))
            if after_batch is not None:
                after_batch()
            return scores

        scores = loop.run(c, batch)
        weights[i] = torch.softmax(torch.from_numpy(scores), dim=0).numpy()
    return weights


class HookCamRunner:
    """A pytorch-grad-cam method on one layer; hooks live from construction to :meth:`close`."""

    def __init__(
        self,
        spec: MethodSpec,
        module: nn.Module,
        layer: nn.Module,
        patch_loop: BatchLoop,
        masked_loop: BatchLoop,
    ) -> None:
        cls = cam_classes()[spec.name]
        self.spec = spec
        self.module = module
        self.patch_loop = patch_loop
        self.cam: Any = cls(model=module, target_layers=[layer])
        if spec.name == "scorecam":
            self.cam.loop = masked_loop

    def __call__(self, x: torch.Tensor, targets: Sequence[Target]) -> np.ndarray:
        import torch

        gradients = self.spec.name not in ("eigencam", "scorecam")

        def one(i0: int, i1: int) -> np.ndarray:
            xi = x[i0:i1].detach()
            if gradients:
                with torch.enable_grad():
                    maps = self.cam(xi.requires_grad_(True), list(targets[i0:i1]))
            else:
                with torch.no_grad():
                    maps = self.cam(xi, list(targets[i0:i1]))
            self.cam.outputs = None  # drop the graph kept for retain_graph
            self.cam.activations_and_grads.clear()
            return np.asarray(maps, np.float32)

        with frozen_parameters(self.module):
            if self.spec.name == "scorecam":  # progress counts masked passes, one patch at a time
                return np.concatenate([one(i, i + 1) for i in range(len(x))])
            return self.patch_loop.run(len(x), one)

    def close(self) -> None:
        self.cam.activations_and_grads.release()
        self.cam.outputs = None


class HookFreeRunner:
    """Saliency, integrated gradients or occlusion: whole-model passes only, no hooks."""

    def __init__(
        self,
        spec: MethodSpec,
        module: Any,
        settings: RunSettings,
        patch_loop: BatchLoop,
        masked_loop: BatchLoop,
    ) -> None:
        if spec.name != "saliency" and settings.baseline is None:
            raise ValueError(f"{spec.name} needs a baseline input")
        self.spec = spec
        self.module = module
        self.settings = settings
        self.patch_loop = patch_loop
        self.masked_loop = masked_loop

    def __call__(self, x: torch.Tensor, targets: Sequence[Target]) -> np.ndarray:
        with frozen_parameters(self.module):
            if self.spec.name == "saliency":
                return self.patch_loop.run(
                    len(x), lambda i0, i1: self._saliency(x, targets, i0, i1)
                )
            one = self._integrated if self.spec.name == "integrated-gradients" else self._occlusion
            return np.stack([one(x[i : i + 1], targets[i]) for i in range(len(x))])

    def _saliency(self, x: torch.Tensor, targets: Sequence[Target], i0: int, i1: int) -> np.ndarray:
        import torch

        with torch.enable_grad():
            xi = x[i0:i1].detach().clone().requires_grad_(True)
            out = self.module(xi)
            loss = torch.stack([t(o) for t, o in zip(targets[i0:i1], out, strict=True)]).sum()
            (grad,) = torch.autograd.grad(loss, xi)
        return grad.abs().amax(dim=1).cpu().numpy().astype(np.float32)

    def _integrated(self, x: torch.Tensor, target: Target) -> np.ndarray:
        """Midpoint Riemann sum of gradients from the baseline to ``x``; map =
        positive part of the channel-summed attribution ``(x - b) * mean gradient``."""
        import torch

        base = self.settings.baseline
        assert base is not None
        steps = self.settings.ig_steps
        alphas = (torch.arange(steps, dtype=torch.float32, device=x.device) + 0.5) / steps
        delta = (x - base).detach()

        def batch(s0: int, s1: int) -> np.ndarray:
            with torch.enable_grad():
                a = alphas[s0:s1, None, None, None]
                xs = (base + a * delta).detach().requires_grad_(True)
                out = self.module(xs)
                loss = torch.stack([target(o) for o in out]).sum()
                (grad,) = torch.autograd.grad(loss, xs)
            return grad.sum(dim=0, keepdim=True).cpu().numpy()

        mean_grad = self.masked_loop.run(steps, batch).sum(axis=0) / steps
        attribution = (delta[0].cpu().numpy() * mean_grad).sum(axis=0)
        return np.maximum(attribution, 0).astype(np.float32)

    def _occlusion(self, x: torch.Tensor, target: Target) -> np.ndarray:
        """Mean over covering windows of the (positive) drop of the target's score when
        the window shows blank glass."""
        import torch

        base = self.settings.baseline
        assert base is not None
        size = int(x.shape[-1])
        corners, count = occlusion_windows(size, self.settings.occlusion_grid)
        win = max(1, math.ceil(size / self.settings.occlusion_grid))
        with torch.no_grad(), autocast_for(x.device):
            reference = float(_score_batch(self.module, x, [target])[0])

        def batch(k0: int, k1: int) -> np.ndarray:
            with torch.no_grad(), autocast_for(x.device):
                xs = x.detach().repeat(k1 - k0, 1, 1, 1)
                for j, (y, xx) in enumerate(corners[k0:k1]):
                    xs[j, :, y : y + win, xx : xx + win] = base[0, :, y : y + win, xx : xx + win]
                return _score_batch(self.module, xs, [target] * (k1 - k0))

        drops = np.maximum(reference - self.masked_loop.run(count, batch), 0.0)
        total = np.zeros((size, size), np.float64)
        cover = np.zeros((size, size), np.float64)
        for (y, xx), drop in zip(corners, drops, strict=True):
            total[y : y + win, xx : xx + win] += drop
            cover[y : y + win, xx : xx + win] += 1.0
        return (total / np.maximum(cover, 1.0)).astype(np.float32)

    def close(self) -> None:
        pass


def make_runner(
    spec: MethodSpec,
    module: Any,
    layer: nn.Module | None,
    settings: RunSettings,
    tracker: ProgressTracker,
    device: torch.device,
) -> MethodRunner:
    """The runner for a method.  Progress counts patches, except for Score-CAM (masked
    passes), integrated gradients (path steps) and occlusion (windows).  Close it."""
    counts_patches = spec.name not in ("scorecam", "integrated-gradients", "occlusion")
    patch_loop = BatchLoop(tracker, settings.patch_batch, device, counts=counts_patches)
    masked_loop = BatchLoop(tracker, settings.masked_batch, device, counts=not counts_patches)
    if spec.hook_based:
        if is_torchscript(module):
            raise MethodUnavailableError(f"{spec.label} {TORCHSCRIPT_REASON}")
        if layer is None:
            raise ExplainError(f"{spec.label} needs a target layer")
        return HookCamRunner(spec, module, layer, patch_loop, masked_loop)
    return HookFreeRunner(spec, module, settings, patch_loop, masked_loop)
