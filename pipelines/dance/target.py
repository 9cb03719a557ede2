"""A Dance target's data: its poses (found once per video), and the training material rendered
from them at one size (frames, labels, face boxes), cached in the target folder::

    <target dir>/
      target.json                 name, where the frames came from, fps, frame count
      poses.npz                   BODY_23/face/hand keypoints per frame (canvas pixels), once
      source.mp4 | frames.npz     the target video (uploads) or its frames (the procedural sample)
      data_<W>x<H>_f<box>.npz     frames, labels and face boxes at one training size, once

Transfer uses the same pose detection (:func:`detect_video_poses`) and face boxes
(:func:`scaled_face_box`) on the source video.

**Label parts.** EDN's labels draw the body, the face dots and both hands. ``target.json`` records
what a target's labels draw (``label_parts``) and transfer draws the source's labels the same way
(:func:`for_labels`), so a generator never sees strokes it was not trained on. Targets prepared
before hands were detected have no ``label_parts``: their labels drew body and face
(:data:`BODY_FACE`), and they keep working as they were trained.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.disk import read_json, write_json
from pipelines.common.errors import InputError
from pipelines.dance.config import TrainConfig
from pipelines.dance.files import save_npz


@dataclass
class TargetData:
    """The training material at one size: frames (-1..1 targets), labels (0..1) and face boxes."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N, H, W, 3) uint8
    boxes: np.ndarray  # (N, 4) int (miny, maxy, minx, maxx); -1 rows = no face
    valid: np.ndarray  # (N,) bool: a person was found in the frame

    def __len__(self) -> int:
        return len(self.images)


BODY_FACE = ("body", "face")
BODY_FACE_HANDS = ("body", "face", "hands")


def label_parts(meta: dict[str, Any]) -> tuple[str, ...]:
    """What a target's labels draw, from its ``target.json`` (older targets: body and face)."""
    return tuple(meta.get("label_parts") or BODY_FACE)


def for_labels(pose: Any, parts: Sequence[str]) -> Any:
    """The pose as labels of ``parts`` draw it: hands (or face) left out when the target's
    labels never had them."""
    if pose is None or pose.is_empty or ("hands" in parts and "face" in parts):
        return pose
    out = pose.copy()
    if "hands" not in parts:
        out.hand_right[:] = 0.0
        out.hand_left[:] = 0.0
    if "face" not in parts:
        out.face[:] = 0.0
    return out


def hand_estimator(wanted: bool | str | None = "auto") -> tuple[Any, str]:
    """The OpenPose hand estimator to find hands with, or (None, why not).

    ``wanted`` True: it must run (a missing ``hand_pose_model.pth`` raises its
    ModelUnavailableError); False: no hands; ``"auto"``/None: when the hand network is installed
    and a GPU runs it (its 4-scale search takes tens of seconds per hand on a CPU)."""
    from pipelines.common.device import pick_device
    from pipelines.common.errors import ModelUnavailableError
    from pipelines.dance.hands import HandEstimator

    if wanted is False:
        return None, "Hands are left out of the labels (asked)."
    if wanted is not True and pick_device().type != "cuda":
        return None, "Hands are left out of the labels: no GPU (the hand search takes tens of seconds per hand on a CPU)."
    try:
        return HandEstimator.from_pretrained(), ""
    except ModelUnavailableError as exc:
        if wanted is True:
            raise
        return None, f"Hands are left out of the labels: {exc}"


def scaled_face_box(body: np.ndarray | None, width: int, height: int, box: int) -> tuple[int, int, int, int]:
    """EDN's face box (``face_box``, 70 canvas px around the nose, makebox128) at another label
    size: the same rule with the box side scaled from 128 px at 1024 wide."""
    from pipelines.dance.render import face_box

    if body is None:
        return (-1, -1, -1, -1)
    return tuple(int(v) for v in face_box(body, (width, height), box=box))  # type: ignore[return-value]


