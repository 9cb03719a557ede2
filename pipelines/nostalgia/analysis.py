"""Pure decisions of the one-click chain: does the photo need colour, does it have scratches?

Both are cheap tests on arrays, separate from any network so they can be unit-tested and tuned.

*Colour*: an old print is either monochrome (gray, or uniformly toned: sepia, cyanotype, a yellowed
print) or a colour photo whose dyes have faded. In a toned monochrome print the chroma is a function of
the brightness alone (the toner colours the dark and light parts in a fixed way), so pixels of equal
brightness share one chroma. In a live colour photo, pixels of equal brightness have different hues
(skin, sky, clothes). :func:`color_stats` measures the chroma *not explained by brightness*: the
within-bin spread of the opponent chroma over luminance bins. Film grain that adds the same amount to
the three channels does not move it; fading shrinks it in proportion. Measured on scikit-image's colour
photos it is 18-44; on toned or faded (70 %) prints 2-8 and 6-13; the default threshold is 10.

*Scratches*: the restoration's scratch detector returns a mask; a clean photo still has a few stray
pixels marked, so scratch mode is used only when the marked share exceeds a small fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Luminance bins for the conditional chroma spread.
LUMA_BINS = 32
# Work on at most this many pixels (a strided subsample): the statistics do not need more.
SAMPLE_PIXELS = 250_000
DEFAULT_COLOR_THRESHOLD = 10.0
DEFAULT_SCRATCH_THRESHOLD = 0.004


@dataclass(frozen=True)
class ColorStats:
    """How colourful a photo is, in 8-bit units.

    ``residual_chroma``: RMS of the opponent chroma (R-G, (R+G)/2-B) around its mean at the same
    luminance (0 for gray and toned prints). ``chroma``: RMS chroma overall (a toned print has plenty).
    ``mean_saturation``: mean HSV saturation (0..1), for the UI.
    """

    residual_chroma: float
    chroma: float
    mean_saturation: float


def _sample(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.size == 0:
        raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
    h, w = arr.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / SAMPLE_PIXELS))))
    return arr[::step, ::step, :3].reshape(-1, 3).astype(np.float64)


def color_stats(image: np.ndarray) -> ColorStats:
    """:class:`ColorStats` of an RGB image (uint8 0..255)."""
    rgb = _sample(image)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    bins = np.minimum((luma * (LUMA_BINS / 256.0)).astype(np.int64), LUMA_BINS - 1)
    count = np.bincount(bins, minlength=LUMA_BINS).astype(np.float64)
    residual = 0.0
    total = 0.0
    for chroma in (r - g, 0.5 * (r + g) - b):
        sums = np.bincount(bins, chroma, LUMA_BINS)
        squares = np.bincount(bins, chroma * chroma, LUMA_BINS)
        residual += float((squares - sums * sums / np.maximum(count, 1.0)).sum())
        total += float(squares.sum())
    hi, lo = rgb.max(axis=1), rgb.min(axis=1)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0.0)
    n = len(rgb)
    return ColorStats(float(np.sqrt(max(residual, 0.0) / n)), float(np.sqrt(total / n)), float(saturation.mean()))


def needs_colorization(image: np.ndarray, threshold: float = DEFAULT_COLOR_THRESHOLD) -> bool:
    """True when the photo is grayscale, toned (sepia...) or faded: its chroma not explained by
    brightness is below ``threshold`` (8-bit units)."""
    return color_stats(image).residual_chroma < threshold


def scratch_fraction(mask: np.ndarray | None) -> float:
    """Share of pixels (0..1) marked in a scratch mask (0 = clean, >0 = scratch); 0 for None."""
    if mask is None:
        return 0.0
    arr = np.asarray(mask)
    return float((arr > 0).mean()) if arr.size else 0.0


def has_scratches(mask: np.ndarray | None, threshold: float = DEFAULT_SCRATCH_THRESHOLD) -> bool:
    """True when more than ``threshold`` of the photo is marked as scratched."""
    return scratch_fraction(mask) > threshold
