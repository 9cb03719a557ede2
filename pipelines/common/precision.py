"""Numeric precision of every network: one policy per network, as data, and the one way to apply it.

Two modes, chosen per call (UI "Advanced", CLI ``--precision``, API ``precision=``):

- ``exact``: float32 everywhere, the originals' numbers (the parity runner always uses it);
- ``auto`` (the default): the layers a network's policy allows run in bfloat16 on CPUs with native
  bf16 (AVX512_BF16 or AMX), in bf16/fp16 autocast on CUDA; everything else, and every other
  device, stays float32. Where a network's policy allows nothing, ``auto`` *is* ``exact``.

A policy (:class:`NetworkPolicy`) names what must stay float32 inside a network that otherwise
runs in low precision ("fp32 islands": normalisations, softmax/attention blocks, sampling grids,
the TPS solve...). On the CPU the low-precision copy of a network keeps its convolution weights in
bfloat16 (measured faster than autocast alone, which re-casts every weight at every call) and its
islands in float32; it is made once per network and kept as long as the float32 network lives.
The policies were chosen from measurements (``python -m bench.bench_precision``; numbers in the
README's performance section): each records the deviation it was measured at.

Usage in a pipeline::

    plan = precision.plan("deoldify.generator", device, mode)   # mode None = current default
    net = plan.prepare(network)                                   # the module to call
    with plan.autocast():
        y = net(plan.input(x)).float()
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODES = ("auto", "exact")
DEFAULT_MODE = "auto"
ENV_VAR = "NOSTALGIA_PRECISION"

# Module classes that always stay float32 inside a low-precision network: their statistics (mean,
# variance over a whole map) and running buffers lose digits in bfloat16.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.InstanceNorm2d,
    nn.GroupNorm,
    nn.LayerNorm,
)


def runs_mixed(module: nn.Module) -> bool:
    """A BatchNorm at inference with running statistics: it computes no statistics, only a
    per-channel affine map from its float32 buffers. PyTorch's CPU and CUDA kernels take a bf16/fp16
    input with float32 parameters and compute in float32, so such a norm keeps its float32
    parameters without becoming a float32 island (an island costs two casts of the whole map:
    measured 20 % of DeOldify's bf16 time)."""
    return (
        isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
        and not module.training
        and module.track_running_stats
        and module.running_mean is not None
    )


@dataclass(frozen=True)
class NetworkPolicy:
    """What may run in low precision inside one network, and why (the measurement behind it)."""

    name: str
    low_precision: bool  # may ``auto`` run it in bf16/fp16 at all?
    fp32_classes: tuple[str, ...] = ()  # extra module class names that stay float32 (besides norms)
    fp32_modules: tuple[str, ...] = ()  # dotted submodule names that stay float32
    channels_last: bool = True  # NHWC for the low-precision copy (oneDNN/cuDNN run it faster)
    measured: str = ""  # the deviation/speed that chose this policy (auto vs exact)


# The policies. ``measured``: auto vs exact on the reference inputs and example photos, fixture
# weights, AVX512_BF16/AMX CPU; see bench/bench_precision.py and the README for the full table.
POLICIES: dict[str, NetworkPolicy] = {
    p.name: p
    for p in (
        NetworkPolicy(
            "bopbtl.scratch_detector",
            False,
            measured="UNet 2.3x faster in bf16, but 0.016 % of the mask's pixels flipped on the reference scratch "
            "photo, and the masked attention of the scratch mapping turned that into 13.4 dB (max 252) after "
            "stage 1; the detector is ~1 s of a ~70 s scratch restore: float32",
        ),
        NetworkPolicy(
            "bopbtl.vae",
            False,
            measured="64x96 photo, fixture weights: VAE + mapping bf16 28.1 dB (mean 7.5 levels); VAE float32, "
            "mapping bf16 37.4 dB (mean 2.5): the VAEs are 10 % of stage 1's time, kept float32",
        ),
        NetworkPolicy(
            "bopbtl.mapping_quality",
            True,
            measured="residual blocks of 3x3 convolutions, 90 % of stage 1's time; 37.4 dB with float32 VAEs",
        ),
        NetworkPolicy(
            "bopbtl.mapping_scratch",
            False,
            fp32_classes=("NonLocalBlockWithMask", "PatchAttention"),
            measured="residual blocks bf16 with the masked non-local / patch attention float32: 26.8 dB, max 193, "
            "mean 5.8 on the reference scratch photo (the same mask for both); float32",
        ),
        NetworkPolicy(
            "bopbtl.face_enhancer",
            True,
            measured="SPADE: the parameter-free norm stays float32, the modulation convolutions run bf16",
        ),
        NetworkPolicy(
            "deoldify.generator",
            True,
            fp32_classes=("SelfAttention",),
            measured="ResNet encoder + U-Net decoder; self-attention (softmax over all positions) float32",
        ),
        NetworkPolicy(
            "tpsmm.kp_detector",
            False,
            measured="keypoints feed the TPS solve, whose error grows: float32",
        ),
        NetworkPolicy(
            "tpsmm.dense_motion",
            False,
            measured="softmax mixture of TPS warps and sampling grids: bf16 moved frames by up to 122 levels",
        ),
        NetworkPolicy(
            "tpsmm.inpainting",
            True,
            measured="encoder/decoder convolutions; the grid_sample warps stay float32 (autocast fp32 op)",
        ),
        NetworkPolicy("tpsmm.avd", False, measured="tiny MLP on keypoints: nothing to gain"),
        NetworkPolicy(
            "edn.generator",
            False,
            measured="each frame is fed back into the next: bf16 gave 28.7 dB on frame 1, 15.5 on frame 2, "
            "12.4 on frame 3 (64x128, fixture weights); error grows, so float32",
        ),
        NetworkPolicy(
            "edn.face_generator",
            False,
            measured="its residual is part of the fed-back frame: 50.7 dB on frame 1, 26.5 on 2, 14.7 on 3; float32",
        ),
        NetworkPolicy(
            "openpose.body",
            True,
            measured="VGG + 6 stages of 7x7 convolutions: maps within 0.0018 (x255: max 0, 70 dB) on 96x96",
        ),
        NetworkPolicy("openpose.hand", True, measured="same layers as the body network (VGG + 6 stages)"),
    )
}

# ----------------------------------------------------------------------------- the mode


_MODE: contextvars.ContextVar[str | None] = contextvars.ContextVar("nostalgia_precision", default=None)


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a ValueError that lists them."""
    if mode not in MODES:
        raise ValueError(f"precision must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def current_mode() -> str:
    """The mode of :func:`using` if one is active, else ``NOSTALGIA_PRECISION``, else ``auto``."""
    return _MODE.get() or check_mode(os.environ.get(ENV_VAR) or DEFAULT_MODE)


@contextlib.contextmanager
def using(mode: str | None) -> Iterator[str]:
    """Run the enclosed pipeline calls in ``mode`` (None: leave the current mode)."""
    if mode is None:
        yield current_mode()
        return
    token = _MODE.set(check_mode(mode))
    try:
        yield mode
    finally:
        _MODE.reset(token)


# ----------------------------------------------------------------------------- the hardware


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16).

    Without it bf16 is emulated and slower than float32, so ``auto`` stays float32 there.
    ``NOSTALGIA_CPU_BF16=0/1`` overrides the detection (tests, odd virtual machines).
    """
    forced = os.environ.get("NOSTALGIA_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return _detect_cpu_bf16()


@functools.cache
def _detect_cpu_bf16() -> bool:
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
        if flags:
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)  # other OSes: ask oneDNN
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def low_dtype(device: torch.device) -> torch.dtype | None:
    """The low-precision dtype ``auto`` uses on ``device``, or None where float32 is best."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """How one network runs in one call: ``dtype`` None means float32 (exact)."""

    policy: NetworkPolicy
    device: torch.device
    dtype: torch.dtype | None
    mode: str

    @property
    def is_low(self) -> bool:
        return self.dtype is not None

    @property
    def channels_last(self) -> bool:
        return self.is_low and self.policy.channels_last

    def prepare(self, network: nn.Module) -> nn.Module:
        """The module to call: ``network`` itself (float32), or its low-precision copy."""
        if not self.is_low:
            return network
        return _lowered(network, self.policy, self.dtype, self.device)  # type: ignore[arg-type]

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the prepared network prefers."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the plan's dtype (a no-op for float32)."""
        if not self.is_low:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def runner(self, network: nn.Module) -> Callable[..., Any]:
        """``network`` as a function under this plan: float32 tensors in, float32 tensors out."""
        if not self.is_low:
            return network
        prepared = self.prepare(network)

        def run(*args: Any, **kwargs: Any) -> Any:
            with self.autocast():
                return to_float32(prepared(*(self.input(a) if isinstance(a, torch.Tensor) else a for a in args), **kwargs))

        return run


def plan(network: str, device: torch.device, mode: str | None = None) -> Plan:
    """The plan for ``network`` (a key of :data:`POLICIES`) on ``device`` in ``mode``."""
    policy = POLICIES[network]
    mode = check_mode(mode) if mode is not None else current_mode()
    dtype = low_dtype(device) if mode == "auto" and policy.low_precision else None
    return Plan(policy, device, dtype, mode)


def describe(device: torch.device, mode: str | None = None) -> str:
    """One line for logs and the UI: what ``mode`` means on ``device``."""
    mode = mode or current_mode()
    dtype = low_dtype(device)
    if mode == "exact" or dtype is None:
        return f"{mode}: float32 on {device.type}"
    return f"auto: {str(dtype).removeprefix('torch.')} where each network's policy allows it, float32 elsewhere"


# ----------------------------------------------------------------------------- low-precision copies


def _in_island(name: str, islands: list[str]) -> bool:
    return any(name == i or name.startswith(i + ".") for i in islands)


def island_names(network: nn.Module, policy: NetworkPolicy) -> list[str]:
    """Dotted names of the submodules that stay float32 under ``policy`` (outermost only)."""
    found: list[str] = []
    for name, module in network.named_modules():
        if not name or _in_island(name, found):
            continue
        if (
            (isinstance(module, NORM_TYPES) and not runs_mixed(module))
            or type(module).__name__ in policy.fp32_classes
            or name in policy.fp32_modules
        ):
            found.append(name)
    return found


def to_float32(value: Any) -> Any:
    """Tensors (also inside lists, tuples, dicts) as float32; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    return value


def _keep_float32(module: nn.Module, device_type: str) -> None:
    """Make ``module`` compute in float32 whatever autocast and its inputs say."""
    inner = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, enabled=False):
            return inner(*to_float32(args), **to_float32(kwargs))

    module.forward = forward  # type: ignore[method-assign]


def make_low_precision(network: nn.Module, policy: NetworkPolicy, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """A copy of ``network`` for ``policy``: float32 islands, everything else in ``dtype`` on CPUs
    (weights stored low: no cast per call), float32 weights under autocast on GPUs."""
    lowered = copy.deepcopy(network)
    islands = island_names(lowered, policy)
    if device.type == "cpu":
        for name, module in lowered.named_modules():
            if _in_island(name, islands) or runs_mixed(module):
                continue
            for key, tensor in list(module._parameters.items()) + list(module._buffers.items()):
                if tensor is not None and tensor.is_floating_point():
                    low = tensor.detach().to(dtype)
                    if key in module._parameters:
                        module._parameters[key] = nn.Parameter(low, requires_grad=False)
                    else:
                        module._buffers[key] = low
    if policy.channels_last:
        lowered.to(memory_format=torch.channels_last)
    for name in islands:
        _keep_float32(lowered.get_submodule(name), device.type)
    return lowered.eval().requires_grad_(False)


_LOWERED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, nn.Module]] = weakref.WeakKeyDictionary()
_LOWERED_LOCK = threading.Lock()


def _lowered(network: nn.Module, policy: NetworkPolicy, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """:func:`make_low_precision` once per (network, policy, dtype); freed with the network."""
    key = (policy.name, dtype, device.type)
    with _LOWERED_LOCK:
        copies = _LOWERED.setdefault(network, {})
        made = key not in copies
        if made:
            copies[key] = make_low_precision(network, policy, dtype, device)
        lowered = copies[key]
    if made:  # the copy counts against the model cache's byte budget, as the network it was made of
        from pipelines.common.device import MODELS

        MODELS.trim(keep=network)
    return lowered


def copies_bytes(network: object) -> int:
    """Bytes held by the low-precision copies of ``network`` (0 when none was made)."""
    from pipelines.common.device import module_bytes

    if not isinstance(network, nn.Module):
        return 0
    with _LOWERED_LOCK:
        copies = list(_LOWERED.get(network, {}).values())
    return sum(module_bytes(c) for c in copies)


@dataclass
class Deviation:
    """How far an ``auto`` image is from its ``exact`` twin, in 0..255 levels."""

    max_abs: float
    mean_abs: float
    psnr_db: float
    shape: tuple[int, ...] = field(default=())

    def __str__(self) -> str:
        return f"max {self.max_abs:.0f}, mean {self.mean_abs:.2f}, PSNR {self.psnr_db:.1f} dB"


def deviation(auto: Any, exact: Any) -> Deviation:
    """Max/mean absolute difference and PSNR (peak 255) of two uint8 images or frame stacks."""
    import numpy as np

    a, e = np.asarray(auto, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"auto {a.shape} and exact {e.shape} differ in shape")
    diff = np.abs(a - e)
    mse = float((diff**2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    return Deviation(float(diff.max()), float(diff.mean()), psnr, a.shape)
