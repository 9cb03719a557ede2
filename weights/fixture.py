"""Deterministic "fixture weights" (reference formula, version 1).

Real checkpoints cannot be downloaded on the build machines, so the reference cases fill every
state-dict entry from a seed derived from its key. Filling our own networks by the same formula
gives bit-identical weights to the ones the original implementation ran with, which is what makes
the parity cases meaningful. The formula is defined in ``shared/reference/README.md``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

FORMULA_VERSION = 1
_SPECTRAL_POWER_ITERATIONS = 50


def _seeded_normal(seed_text: str, shape: Sequence[int]) -> torch.Tensor:
    seed = zlib.crc32(seed_text.encode("utf-8"))
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def fixture_tensor(key: str, shape: Sequence[int], salt: str, gain: float = 1.0) -> torch.Tensor:
    """Value of one state-dict entry under the generic rules (spectral-norm u/v excluded)."""
    last = key.rsplit(".", 1)[-1]
    if last == "num_batches_tracked":
        return torch.tensor(0, dtype=torch.long)
    t = _seeded_normal(salt + key, shape)
    if last == "running_var":
        return 1.0 + 0.1 * t.abs()
    if last == "running_mean":
        return 0.1 * t
    if len(shape) >= 2:
        return gain * t / math.sqrt(math.prod(shape[1:]))
    if last in ("weight", "gamma"):
        return 1.0 + 0.1 * t
    return 0.1 * t


def _spectral_uv(prefix: str, weight_orig: torch.Tensor, salt: str) -> tuple[torch.Tensor, torch.Tensor]:
    w = weight_orig.reshape(weight_orig.shape[0], -1)
    # The formula seeds u from salt + P + ".weight_u", P being the key without its last component.
    u = F.normalize(_seeded_normal(salt + prefix + ".weight_u", (w.shape[0],)), dim=0, eps=1e-12)
    v = F.normalize(w.t() @ u, dim=0, eps=1e-12)
    for _ in range(_SPECTRAL_POWER_ITERATIONS):
        v = F.normalize(w.t() @ u, dim=0, eps=1e-12)
        u = F.normalize(w @ v, dim=0, eps=1e-12)
    return u, v


def fixture_state_dict(shapes: Mapping[str, Sequence[int]], salt: str, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Fill a whole state dict ``{key: shape}`` by the reference formula, in the given key order.

    Spectral-norm vectors ``P.weight_u``/``P.weight_v`` are derived from ``P.weight_orig`` by 50
    power iterations, as the formula prescribes; weight-norm ``weight_v`` (no ``weight_orig``
    sibling) follows the generic rules.
    """
    out: dict[str, torch.Tensor] = {}
    spectral_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, shape in shapes.items():
        prefix, dot, last = key.rpartition(".")
        orig_key = f"{prefix}{dot}weight_orig"
        if last in ("weight_u", "weight_v") and orig_key in shapes:
            if prefix not in spectral_cache:
                orig = fixture_tensor(orig_key, shapes[orig_key], salt, gain)
                spectral_cache[prefix] = _spectral_uv(prefix, orig, salt)
            u, v = spectral_cache[prefix]
            out[key] = (u if last == "weight_u" else v).reshape(tuple(shape))
        else:
            out[key] = fixture_tensor(key, shape, salt, gain)
    return out


def fixture_like(module: torch.nn.Module, salt: str, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Fixture state dict with the keys and shapes of ``module.state_dict()``."""
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    return fixture_state_dict(shapes, salt, gain)
