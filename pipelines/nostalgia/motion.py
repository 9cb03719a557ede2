"""Animate one or several faces of a whole photo with TPSMM and composite them into one video.

:func:`pipelines.animation.pipeline.animate` animates one face and writes finished videos. The
one-click chain needs more: every face moving in the same video, and frames it can keep editing
(story captions, looping over a narration). So this module drives the animation building blocks
directly (:class:`~pipelines.animation.pipeline.TPSMMPipeline`, the training-style crop and the
feathered paste of :mod:`pipelines.animation.crop`) and keeps only the small animated crops in
memory (``T x 256 x 256`` per face); whole-photo frames are composed on demand.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipelines.animation import crop as crops
from pipelines.animation.config import get_config
from pipelines.animation.pipeline import TPSMMPipeline
from pipelines.animation.preprocess import resize_like_skimage_0183, to_uint8_like_skimage
from pipelines.common import media
from pipelines.common.device import oom_guard
from pipelines.common.errors import InputError
from pipelines.common.progress import ProgressFn
from pipelines.nostalgia.config import DRIVING_PRESETS


@dataclass
class FaceMotion:
    """A still photo plus animated face crops; :meth:`frame` composes whole-photo frame ``i``."""

    photo: np.ndarray  # RGB uint8 (H, W, 3)
    squares: list[crops.CropSquare]  # one per animated face
    clips: list[np.ndarray]  # per face (T, S, S, 3) uint8
    fps: float
    face_numbers: list[int]  # 0-based indices (largest first) of the animated faces

    def __post_init__(self) -> None:
        self._masks = [crops.feather_mask(square.side) for square in self.squares]

    def __len__(self) -> int:
        return len(self.clips[0]) if self.clips else 0

    def frame(self, i: int) -> np.ndarray:
        out = self.photo
        for square, clip, mask in zip(self.squares, self.clips, self._masks, strict=True):
            out = crops.paste(out, clip[i], square, mask)
        return out

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.frame(i)


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


def animate_faces(
    photo: np.ndarray,
    boxes: np.ndarray,
    face_numbers: Sequence[int],
    driving_frames: Sequence[np.ndarray],
    fps: float,
    *,
    model: str = "vox",
    mode: str = "relative",
    crop_driving: bool = True,
    batch_size: int = 4,
    progress: ProgressFn | None = None,
) -> FaceMotion:
    """Animate the faces ``face_numbers`` (rows of ``boxes``) of ``photo`` by the driving frames.

    Each face is cropped like the training data, animated at the model's size with motion relative
    to the first driving frame, and kept as a crop; :meth:`FaceMotion.frame` pastes them back.
    """
    report = progress or (lambda f, m="": None)
    cfg = get_config(model)
    if not cfg.face:
        raise InputError(f"The {cfg.name} model is not a face model; the one-click chain animates faces with 'vox'.")
    if not len(driving_frames):
        raise InputError("The driving video has no frames.")
    size = (cfg.img_size, cfg.img_size)
    square = crops.driving_square(driving_frames) if crop_driving else None

    def drive(i: int) -> np.ndarray:
        frame = crops.extract(driving_frames[i], square) if square is not None else driving_frames[i]
        return resize_like_skimage_0183(frame, size)[..., :3]

    pipe = TPSMMPipeline.from_pretrained(cfg.name, batch_size=batch_size)
    n = len(driving_frames)
    squares, clips = [], []
    with torch.inference_mode(), oom_guard("Try a shorter driving motion or fewer faces."):
        kp_initial = pipe.keypoints([drive(0)])
        for k, number in enumerate(face_numbers):
            face_square = crops.crop_square(boxes[number])
            source = resize_like_skimage_0183(crops.extract(photo, face_square), size)[..., :3]
            src = pipe.prepare_source(source)
            clip = np.empty((n, *size, 3), dtype=np.uint8)
            done = 0
            for idx, batch in pipe.iter_animation(src, drive, list(range(n)), mode, kp_initial):
                clip[idx] = to_uint8_like_skimage(batch)
                done += len(idx)
                report((k + done / n) / len(face_numbers), f"face {number + 1}: frame {done}/{n}")
            squares.append(face_square)
            clips.append(clip)
    return FaceMotion(photo, squares, clips, fps, list(face_numbers))
