"""Pre- and post-processing of the TPSMM demo, as pure numpy functions.

The original demo resizes every image with ``skimage.transform.resize(img, shape)`` under the
pinned scikit-image 0.18.3. That version blurs the **uint8** image (scipy's Gaussian filter writes
into a uint8 array, truncating after each 1-D pass) before converting to float; scikit-image
>= 0.19 blurs the float image instead, which changes the model's output by up to 0.1. The
published checkpoints were evaluated with the old behaviour, so it is reproduced here exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def _bilinear_axis(length_in: int, length_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of skimage's bilinear resize along one axis: the output pixel
    centre ``i + 0.5`` maps to input ``(in/out)(i + 0.5) - 0.5``; edges use 'reflect' (mirror
    about the edge pixel centre's half-pixel) which only matters when upsampling."""
    scale = length_in / length_out
    coord = scale * (np.arange(length_out, dtype=np.float64) + 0.5) - 0.5
    lo = np.floor(coord)
    frac = coord - lo
    lo = lo.astype(np.int64)
    hi = lo + 1

    def reflect(idx: np.ndarray) -> np.ndarray:
        # skimage mode 'reflect' == numpy 'symmetric': -1 -> 0, n -> n-1
        period = 2 * length_in
        idx = np.mod(idx, period)
        return np.where(idx >= length_in, period - 1 - idx, idx)

    return reflect(lo), reflect(hi), frac


def resize_like_skimage_0183(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``skimage.transform.resize(image, shape)`` of scikit-image 0.18.3 with default arguments
    (order 1, mode 'reflect', anti-aliasing when down-scaling, clip), float64 in [0, 1].

    ``image`` is uint8 (H, W) or (H, W, C); channels are kept (drop alpha afterwards, as the demo).
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {arr.dtype}")
    out_h, out_w = int(shape[0]), int(shape[1])
    in_h, in_w = arr.shape[:2]
    factors = (in_h / out_h, in_w / out_w)
    work = arr.astype(np.float64)
    if any(f > 1 for f in factors):
        # Anti-aliasing on the uint8 image: each 1-D pass is stored back as uint8 (truncation).
        for axis, factor in enumerate(factors):
            sigma = max(0.0, (factor - 1) / 2)
            if sigma > 1e-15:
                blurred = gaussian_filter1d(work, sigma, axis=axis, mode="mirror", truncate=4.0)
                work = np.floor(np.clip(blurred, 0, 255))
    work = work / 255.0
    r0, r1, fr = _bilinear_axis(in_h, out_h)
    c0, c1, fc = _bilinear_axis(in_w, out_w)
    extra = (1,) * (arr.ndim - 2)
    fr = fr.reshape(-1, 1, *extra)
    fc = fc.reshape(1, -1, *extra)
    top = work[r0][:, c0] * (1 - fc) + work[r0][:, c1] * fc
    bottom = work[r1][:, c0] * (1 - fc) + work[r1][:, c1] * fc
    out = top * (1 - fr) + bottom * fr
    return np.clip(out, 0.0, 1.0)


def to_uint8_like_skimage(frame: np.ndarray) -> np.ndarray:
    """``skimage.img_as_ubyte`` on a float32 frame in [0, 1]: round half to even of x*255, clip."""
    f = np.asarray(frame, dtype=np.float32)
    return np.clip(np.rint(f * np.float32(255)), 0, 255).astype(np.uint8)
