"""Ten different face photos of "one person", made offline from the reference photos.

The photos of the reference data folders (``<family>/data``) hold a few real faces; each face is
cropped to a photo of its own (kept only if it shows that one face), and each crop also mirrored
(a mirrored face is a different photo to the de-duplication, as a second real photo would be),
with small rotations and exposure changes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipelines.common import faces
from pipelines.common.media import load_image, save_png


def face_crops(reference_dir: Path) -> list[np.ndarray]:
    """Every face of the reference data photos, each cropped (with margin) to a photo of its own."""
    crops = []
    for path in sorted(reference_dir.glob("*/data/*.png")):
        image = load_image(path)
        for left, top, right, bottom in faces.detect_faces(image):
            w, h = right - left, bottom - top
            y0, y1 = max(0, top - h), min(image.shape[0], bottom + h // 2)
            x0, x1 = max(0, left - w // 2), min(image.shape[1], right + w // 2)
            crops.append(image[y0:y1, x0:x1])
    return crops


def _vary(image: np.ndarray, k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-8, 8), rng.uniform(0.95, 1.05))
    out = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.clip(255 * (out / 255.0) ** rng.uniform(0.8, 1.25), 0, 255).astype(np.uint8)


def make_face_photos(reference_dir: Path, dest: Path, n: int = 10) -> list[Path]:
    """``n`` PNG photos with one face each (faces and their mirror images, varied), upscaled so
    every face is large enough."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = []
    for crop in face_crops(reference_dir):
        scale = max(1.0, 256 / min(crop.shape[:2]))
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else crop
        sources += [crop, np.ascontiguousarray(crop[:, ::-1])]
    paths: list[Path] = []
    for i, source in enumerate(sources):
        photo = _vary(source, i)
        if len(faces.detect_faces(photo)) != 1:  # a neighbour's face came into the crop
            continue
        paths.append(save_png(photo, dest / f"photo{len(paths):02d}.png"))
        if len(paths) == n:
            return paths
    raise RuntimeError(f"only {len(paths)} distinct one-face photos can be made from {reference_dir}")
