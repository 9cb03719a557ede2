"""Dance: the user-facing API of Everybody Dance Now.

A **target** is the person who will dance: one video of them (or the offline procedural sample),
prepared once (frames, poses) and trained once per target (a background job, see
:mod:`pipelines.dance.jobs`). A **transfer** takes a source dancer's video and makes the target
perform its motion::

    job = train_target(video="me.mp4", name="me", minutes=20)   # returns at once: the target id
    training_status(job)                                         # poll: state, step, held-out L1, preview
    out = transfer(job, "dancer.mp4", side_by_side=True)          # H.264 with the dancer's audio
    list_targets()

Targets live under ``$NOSTALGIA_DATA_DIR/dance_targets`` (default ``outputs/dance_targets`` in the
repository); each is a self-contained folder, so trained targets survive restarts and can be reused.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.device import pick_device
from pipelines.common.errors import InputError
from pipelines.dance import jobs
from pipelines.dance.config import TrainConfig
from pipelines.dance.files import read_json, write_json
from pipelines.dance.target import prepare_target_from_arrays
from pipelines.dance.transfer import DanceTransferPipeline, TransferResult

ProgressFn = Callable[[float, str], None]

#: Model sizes offered in the UI. "paper" is the global stage of the paper (netG global, ngf 64,
#: 4 downsamplings, 9 blocks, 512x256) and "paper-local" its second stage (LocalEnhancer ngf 32 at
#: 1024x512, 3 discriminator scales), which continues a target trained with "paper"; the smaller
#: ones trade quality for speed on a CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(width=512, height=256, ngf=64, n_downsampling=4, n_blocks=9, ndf=64, num_D=2),
    "paper-local": dict(width=1024, height=512, netG="local", ngf=32, n_downsampling=4, n_blocks=9, n_blocks_local=3,
                        ndf=64, num_D=3),
    "fast": dict(width=256, height=128, ngf=32, n_downsampling=4, n_blocks=6, ndf=32, num_D=2, face_ngf=32),
    "tiny": dict(width=128, height=64, ngf=16, n_downsampling=3, n_blocks=3, ndf=16, num_D=2, face_ngf=16,
                 face_n_blocks=2),
}  # fmt: skip
SAMPLE_TARGET_ID = "sample"


def data_dir() -> Path:
    """Where targets live: ``$NOSTALGIA_DATA_DIR/dance_targets`` or ``outputs/dance_targets``."""
    env = os.environ.get("NOSTALGIA_DATA_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "outputs"
    path = base / "dance_targets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _target_dir(target_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", target_id or ""):
        raise InputError(f"Unknown dance target {target_id!r}.")
    path = data_dir() / target_id
    if not (path / "target.json").exists():
        raise InputError(f"Unknown dance target {target_id!r}; pick one from the list or train a new one.")
    return path


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:40]
    return f"{slug or 'target'}-{uuid.uuid4().hex[:6]}"


# --------------------------------------------------------------------------- the sample


SAMPLE_SECONDS = 4.0
SAMPLE_FPS = 15.0


def sample_target_arrays(seconds: float = SAMPLE_SECONDS, fps: float = SAMPLE_FPS) -> tuple[list[np.ndarray], list[Any], float]:
    """Frames, poses (fitted on EDN's 1080p canvas) and fps of Part A's procedural sample dancer."""
    from pipelines.dance.sample import make_sample_target

    frames, poses = make_sample_target(seconds=seconds, fps=fps)
    return frames, _to_canvas(frames, poses), fps


def sample_motion_arrays(seconds: float = SAMPLE_SECONDS, fps: float = SAMPLE_FPS) -> tuple[list[np.ndarray], list[Any], float]:
    """The sample source motion (another choreography, smaller and higher in the frame)."""
    from pipelines.dance.sample import make_sample_motion

    frames, poses = make_sample_motion(seconds=seconds, fps=fps)
    return frames, _to_canvas(frames, poses), fps


def _to_canvas(frames: list[np.ndarray], poses: list[Any]) -> list[Any]:
    from pipelines.dance.render import fit_pose_to_canvas

    shape = np.asarray(frames[0]).shape
    return [p if p.is_empty else fit_pose_to_canvas(p, shape) for p in poses]


# --------------------------------------------------------------------------- targets


@dataclass
class TargetInfo:
    id: str
    name: str
    source: str
    n_frames: int
    fps: float
    state: str
    step: int
    heldout_l1: float | None
    trained: bool  # a generator has been exported (usable for transfer)
    size: str
    created: float

    @property
    def label(self) -> str:
        l1 = f", held-out L1 {self.heldout_l1:.3f}" if self.heldout_l1 is not None else ""
        return f"{self.name} ({self.state}, step {self.step}{l1}, {self.size or 'untrained'})"


def target_info(target_id: str) -> TargetInfo:
    path = _target_dir(target_id)
    meta = read_json(path / "target.json")
    status = jobs.read_status(path)
    model = read_json(path / "model" / "generator.json")
    history = status.get("heldout_l1") or []
    return TargetInfo(
        id=target_id, name=meta.get("name", target_id), source=meta.get("source", ""),
        n_frames=int(meta.get("n_frames", 0)), fps=float(meta.get("fps", 0.0)), state=status.get("state", "none"),
        step=int(status.get("step", model.get("step", 0)) or 0), heldout_l1=history[-1][1] if history else None,
        trained=(path / "model" / "net_G.safetensors").exists(),
        size=f"{model['width']}x{model['height']}" if model else "", created=float(meta.get("created", 0.0)),
    )  # fmt: skip


def list_targets() -> list[TargetInfo]:
    """Every prepared target, newest first."""
    found = []
    for path in data_dir().iterdir():
        if (path / "target.json").exists():
            try:
                found.append(target_info(path.name))
            except InputError:
                continue
    return sorted(found, key=lambda t: t.created, reverse=True)


def create_target(video: str | os.PathLike | None = None, *, name: str | None = None, sample: bool = False) -> str:
    """Register a target folder. A video is copied in and analysed by the training job (pose
    estimation can take minutes); the sample's frames and poses are stored at once."""
    if sample:
        path = data_dir() / SAMPLE_TARGET_ID
        if not (path / "poses.npz").exists():
            frames, poses, fps = sample_target_arrays()
            prepare_target_from_arrays(path, frames, poses, name=name or "Sample dancer", fps=fps,
                                       source="procedural sample")  # fmt: skip
        return SAMPLE_TARGET_ID
    if video is None:
        raise InputError("Upload a video of the target person (or pick the sample).")
    from pipelines.common.media import probe_video

    video = Path(video)
    info = probe_video(video)
    target_id = _slug(name or video.stem)
    path = data_dir() / target_id
    path.mkdir(parents=True)
    shutil.copyfile(video, path / "source.mp4")
    write_json(path / "target.json", {
        "name": name or video.stem, "source": video.name, "video": "source.mp4", "fps": info.fps,
        "n_frames": info.n_frames, "frame_shape": [info.height, info.width], "created": time.time(),
    })  # fmt: skip
    return target_id


def train_config(preset: str = "fast", *, minutes: float = 10.0, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a preset name plus overrides; larger batches and AMP on a GPU."""
    if preset not in PRESETS:
        raise InputError(f"Unknown model size {preset!r}; choose one of {', '.join(PRESETS)}.")
    values: dict[str, Any] = {**PRESETS[preset], "time_budget_min": float(minutes)}
    if pick_device(overrides.get("device")).type == "cuda":
        values["batch_size"] = {"paper-local": 1, "paper": 4, "fast": 8, "tiny": 16}[preset]
    values.update(overrides)
    config = TrainConfig.from_dict(values)
    config.validate()
    return config


def train_target(
    video: str | os.PathLike | None = None,
    *,
    sample: bool = False,
    target_id: str | None = None,
    name: str | None = None,
    preset: str = "fast",
    minutes: float = 10.0,
    resume: bool = True,
    background: bool = True,
    **overrides: Any,
) -> str:
    """Start (or resume) training a target and return its id at once (``background=True``: a
    separate process, so it survives the browser closing); ``background=False`` trains here."""
    if target_id is None:
        target_id = create_target(video, name=name, sample=sample)
    path = _target_dir(target_id)
    config = train_config(preset, minutes=minutes, **overrides)
    jobs.launch(path, config, resume=resume, background=background)
    return target_id


def training_status(target_id: str) -> dict[str, Any]:
    """The job's status (see :class:`~pipelines.dance.trainer.Status`) plus ``preview`` (path or None) and a
    one-line ``summary`` for the UI."""
    path = _target_dir(target_id)
    status = jobs.read_status(path)
    preview = path / "job" / "preview.png"
    status["preview"] = str(preview) if preview.exists() else None
    status["target"] = target_id
    state = status.get("state", "none")
    history = status.get("heldout_l1") or []
    parts = [f"{state}"]
    if status.get("max_steps"):
        parts.append(f"step {status.get('step', 0)}")
        parts.append(f"{status.get('elapsed_s', 0) / 60:.1f}/{status.get('budget_s', 0) / 60:.0f} min")
    if status.get("steps_per_s"):
        parts.append(f"{status['steps_per_s']:.2f} steps/s")
    if history:
        parts.append(f"held-out L1 {history[0][1]:.3f} -> {history[-1][1]:.3f}")
    if status.get("error"):
        parts.append(f"error: {status['error']}")
    status["summary"] = " | ".join(parts)
    return status


def stop_training(target_id: str) -> None:
    jobs.request_stop(_target_dir(target_id))


# --------------------------------------------------------------------------- transfer


def transfer(
    target_id: str,
    source_video: str | os.PathLike | None = None,
    *,
    sample_motion: bool = False,
    side_by_side: bool = False,
    normalize: bool = True,
    progress: ProgressFn | None = None,
) -> TransferResult:
    """Make the target perform the source video's motion (or the sample motion); see
    :class:`~pipelines.dance.transfer.DanceTransferPipeline`."""
    pipe = DanceTransferPipeline.from_dir(_target_dir(target_id))
    motion = sample_motion_arrays() if sample_motion else None
    return pipe(source_video, motion=motion, side_by_side=side_by_side, normalize=normalize, progress=progress)
