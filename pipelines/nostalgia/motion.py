"""What the one-click chain adds to the animation of faces: the offline preset motion, the
ping-pong loop and its face-choice policy.

The multi-face loop itself (crop each face like the training data, drive every face by the same
frames, paste back, progress and Stop, precision) belongs to the animation pipeline:
:func:`pipelines.animation.pipeline.animate_faces`, which the chain calls with the faces chosen
here, keeps the small animated crops in memory (:class:`~pipelines.animation.pipeline.FaceMotion`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.common import media
from pipelines.common.errors import InputError
from pipelines.nostalgia.config import DRIVING_PRESETS


def ping_pong(i: int, n: int) -> int:
    """Index into an ``n``-frame clip played forwards then backwards, for any ``i >= 0`` (a loop
    without a jump: relative motion starts and ends near the rest pose)."""
    if n <= 1:
        return 0
    period = 2 * (n - 1)
    k = i % period
    return k if k < n else period - k


def preset_driving_video(preset: str, seconds: float, fps: float) -> Path:
    """The offline driving clip of ``preset`` (generated once per length and fps, then reused)."""
    if preset not in DRIVING_PRESETS:
        raise InputError(f"Unknown driving preset {preset!r}; choose one of {', '.join(DRIVING_PRESETS)}.")
    from pipelines.animation.examples import make_driving_clip

    folder = media.outputs_root() / "nostalgia-drivers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{preset}_{seconds:g}s_{fps:g}fps.mp4"
    if not path.exists():
        tmp = path.with_name(f".{path.stem}.{np.random.randint(1 << 30)}.mp4")
        make_driving_clip(tmp, seconds=seconds, fps=fps, audio=False)
        tmp.replace(path)  # atomic: concurrent requests never read a half-written clip
    return path


def choose_faces(n_faces: int, face_index: int, all_faces: bool) -> list[int]:
    """Which faces (0-based, largest first) to animate; a specific error when the choice is impossible."""
    if n_faces == 0:
        raise InputError(
            "No face was found in the photo, so nothing can be animated. Switch animation off or use a photo with a visible, frontal face."
        )
    if all_faces:
        return list(range(n_faces))
    if not 0 <= face_index < n_faces:
        raise InputError(
            f"Face {face_index + 1} was requested but the photo has {n_faces} face(s) (numbered from 1, largest first)."
        )
    return [face_index]
