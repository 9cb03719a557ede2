"""Motion transfer: label frames -> generated frames, in order, each fed back as the previous one.

The test-time loop of the original (``test_fullts.py`` + ``Pix2PixHDModel.inference``):
``prev = 0``; ``I = G(cat(label_t, prev))``; with a face generator, its output on the 128x128
face box (input: label crop and I crop) is ADDED to that crop (no clamp); ``prev = I`` including
the residual. Frames leave as ``tensor2im``: ``clip((y + 1) / 2 * 255, 0, 255)`` truncated to uint8.

:func:`transfer_video` is the whole user-facing path: source video -> poses (Part A's
``poses.estimate_poses``) -> normalised to the target (``normalize_poses``) -> labels
(``render_label``) -> frames -> H.264 with the source's audio, optionally side by side
(source | stick figure | result).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.common import precision as precisions
from pipelines.common.device import oom_guard
from pipelines.common.disk import read_json
from pipelines.common.progress import ProgressFn, stop_point
from pipelines.dance.target import (
    BODY_FACE,
    detect_video_poses,
    for_labels,
    hand_estimator,
    label_parts,
    load_poses,
    scaled_face_box,
)

FaceBox = tuple[int, int, int, int]  # (miny, maxy, minx, maxx) in label pixels, as the facetexts files


# What to lower when a frame does not fit in memory (the generation loop runs under oom_guard).
OOM_HINT = "Choose a smaller model size, or a shorter video."

def label_to_tensor(label: np.ndarray) -> torch.Tensor:
    """RGB uint8 label (H, W, 3) -> 1x3xHxW float in 0..1 (ToTensor; labels are NOT normalised)."""
    return torch.from_numpy(np.array(label, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 frame -> 1x3xHxW float in -1..1 (ToTensor then Normalize(0.5, 0.5))."""
    return label_to_tensor(image) * 2.0 - 1.0


def tensor_to_uint8(y: torch.Tensor) -> np.ndarray:
    """The original ``tensor2im`` of the first batch item: clip((y+1)/2*255, 0, 255), truncated."""
    arr = ((y[0].detach().float().cpu().permute(1, 2, 0) + 1.0) / 2.0 * 255.0).clamp(0, 255)
    return arr.numpy().astype(np.uint8)


@dataclass
class GeneratedFrame:
    """One step of the loop: the final frame and, when a face generator ran, its parts."""

    frame: torch.Tensor  # 1x3xHxW, -1..1 (may exceed it inside the face box: no clamp, as the original)
    initial_face: torch.Tensor | None = None
    face_residual: torch.Tensor | None = None


def clamp_box(box: FaceBox | None, height: int, width: int) -> FaceBox | None:
    """Keep a face box inside the frame; None when nothing of it remains (face out of view)."""
    if box is None:
        return None
    miny, maxy, minx, maxx = (int(v) for v in box)
    miny, minx = max(miny, 0), max(minx, 0)
    maxy, maxx = min(maxy, height), min(maxx, width)
    if maxy - miny < 8 or maxx - minx < 8:
        return None
    return miny, maxy, minx, maxx


def generate_step(
    netG: torch.nn.Module,  # noqa: N803 - original names
    faceG: torch.nn.Module | None,  # noqa: N803
    label: torch.Tensor,
    prev: torch.Tensor,
    box: FaceBox | None,
) -> GeneratedFrame:
    """One frame: ``G(cat(label, prev))`` plus the face residual on ``box`` (when both exist)."""
    initial = netG(torch.cat((label, prev), dim=1))
    if faceG is None or box is None:
        return GeneratedFrame(initial)
    miny, maxy, minx, maxx = box
    initial_face = initial[:, :, miny:maxy, minx:maxx]
    residual = faceG(torch.cat((label[:, :, miny:maxy, minx:maxx], initial_face), dim=1))
    out = initial.clone()
    out[:, :, miny:maxy, minx:maxx] = initial_face + residual
    return GeneratedFrame(out, initial_face, residual)