def render_training_data(
    frames: Iterable[np.ndarray],
    poses: Sequence[Any],
    width: int,
    height: int,
    face_box_side: int,
    progress: Callable[[float, str], None] | None = None,
) -> TargetData:
    """Frames fitted on EDN's 1920x1080 canvas and resized like the labels (LANCZOS), labels
    rendered from the poses at ``width`` x ``height``, one face box per frame. ``frames`` may be
    a stream (one decoded frame in memory at a time); there must be one per pose."""
    from pipelines.dance.render import fit_frame_to_canvas, render_label, resize_to_label

    n = len(poses)
    images = np.zeros((n, height, width, 3), np.uint8)
    labels = np.full((n, height, width, 3), 255, np.uint8)
    boxes = np.full((n, 4), -1, np.int64)
    valid = np.zeros(n, bool)
    count = 0
    for i, (frame, pose) in enumerate(zip(frames, poses, strict=False)):
        count += 1
        canvas = fit_frame_to_canvas(np.asarray(frame))
        images[i] = resize_to_label(canvas, (width, height))
        if pose is not None and not pose.is_empty:
            labels[i], _ = render_label(pose, (width, height))
            boxes[i] = scaled_face_box(pose.body, width, height, face_box_side)
            valid[i] = True
        if progress and (i % 10 == 0 or i == n - 1):
            progress((i + 1) / n, f"rendering labels {i + 1}/{n}")
    if count != n:
        raise InputError(f"The target video now has {count} frames but {n} poses were found; prepare it again.")
    return TargetData(images, labels, boxes, valid)


def save_poses(path: Path, poses: Sequence[Any], frame_shape: tuple[int, int]) -> None:
    """Keypoints as arrays (canvas pixels); a frame without a person has ``valid`` False."""
    n = len(poses)
    body = np.zeros((n, 23, 3))
    face = np.zeros((n, 70, 3))
    right = np.zeros((n, 21, 3))
    left = np.zeros((n, 21, 3))
    valid = np.zeros(n, bool)
    for i, p in enumerate(poses):
        if p is None or p.is_empty:
            continue
        body[i], face[i], right[i], left[i], valid[i] = p.body, p.face, p.hand_right, p.hand_left, True
    save_npz(path, compressed=True, body=body, face=face, hand_right=right, hand_left=left, valid=valid,
             frame_shape=np.asarray(frame_shape))  # fmt: skip


def load_poses(path: Path) -> list[Any]:
    from pipelines.dance.skeleton import Pose

    with np.load(path) as z:
        return [
            Pose(z["body"][i], z["face"][i], z["hand_right"][i], z["hand_left"][i]) if z["valid"][i] else Pose.empty()
            for i in range(len(z["valid"]))
        ]


def target_training_data(target_dir: Path, config: TrainConfig, progress: Callable[[float, str], None] | None = None) -> TargetData:
    """The cached ``data_<W>x<H>.npz`` of a target, rendered once from its frames and poses."""
    cache = target_dir / f"data_{config.width}x{config.height}_f{config.face_box}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return TargetData(z["images"], z["labels"], z["boxes"], z["valid"])
    frames_file, poses_file = target_dir / "frames.npz", target_dir / "poses.npz"
    video = target_dir / str(read_json(target_dir / "target.json").get("video", "source.mp4"))
    if not poses_file.exists() or not (frames_file.exists() or video.exists()):
        raise InputError(f"Target {target_dir.name} has no prepared frames/poses; prepare it first.")
    parts = label_parts(read_json(target_dir / "target.json"))
    poses = [for_labels(p, parts) for p in load_poses(poses_file)]
    if frames_file.exists():
        with np.load(frames_file) as z:
            frames: Iterable[np.ndarray] = list(z["frames"])
    else:  # a video target: decode again, one frame at a time (a minute of 1080p would not fit in memory)
        from pipelines.common.media import iter_frames

        frames = iter_frames(video)
    data = render_training_data(frames, poses, config.width, config.height, config.face_box, progress)
    save_npz(cache, images=data.images, labels=data.labels, boxes=data.boxes, valid=data.valid)
    return data


