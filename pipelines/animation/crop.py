"""Face crops like the training data, and pasting an animated crop back into the whole photo.

The released vox model was trained on VoxCeleb crops where the face (dlib's tight box, brows to
chin) spans a bit over half of a square frame and sits slightly below its centre. The original
demo therefore needs a pre-cropped face; here the crop is computed from the detected box so a
whole photo can be animated, then the animated square is resized back and blended into the
full-resolution photo through a feathered mask (no visible seam).

Boxes are ``(left, top, right, bottom)`` pixels; a crop square is ``(left, top, side)`` and may
extend past the image (the outside is filled by edge replication).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipelines.common.progress import stop_point

# Measured on the original's assets (source.png, driving.mp4): the crop side is ~1.8x the dlib box
# and the box centre sits ~0.12 box heights below the crop centre.
CROP_SCALE = 1.8
CROP_SHIFT_UP = 0.12


@dataclass(frozen=True)
class CropSquare:
    left: int
    top: int
    side: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.left + self.side, self.top + self.side


def crop_square(box: np.ndarray | tuple[int, int, int, int], scale: float = CROP_SCALE, shift_up: float = CROP_SHIFT_UP) -> CropSquare:
    """The training-style square around a face box."""
    left, top, right, bottom = (float(v) for v in box)
    w, h = right - left, bottom - top
    side = max(8, round(scale * max(w, h)))
    cx, cy = (left + right) / 2, (top + bottom) / 2 - shift_up * h
    return CropSquare(round(cx - side / 2), round(cy - side / 2), side)


def extract(image: np.ndarray, square: CropSquare) -> np.ndarray:
    """Pixels of ``square`` (edge-replicated where it leaves the image), uint8 (side, side, 3)."""
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -square.left), max(0, -square.top)
    pad_r, pad_b = max(0, square.left + square.side - w), max(0, square.top + square.side - h)
    if pad_l or pad_t or pad_r or pad_b:
        image = np.pad(image, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)), mode="edge")
    top, left = square.top + pad_t, square.left + pad_l
    return np.ascontiguousarray(image[top : top + square.side, left : left + square.side])


def resize_uint8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image to (width, height) with an antialiased filter (Lanczos)."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def feather_mask(side: int, feather: float = 0.12) -> np.ndarray:
    """(side, side) float32 mask: 1 in the middle, falling smoothly to 0 at the border over
    ``feather`` of the side (a smoothstep in each direction, multiplied)."""
    ramp = max(1.0, feather * side)
    pos = np.arange(side, dtype=np.float32) + 0.5
    dist = np.minimum(pos, side - pos) / ramp
    t = np.clip(dist, 0.0, 1.0)
    one = t * t * (3 - 2 * t)
    return np.outer(one, one)


def paste(photo: np.ndarray, crop: np.ndarray, square: CropSquare, mask: np.ndarray | None = None) -> np.ndarray:
    """Blend ``crop`` (any size; resized to the square) into a copy of ``photo`` at ``square``."""
    out = photo.copy()
    side = square.side
    patch = resize_uint8(crop, (side, side)).astype(np.float32)
    alpha = feather_mask(side) if mask is None else mask
    h, w = photo.shape[:2]
    x0, y0 = max(0, square.left), max(0, square.top)
    x1, y1 = min(w, square.left + side), min(h, square.top + side)
    if x1 <= x0 or y1 <= y0:
        return out
    px0, py0 = x0 - square.left, y0 - square.top
    px1, py1 = px0 + (x1 - x0), py0 + (y1 - y0)
    a = alpha[py0:py1, px0:px1, None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = patch[py0:py1, px0:px1] * a + region * (1 - a)
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (never enlarge) so the long side is at most ``max_side``, keeping the aspect ratio."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image
    return resize_uint8(image, (max(2, round(w * scale)), max(2, round(h * scale))))


def driving_square(frames: Iterable[np.ndarray], n_frames: int = 50, every: int = 5) -> CropSquare | None:
    """One fixed training-style square around the driving video's face: from every ``every``-th of
    its first ``n_frames`` frames, the first one with a face (None when none has one)."""
    from pipelines.common import faces

    for i, frame in enumerate(frames):
        if i >= n_frames:
            break
        if i % every == 0:
            stop_point()
            boxes = faces.detect_faces(frame)
            if len(boxes):
                return crop_square(boxes[0])
    return None