def generate_sequence(
    netG: torch.nn.Module,  # noqa: N803
    faceG: torch.nn.Module | None,  # noqa: N803
    labels: Sequence[torch.Tensor] | Iterator[torch.Tensor],
    boxes: Sequence[FaceBox | None] | None = None,
) -> Iterator[GeneratedFrame]:
    """Generate frames in order, each conditioned on the previous output (zeros for the first)."""
    prev: torch.Tensor | None = None
    for t, label in enumerate(labels):
        if prev is None:
            prev = torch.zeros_like(label)
        box = boxes[t] if boxes is not None else None
        box = clamp_box(box, label.shape[-2], label.shape[-1])
        step = generate_step(netG, faceG, label, prev, box)
        prev = step.frame
        yield step



# --------------------------------------------------------------------------- the video path


class _Lookup:
    """``boxes[t]`` for :func:`generate_sequence` while the boxes are still being filled in step
    with the labels (each label's box is known by the time its frame is generated)."""

    def __init__(self, items: list[FaceBox | None]):
        self.items = items

    def __getitem__(self, t: int) -> FaceBox | None:
        return self.items[t]


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A source frame placed as its keypoints are (EDN's fit onto the 1920x1080 canvas, then the
    label size), in one warp straight to ``size`` = (width, height): for the side-by-side view."""
    import cv2

    from pipelines.dance.render import CANVAS_SHAPE, canvas_transform

    fit = canvas_transform(frame.shape)
    scale, (tx, ty) = fit if fit is not None else (1.0, (0.0, 0.0))
    sx, sy = size[0] / CANVAS_SHAPE[1], size[1] / CANVAS_SHAPE[0]
    matrix = np.float32([[scale * sx, 0, tx * sx], [0, scale * sy, ty * sy]])
    return cv2.warpAffine(np.ascontiguousarray(frame), matrix, size, flags=cv2.INTER_AREA)


@dataclass
class TransferResult:
    path: Path
    n_frames: int
    fps: float
    notes: list[str] = field(default_factory=list)


Motion = tuple[Sequence[np.ndarray], Sequence[Any], float]  # frames, poses (canvas pixels), fps


class DanceTransferPipeline:
    """A trained target's generator (and face generator), built once and called per source video.

    Load with :meth:`from_dir` (the target folder written by :mod:`pipelines.dance.trainer`);
    networks go through the process-wide model cache, keyed by the export's timestamp, so a
    target that keeps training is reloaded when a newer checkpoint is exported."""

    def __init__(
        self,
        netG: torch.nn.Module,  # noqa: N803
        faceG: torch.nn.Module | None,  # noqa: N803
        size: tuple[int, int],
        face_box: int,
        target_poses: list[Any],
        device: torch.device,
        parts: tuple[str, ...] = BODY_FACE,
        precision: str | None = None,
    ):
        """``precision``: ``auto``/``exact`` (None: the current mode at each call), see
        :mod:`pipelines.common.precision`; the frame fed back to the generator is always float32."""
        self.precision = precision and precisions.check_mode(precision)
        self.netG, self.faceG = netG, faceG
        self.width, self.height = size
        self.face_box = face_box
        self.target_poses = target_poses
        self.device = device
        self.parts = parts  # what the target's labels draw (see pipelines.dance.target.label_parts)

    def networks(self) -> tuple[Any, Any]:
        """(generator, face generator or None) as functions under the current precision plans."""
        g = precisions.plan("edn.generator", self.device, self.precision).runner(self.netG)
        if self.faceG is None:
            return g, None
        return g, precisions.plan("edn.face_generator", self.device, self.precision).runner(self.faceG)

    @classmethod
    def from_dir(cls, target_dir: Path, device: torch.device | None = None) -> DanceTransferPipeline:
        from pipelines.common.device import MODELS, pick_device
        from pipelines.common.errors import ModelUnavailableError
        from pipelines.dance.networks import GeneratorConfig

        device = device or pick_device()
        spec = read_json(target_dir / "model" / "generator.json")
        g_file, f_file = target_dir / "model" / "net_G.safetensors", target_dir / "model" / "net_Gface.safetensors"
        if not spec or not g_file.exists():
            raise ModelUnavailableError(f"Target {target_dir.name!r} has no trained generator yet; train it first (step 1).")
        stamp = g_file.stat().st_mtime_ns

        def load(file: Path, config: dict[str, Any]) -> torch.nn.Module:
            from safetensors.torch import load_file

            net = GeneratorConfig.from_dict(config).build()
            net.load_state_dict(load_file(str(file)), strict=True)
            return net.to(device).eval().requires_grad_(False)

        key = f"dance:{target_dir.resolve()}:{stamp}@{device}"
        netG = MODELS.get(key + ":G", lambda: load(g_file, spec["generator"]))
        faceG = None
        if spec.get("face_generator") and f_file.exists():
            faceG = MODELS.get(key + ":Gface", lambda: load(f_file, spec["face_generator"]))
        size = (int(spec["width"]), int(spec["height"]))
        parts = label_parts(read_json(target_dir / "target.json"))
        return cls(netG, faceG, size, int(spec.get("face_box") or 0), load_poses(target_dir / "poses.npz"), device, parts)

    def normalized(self, source_poses: Sequence[Any], notes: list[str]) -> list[Any]:
        """Source poses fitted to the target (global normalisation + 7-frame median), one per source
        frame: frames outside a full window, or without a person, take the nearest smoothed pose."""
        from pipelines.common.errors import InputError
        from pipelines.dance.normalize import normalize_sequence

        try:
            norm = normalize_sequence(list(source_poses), self.target_poses)
        except InputError as exc:
            notes.append(f"Pose normalisation skipped ({exc}); the source poses are used as they are.")
            return list(source_poses)
        if not norm.poses:
            notes.append("Pose normalisation skipped (fewer than 7 frames with a person).")
            return list(source_poses)
        centres = np.asarray(norm.frames)
        return [norm.poses[int(np.abs(centres - n).argmin())] for n in range(len(source_poses))]

    def label_for(self, pose: Any) -> tuple[np.ndarray, FaceBox | None]:
        """One stick-figure label at the model's size (blank without a person) and its face box,
        drawing only the parts the target's labels drew."""
        from pipelines.dance.render import render_label

        if pose is None or pose.is_empty:
            return np.full((self.height, self.width, 3), 255, np.uint8), None
        label, _ = render_label(for_labels(pose, self.parts), (self.width, self.height))
        box = scaled_face_box(pose.body, self.width, self.height, self.face_box) if self.face_box else None
        return label, box

    def labels(self, poses: Sequence[Any]) -> tuple[list[np.ndarray], list[FaceBox | None]]:
        """:meth:`label_for` over a sequence: (labels, face boxes)."""
        pairs = [self.label_for(p) for p in poses]
        return [label for label, _ in pairs], [box for _, box in pairs]

    @torch.inference_mode()
    def generate(
        self, labels: Sequence[np.ndarray], boxes: Sequence[FaceBox | None], progress: ProgressFn | None = None
    ) -> list[np.ndarray]:
        """Frames in order, each fed back as the previous one."""
        out = []
        tensors = (label_to_tensor(lab).to(self.device) for lab in labels)
        with oom_guard(OOM_HINT):
            for t, step in enumerate(generate_sequence(*self.networks(), tensors, list(boxes))):
                stop_point()  # progress is reported every 5 frames; a Stop is honoured at each
                out.append(tensor_to_uint8(step.frame))
                if progress and (t % 5 == 0 or t == len(labels) - 1):
                    progress(0.3 + 0.65 * (t + 1) / len(labels), f"generating frame {t + 1}/{len(labels)}")
        return out

    def __call__(
        self,
        source_video: str | os.PathLike | None = None,
        *,
        motion: Motion | None = None,
        side_by_side: bool = False,
        normalize: bool = True,
        progress: ProgressFn | None = None,
        find_hands: bool | None = None,
        first_seconds: float | None = None,
    ) -> TransferResult:
        """Source video (or ready ``motion``: frames, canvas poses, fps) -> MP4 of the target dancing,
        the source's length and fps, with its audio; ``side_by_side``: source | stick figure | result.
        ``find_hands``: search the source's hands when the target's labels have them (None: when
        a GPU runs the hand network; see :func:`pipelines.dance.target.hand_estimator`).
        ``first_seconds``: only the start of the source (None or 0: the whole clip), as Animate
        and Colorize video do; poses are searched in those frames only, the sound is cut to match."""
        from pipelines.common.errors import InputError
        from pipelines.common.media import frames_in_first, iter_frames, new_output_path, write_video

        report = progress or (lambda f, m: None)
        notes: list[str] = []
        audio = None
        if motion is not None:
            fps = float(motion[2])
            used = frames_in_first(first_seconds, fps)
            poses = list(motion[1])[:used]
            if len(poses) < len(motion[1]):
                notes.append(f"Used the first {len(poses) / fps:.1f} s of the motion ({len(poses)} of {len(motion[1])} frames).")

            def source_frames() -> Iterator[np.ndarray]:
                return itertools.islice(motion[0], used)
        elif source_video is not None:
            report(0.02, "finding the dancer's poses")
            hands = None
            if "hands" in self.parts:
                hands, why = hand_estimator(find_hands)
                if hands is None:
                    notes.append(f"{why} This target's labels were drawn with hands, so its generated hands will be poorer.")
            poses, info = detect_video_poses(source_video, lambda f, m: report(0.02 + 0.2 * f, m), hands=hands,
                                             first_seconds=first_seconds)  # fmt: skip
            fps, audio = info.fps, source_video
            used = len(poses)
            if used < info.n_frames:
                notes.append(f"Used the first {used / fps:.1f} s of the {info.duration:.1f} s source video "
                             f"({used} of {info.n_frames} frames).")  # fmt: skip

            def source_frames() -> Iterator[np.ndarray]:
                return itertools.islice(iter_frames(source_video), used)
        else:
            raise InputError("Upload the dancing source video (or use the sample motion).")
        if all(p is None or p.is_empty for p in poses):
            raise InputError("No person was found in the source video; use a video with one dancer in full view.")
        report(0.25, "normalising the poses to the target")
        poses = self.normalized(poses, notes) if normalize else poses
        n = len(poses)

        def frames_out() -> Iterator[np.ndarray]:
            """Streamed to the encoder: a minute of video never sits in memory."""
            shown: list[np.ndarray] = []
            boxes: list[FaceBox | None] = []

            def label_tensors() -> Iterator[torch.Tensor]:
                for pose in poses:
                    label, box = self.label_for(pose)
                    shown.append(label)
                    boxes.append(box)
                    yield label_to_tensor(label).to(self.device)

            sources = source_frames() if side_by_side else None
            with torch.inference_mode(), oom_guard(OOM_HINT):
                for t, step in enumerate(generate_sequence(*self.networks(), label_tensors(), _Lookup(boxes))):
                    stop_point()  # progress is reported every 5 frames; a Stop is honoured at each
                    frame = tensor_to_uint8(step.frame)
                    label = shown.pop(0)
                    if sources is not None:
                        src = next(sources, None)
                        src = np.full_like(label, 0) if src is None else letterbox(np.asarray(src), (self.width, self.height))
                        frame = np.concatenate([src, label, frame], axis=1)
                    if t % 5 == 0 or t == n - 1:
                        report(0.3 + 0.65 * (t + 1) / n, f"generating frame {t + 1}/{n}")
                    yield frame

        out = write_video(frames_out(), new_output_path(".mp4", prefix="dance"), fps, audio_from=audio)
        report(1.0, "done")
        return TransferResult(out, n, fps, notes)