def split_holdout(n: int, fraction: float, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / held-out frame indices: the held-out frames are the contiguous END of the video
    (neighbouring frames are near-duplicates, so a random split would leak)."""
    if n < minimum + 2:
        raise InputError(f"The target video has {n} usable frames; at least {minimum + 2} are needed.")
    k = max(minimum, math.ceil(n * fraction))
    return np.arange(0, n - k), np.arange(n - k, n)


def prepare_target_from_arrays(
    target_dir: Path,
    frames: Sequence[np.ndarray],
    poses: Sequence[Any],
    *,
    name: str,
    fps: float,
    source: str,
) -> Path:
    """Store a target's frames and poses (already known, e.g. the procedural sample); its labels
    draw hands when the poses have any."""
    target_dir.mkdir(parents=True, exist_ok=True)
    with_hands = any(p is not None and not p.is_empty and (p.hand_right[:, 2].any() or p.hand_left[:, 2].any()) for p in poses)
    frame_shape = tuple(np.asarray(frames[0]).shape[:2])
    save_npz(target_dir / "frames.npz", frames=np.stack([np.asarray(f, np.uint8) for f in frames]))
    save_poses(target_dir / "poses.npz", poses, frame_shape)  # type: ignore[arg-type]
    write_json(target_dir / "target.json", {
        "name": name, "source": source, "fps": float(fps), "n_frames": len(frames),
        "frame_shape": list(frame_shape), "created": time.time(),
        "n_with_person": int(sum(p is not None and not p.is_empty for p in poses)),
        "label_parts": list(BODY_FACE_HANDS if with_hands else BODY_FACE),
    })  # fmt: skip
    return target_dir


def prepare_target_from_video(
    target_dir: Path,
    video: Path,
    progress: Callable[[float, str], None] | None = None,
) -> Path:
    """Find the person's pose in every frame of the target video, store the poses (canvas
    pixels); the frames stay in the video and are decoded again when training data is rendered.

    Hands are found as ``target.json``'s ``hands`` asks (see :func:`hand_estimator`; default
    "auto"); ``label_parts``, the landmarker and any reason hands were left out are recorded in
    ``target.json``."""
    from pipelines.common import faces

    meta = read_json(target_dir / "target.json")
    hands, note = hand_estimator(meta.get("hands", "auto"))
    poses, info = detect_video_poses(video, progress, hands=hands)
    shape = (info.height, info.width)
    if sum(not p.is_empty for p in poses) < 4:
        raise InputError(f"{video.name}: no person was found in enough frames to train on. "
                         "Use a video with one person, whole body in view.")  # fmt: skip
    save_poses(target_dir / "poses.npz", poses, shape)
    meta.update(n_frames=len(poses), n_with_person=int(sum(not p.is_empty for p in poses)),
                label_parts=list(BODY_FACE_HANDS if hands is not None else BODY_FACE),
                landmarker=faces.landmarker_name(), label_note="" if hands is not None else note)  # fmt: skip
    write_json(target_dir / "target.json", meta)
    return target_dir


def detect_video_poses(video: str | os.PathLike, progress: Callable[[float, str], None] | None = None,
                       chunk_size: int = 16, hands: Any = None, first_seconds: float | None = None,
                       ) -> tuple[list[Any], Any]:  # fmt: skip
    """One pose per frame of a video (Part A's estimator, ``chunk_size`` decoded frames in memory
    at a time; hands too with a ``hands`` estimator), fitted onto EDN's 1080p canvas; and the
    video's info (limits checked). ``first_seconds``: only the start of the video (decoding stops
    there; None or 0: the whole clip); the info still describes the whole video."""
    from pipelines.common.media import frames_in_first, iter_frames, probe_video
    from pipelines.dance.render import fit_pose_to_canvas

    info = probe_video(video)
    used = min(info.n_frames, frames_in_first(first_seconds, info.fps) or info.n_frames)
    shape = (info.height, info.width, 3)
    poses: list[Any] = []
    chunk: list[np.ndarray] = []

    def flush() -> None:
        found = detect_poses(chunk, hands=hands)
        poses.extend(p if p.is_empty else fit_pose_to_canvas(p, shape) for p in found)
        chunk.clear()
        if progress:
            progress(min(1.0, len(poses) / max(1, used)), f"finding poses {len(poses)}/{used}")

    for frame in itertools.islice(iter_frames(video), used):
        chunk.append(frame)
        if len(chunk) == chunk_size:
            flush()
    if chunk:
        flush()
    return poses, info


def detect_poses(frames: Sequence[np.ndarray], progress: Callable[[float, str], None] | None = None, hands: Any = None) -> list[Any]:
    """One :class:`~pipelines.dance.skeleton.Pose` per frame from Part A's estimator (body, face,
    and hands when a :class:`~pipelines.dance.hands.HandEstimator` is given)."""
    from pipelines.dance.poses import estimate_poses

    def report(done: int, total: int) -> None:
        if progress:
            progress(done / max(1, total), f"finding poses {done}/{total}")

    return list(estimate_poses(frames, hands=hands, progress=report))
