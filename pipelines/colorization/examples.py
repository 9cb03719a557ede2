"""Offline examples for the Colorize tab, the benchmarks and the tests (nothing downloaded):
scikit-image's gray photos given a faded, grainy look, and a short gray clip with an audio track."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.common.media import mux_audio, write_video


def old_looking(gray: np.ndarray, seed: int) -> np.ndarray:
    """A gray photo with a faded, slightly grainy look (the kind DeOldify is made for)."""
    rng = np.random.default_rng(seed)
    faded = 30 + gray.astype(np.float32) * 0.8 + rng.normal(0, 4, gray.shape)
    return np.clip(faded, 0, 255).astype(np.uint8)


def example_photos(folder: str | Path) -> list[Path]:
    """Gray photos shipped with scikit-image, written once into ``folder`` (no downloads)."""
    import skimage.data
    from skimage.color import rgb2gray

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = [
        ("camera_man.png", lambda: skimage.data.camera()),
        ("astronaut_bw.png", lambda: (rgb2gray(skimage.data.astronaut()) * 255).astype(np.uint8)),
        ("coffee_bw.png", lambda: (rgb2gray(skimage.data.coffee()) * 255).astype(np.uint8)),
    ]
    paths = []
    for i, (name, source) in enumerate(specs):
        path = folder / name
        if not path.exists():
            Image.fromarray(old_looking(source(), i)).save(path)
        paths.append(path)
    return paths


def example_video(folder: str | Path) -> Path:
    """A 2-second gray clip panning across the camera-man photo, with a tone as its audio track."""
    import skimage.data

    path = Path(folder) / "pan_with_audio.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.camera()  # 512x512 gray
    fps, n, side = 12, 24, 256
    frames = []
    for i in range(n):
        x = int(i * (photo.shape[1] - side) / (n - 1))
        crop = photo[128 : 128 + side, x : x + side]
        frames.append(np.repeat(old_looking(crop, i)[..., None], 3, axis=2))
    silent = write_video(frames, path.with_name("pan_silent.mp4"), fps)
    tone = path.with_name("tone.wav")
    rate = 22050
    t = np.arange(int(rate * n / fps)) / rate
    with wave.open(str(tone), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).tobytes())
    mux_audio(silent, tone, path)
    silent.unlink(missing_ok=True)
    tone.unlink(missing_ok=True)
    return path
