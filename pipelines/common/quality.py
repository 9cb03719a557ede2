"""Image quality measures: SSIM (always available) and LPIPS (when its weights are cached).

SSIM is Wang et al. 2004 as scikit-image computes it (``structural_similarity``): local means,
variances and covariance under a window, ``((2 mx my + C1)(2 sxy + C2)) / ((mx^2 + my^2 + C1)(sx^2
+ sy^2 + C2))``, averaged over the pixels whose window lies fully inside the image and over the
channels. The default is the paper's Gaussian window (sigma 1.5, population covariance), which
is ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``;
``gaussian=False`` is scikit-image's default 7x7 uniform window with sample covariance.

:func:`measure` is what training and the benchmark report: SSIM and, if the LPIPS weights are
present, LPIPS, on generated vs real frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GAUSSIAN_SIGMA = 1.5
GAUSSIAN_TRUNCATE = 3.5  # scipy's gaussian_filter default, used by scikit-image
UNIFORM_WINDOW = 7


def _window_1d(gaussian: bool, sigma: float, win_size: int, dtype: torch.dtype) -> torch.Tensor:
    if gaussian:
        radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
        x = torch.arange(-radius, radius + 1, dtype=torch.float64)
        w = torch.exp(-0.5 * (x / sigma) ** 2)
    else:
        w = torch.ones(win_size, dtype=torch.float64)
    return (w / w.sum()).to(dtype)


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable filter of each channel, 'valid' region only (the pixels SSIM averages)."""
    c = x.shape[1]
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    gaussian: bool = True,
    sigma: float = GAUSSIAN_SIGMA,
    win_size: int = UNIFORM_WINDOW,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM of each image pair: ``x``, ``y`` are ``(N, C, H, W)`` (or ``(C, H, W)``) in the
    same units; ``data_range`` is their value span (1 for 0..1 images, 255 for uint8). SSIM is
    not shift-invariant: bring -1..1 images to 0..1 first (as :func:`measure` does), so the
    numbers are those of the usual 8-bit images. Returns ``(N,)`` (a scalar for unbatched input);
    computed in float64 (float32 on MPS)."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    unbatched = x.dim() == 3
    if unbatched:
        x, y = x[None], y[None]
    dtype = torch.float32 if x.device.type == "mps" else torch.float64  # MPS has no float64
    x, y = x.to(dtype), y.to(dtype)
    window = _window_1d(gaussian, sigma, win_size, dtype).to(x.device)
    if min(x.shape[-2:]) < window.numel():
        raise ValueError(f"SSIM needs images of at least {window.numel()}x{window.numel()} pixels, got {tuple(x.shape[-2:])}")
    n_points = window.numel() ** 2
    cov_norm = 1.0 if gaussian else n_points / (n_points - 1)
    ux, uy = _filter(x, window), _filter(y, window)
    vx = cov_norm * (_filter(x * x, window) - ux * ux)
    vy = cov_norm * (_filter(y * y, window) - uy * uy)
    vxy = cov_norm * (_filter(x * y, window) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    per_image = s.mean(dim=(1, 2, 3))
    return per_image[0] if unbatched else per_image


@dataclass
class Quality:
    """Mean SSIM and LPIPS over a set of frames; ``lpips`` is None when it could not be measured
    (``lpips_note`` says why, or that fixture weights made it meaningless)."""

    ssim: float
    lpips: float | None
    frames: int
    lpips_note: str = ""

    def summary(self) -> str:
        if self.lpips is None:
            lp = self.lpips_note or "LPIPS n/a"
        else:
            lp = f"LPIPS {self.lpips:.4f}" + (f" ({self.lpips_note})" if self.lpips_note else "")
        return f"SSIM {self.ssim:.4f}, {lp} on {self.frames} held-out frames"

    def to_dict(self) -> dict[str, float | int | str | None]:
        return {"ssim": self.ssim, "lpips": self.lpips, "frames": self.frames, "lpips_note": self.lpips_note}


@torch.no_grad()
def measure(generated: list[torch.Tensor], real: list[torch.Tensor], lpips_model: torch.nn.Module | None = None,
            lpips_note: str = "") -> Quality:  # fmt: skip
    """SSIM (and LPIPS with ``lpips_model``) of generated vs real frames, each ``(1, 3, H, W)``
    or ``(3, H, W)`` in -1..1, averaged over the frames."""
    if not generated or len(generated) != len(real):
        raise ValueError(f"measure needs as many generated as real frames, got {len(generated)} and {len(real)}")
    ssims, lpipss = [], []
    for g, r in zip(generated, real, strict=True):
        g = (g if g.dim() == 4 else g[None]).float().clamp(-1, 1)
        r = (r if r.dim() == 4 else r[None]).float().to(g.device)
        ssims.append(float(ssim((g + 1) / 2, (r + 1) / 2, data_range=1.0).mean()))
        if lpips_model is not None:
            param = next(lpips_model.parameters())
            lpipss.append(float(lpips_model(g.to(param.device, param.dtype), r.to(param.device, param.dtype)).mean()))
    value = float(sum(lpipss) / len(lpipss)) if lpipss else None
    if value is not None and not math.isfinite(value):
        value, lpips_note = None, "LPIPS was not finite"
    return Quality(float(sum(ssims) / len(ssims)), value, len(ssims), lpips_note)
