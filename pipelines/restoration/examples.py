"""Offline example photos for the Restore tab, the benchmarks and the tests (nothing downloaded):
scikit-image's public-domain photos made to look old (sepia, faded, grainy, optionally scratched)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def age_photo(image: np.ndarray, seed: int, scratches: bool) -> np.ndarray:
    """Make a clean photo look old (offline examples and tests): sepia tone, faded contrast, film grain,
    a vignette and, optionally, thin bright scratches and creases."""
    rng = np.random.default_rng(seed)
    rgb = image.astype(np.float32) if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    sepia = np.stack([luma * 1.07, luma * 0.95, luma * 0.78], axis=-1)
    faded = 40 + sepia * 0.7
    h, w = luma.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
    faded *= (1 - 0.25 * np.clip(r2 - 0.3, 0, None))[..., None]
    faded += rng.normal(0, 9, (h, w, 1)).astype(np.float32)
    out = np.clip(faded, 0, 255).astype(np.uint8)
    if scratches:
        canvas = Image.fromarray(out)
        from PIL import ImageDraw

        draw = ImageDraw.Draw(canvas)
        for _ in range(14):
            x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
            angle = rng.uniform(0, np.pi)
            length = rng.uniform(0.2, 0.9) * max(h, w)
            pts = [(x0, y0)]
            for _ in range(6):  # a slightly wandering line
                angle += rng.normal(0, 0.08)
                x0 += np.cos(angle) * length / 6
                y0 += np.sin(angle) * length / 6
                pts.append((x0, y0))
            shade = int(rng.uniform(200, 250))
            draw.line(pts, fill=(shade, shade, shade - 10), width=int(rng.integers(1, 4)))
        out = np.asarray(canvas)
    return out


def example_photos(folder: str | Path) -> list[Path]:
    """Aged examples written once into ``folder``: a portrait with a face and two scratched photos."""
    import skimage.data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = [
        ("old_portrait.png", skimage.data.astronaut, 1, False),
        ("scratched_portrait.png", skimage.data.astronaut, 2, True),
        ("scratched_camera.png", skimage.data.camera, 3, True),
    ]
    paths = []
    for name, source, seed, scratched in specs:
        path = folder / name
        if not path.exists():
            Image.fromarray(age_photo(source(), seed, scratched)).save(path)
        paths.append(path)
    return paths
