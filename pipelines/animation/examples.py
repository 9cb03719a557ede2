"""Offline example inputs for the Animate tab and the tests, made on the fly (nothing downloaded).

The source photo is ``skimage.data.astronaut()`` (public domain, NASA): a whole photo with a face
that is not centred, so face detection, cropping and paste-back are exercised. The driving clip
is that face moved over time by smooth affine warps (nod, turn, lean, approach), with a sine-tone
audio track, written as H.264 so it goes through the same decoding path as an upload.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.common import media


def example_photo() -> np.ndarray:
    """A whole RGB photo with one face (512x512)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def _affine_frame(face: np.ndarray, t: float, size: int) -> np.ndarray:
    """The face square warped by a small, smooth rotation / shift / zoom at phase ``t``."""
    angle = 8.0 * math.sin(2 * math.pi * t)
    dx = 0.04 * size * math.sin(2 * math.pi * t * 0.5)
    dy = 0.03 * size * math.sin(2 * math.pi * t + 1.0)
    zoom = 1.0 + 0.05 * math.sin(2 * math.pi * t * 0.75)
    img = Image.fromarray(face).resize((size, size), Image.LANCZOS)
    c = size / 2
    a = math.radians(angle)
    cos, sin = math.cos(a) / zoom, math.sin(a) / zoom
    # inverse map output -> input, about the centre
    coeffs = (cos, sin, c - cos * (c + dx) - sin * (c + dy), -sin, cos, c + sin * (c + dx) - cos * (c + dy))
    return np.asarray(img.transform((size, size), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(128, 128, 128)))


def write_tone(path: str | Path, seconds: float, rate: int = 44100, freq: float = 440.0) -> Path:
    """A mono 16-bit WAV sine tone (with a gentle on/off envelope)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)
    samples = (0.3 * envelope * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def make_driving_clip(path: str | Path, seconds: float = 2.0, fps: float = 25.0, size: int = 320, audio: bool = True) -> Path:
    """Write the synthetic talking-face driving clip (H.264, optional AAC tone) to ``path``."""
    from pipelines.common import faces

    photo = example_photo()
    boxes = faces.detect_faces(photo)
    from pipelines.animation.crop import crop_square, extract

    face = extract(photo, crop_square(boxes[0])) if len(boxes) else photo
    n = max(2, round(seconds * fps))
    frames = (_affine_frame(face, i / n, size) for i in range(n))
    path = Path(path)
    if not audio:
        return media.write_video(frames, path, fps)
    with media.scratch_dir("tone") as tmp:
        tone = write_tone(Path(tmp) / "tone.wav", n / fps)
        return media.write_video(frames, path, fps, audio_from=tone)


def example_inputs(folder: str | Path) -> tuple[Path, Path]:
    """(photo PNG, driving MP4) in ``folder``, created once."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photo, clip = folder / "astronaut.png", folder / "driving_face.mp4"
    if not photo.exists():
        media.save_png(example_photo(), photo)
    if not clip.exists():
        make_driving_clip(clip)
    return photo, clip
