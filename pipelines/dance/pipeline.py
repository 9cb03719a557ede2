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

**Owners.** Every function that touches a target takes ``owner`` (a token for the visitor, see
:mod:`pipelines.common.jobs`): in public mode a visitor sees and acts on their own targets only
(a foreign target is answered as unknown), target ids are unguessable, and the procedural sample
is a read-only source: training "the sample" copies it into a new target of the caller's, under
the name they typed. Trainings start through the machine-wide :func:`~pipelines.common.jobs.training_slots`
(a cap on processes, one running and a few waiting per visitor, a wall-time limit); idle targets
are removed after a TTL and beyond a disk budget, oldest first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipelines.common import jobs as common_jobs
from pipelines.common import precision as precisions
from pipelines.common.device import pick_device
from pipelines.common.disk import read_json, write_json
from pipelines.common.errors import InputError
from pipelines.common.progress import ProgressFn
from pipelines.dance import jobs
from pipelines.dance.config import TrainConfig
from pipelines.dance.target import label_parts, prepare_target_from_arrays
from pipelines.dance.transfer import DanceTransferPipeline, TransferResult

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
DEFAULT_PRESET = "fast"  # of train_target and the command line
DEFAULT_MINUTES = 10.0  # time budget of one training session
SAMPLE_SOURCE = ".sample"  # the procedural sample's frames and poses: read-only, copied into a target to train


def data_dir() -> Path:
    """Where targets live: ``$NOSTALGIA_DATA_DIR/dance_targets`` or ``outputs/dance_targets``."""
    path = common_jobs.data_dir() / "dance_targets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _target_dir(target_id: str, owner: str | None = None) -> Path:
    """The folder of ``target_id`` if ``owner`` may use it; else the same error as for an unknown id."""
    unknown = InputError(f"Unknown dance target {str(target_id)[:80]!r}; pick one of yours from the list or train a new one.")
    if not common_jobs.valid_job_id(target_id) or target_id.startswith("."):
        raise unknown
    path = data_dir() / target_id
    if not (path / "target.json").exists() or not common_jobs.owns(path, owner):
        raise unknown
    return path


def _slot_key(target_id: str) -> str:
    return f"dance/{target_id}"


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
    labels: str = "body+face"  # what its labels draw (target.json label_parts)

    @property
    def label(self) -> str:
        l1 = f", held-out L1 {self.heldout_l1:.3f}" if self.heldout_l1 is not None else ""
        return f"{self.name} ({self.state}, step {self.step}{l1}, {self.size or 'untrained'})"


def target_info(target_id: str, owner: str | None = None) -> TargetInfo:
    path = _target_dir(target_id, owner)
    meta = read_json(path / "target.json")
    status = _status(target_id, path)
    model = read_json(path / "model" / "generator.json")
    history = status.get("heldout_l1") or []
    return TargetInfo(
        id=target_id, name=meta.get("name", target_id), source=meta.get("source", ""),
        n_frames=int(meta.get("n_frames", 0)), fps=float(meta.get("fps", 0.0)), state=status.get("state", "none"),
        step=int(status.get("step", model.get("step", 0)) or 0), heldout_l1=history[-1][1] if history else None,
        trained=(path / "model" / "net_G.safetensors").exists(),
        size=f"{model['width']}x{model['height']}" if model else "", created=float(meta.get("created", 0.0)),
        labels="+".join(label_parts(meta)),
    )  # fmt: skip


def list_targets(owner: str | None = None) -> list[TargetInfo]:
    """The targets ``owner`` may see (in public mode their own; locally every one), newest first."""
    found = []
    for path in common_jobs.owned_folders(data_dir(), owner):
        if (path / "target.json").exists():
            try:
                found.append(target_info(path.name, owner))
            except InputError:
                continue
    return sorted(found, key=lambda t: t.created, reverse=True)


def _sample_source() -> Path:
    """The procedural sample dancer's frames and poses, prepared once (read-only afterwards)."""
    path = data_dir() / SAMPLE_SOURCE
    if not (path / "target.json").exists():
        frames, poses, fps = sample_target_arrays()
        partial = data_dir() / f".partial-sample-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        prepare_target_from_arrays(partial, frames, poses, name="Sample dancer", fps=fps, source="procedural sample")
        try:
            os.replace(partial, path)
        except OSError:  # another request prepared it at the same moment
            shutil.rmtree(partial, ignore_errors=True)
    return path


def _new_target_dir(name: str, owner: str | None) -> tuple[str, Path]:
    _prune_targets()
    target_id = common_jobs.new_job_id(name)
    path = data_dir() / target_id
    path.mkdir(parents=True)
    common_jobs.claim(path, owner or "local")
    return target_id, path


def create_target(
    video: str | os.PathLike | None = None, *, name: str | None = None, sample: bool = False, owner: str | None = None,
    hands: bool | None = None,
) -> str:
    """Make a new target of ``owner``'s: from a video (copied in; its poses are found by the
    training job, which can take minutes) or a copy of the procedural sample dancer. ``name`` is
    kept (shortened to 40 characters); the id is ``<name>-<random>``. ``hands``: find the hands
    for the labels (None: when the hand network is installed and a GPU runs it; see
    :func:`pipelines.dance.target.hand_estimator`)."""
    if sample:
        source = _sample_source()
        title = common_jobs.short_name(name, "Sample dancer")
        target_id, path = _new_target_dir(title, owner)
        for item in ("frames.npz", "poses.npz"):
            shutil.copyfile(source / item, path / item)
        meta = read_json(source / "target.json")
        write_json(path / "target.json", {**meta, "name": title, "created": time.time()})
        return target_id
    if video is None:
        raise InputError("Upload a video of the target person (or pick the sample).")
    from pipelines.common.media import probe_video

    video = Path(video)
    info = probe_video(video)
    title = common_jobs.short_name(name or video.stem)
    target_id, path = _new_target_dir(title, owner)
    shutil.copyfile(video, path / "source.mp4")
    write_json(path / "target.json", {
        "name": title, "source": common_jobs.short_name(video.name, "video"), "video": "source.mp4",
        "fps": info.fps, "n_frames": info.n_frames, "frame_shape": [info.height, info.width], "created": time.time(),
        "hands": "auto" if hands is None else bool(hands),
    })  # fmt: skip
    return target_id


_last_prune = [0.0]


def _prune_targets(every_s: float = 60.0) -> None:
    """Targets idle past the TTL, then the oldest beyond the disk budget (never a running one)."""
    if time.monotonic() - _last_prune[0] < every_s:
        return
    _last_prune[0] = time.monotonic()
    slots = common_jobs.training_slots()
    active = {key.split("/", 1)[1] for key in slots.active_keys() if key.startswith("dance/")}
    active |= {p.name for p in data_dir().iterdir() if jobs.read_status(p).get("running")}
    common_jobs.prune_job_folders(data_dir(), slots.policy, active=active)


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
    preset: str = DEFAULT_PRESET,
    minutes: float = DEFAULT_MINUTES,
    resume: bool = True,
    background: bool = True,
    owner: str | None = None,
    nproc: int = 1,
    hands: bool | None = None,
    **overrides: Any,
) -> str:
    """Start (or resume) training a target and return its id at once. ``target_id`` continues one
    of ``owner``'s targets; otherwise a new target is made from ``video`` or a copy of the sample.
    ``background=True`` queues a separate process on the machine-wide training slots (it
    survives the browser closing; it may wait for a free slot: its state says "queued");
    ``background=False`` trains here and now. ``nproc`` processes (GPUs) train together under
    torchrun; the batch is then their global batch."""
    config = train_config(preset, minutes=minutes, **overrides)
    slots = common_jobs.training_slots()
    if minutes > slots.policy.max_wall_minutes:
        raise InputError(f"A training session may last at most {slots.policy.max_wall_minutes:g} minutes on this server.")
    if target_id is None:
        target_id = create_target(video, name=name, sample=sample, owner=owner, hands=hands)
    path = _target_dir(target_id, owner)
    if not background:
        jobs.launch(path, config, resume=resume, background=False, nproc=nproc)
        return target_id
    key = _slot_key(target_id)
    if slots.state(key) is not None:
        raise InputError(f"Target {target_id} is already {'training' if slots.state(key) == 'running' else 'waiting to train'}.")
    jobs.prepare_launch(path, config, resume=resume, nproc=nproc)

    def start() -> subprocess.Popen:
        return jobs.spawn(path, nproc)

    def started(pid: int) -> None:
        jobs.record_pid(path, pid)

    # the time budget, plus time to find poses and render the data, plus a margin
    wall_s = config.time_budget_min * 60 * 1.25 + 900
    position = slots.submit(key, owner or "local", start, wall_s=wall_s, on_start=started)
    if position:
        jobs.set_queued(path, position)
    common_jobs.touch(path)
    return target_id


def _status(target_id: str, path: Path) -> dict[str, Any]:
    """The job's status with the scheduler's view: a job waiting for a slot says where it is in
    the queue; a queued job the scheduler no longer knows (the app restarted) is interrupted."""
    status = jobs.read_status(path)
    slots = common_jobs.training_slots()
    key = _slot_key(target_id)
    where = slots.state(key)
    if status.get("state") == "queued" and not status.get("pid"):
        if where == "queued":
            status["queue_position"] = slots.position(key)
        elif where is None:
            status["state"] = "interrupted"
    return status


def training_status(target_id: str, owner: str | None = None) -> dict[str, Any]:
    """The job's status (see :class:`~pipelines.dance.trainer.Status`) plus ``preview`` (path or
    None) and a one-line ``summary`` for the UI."""
    path = _target_dir(target_id, owner)
    status = _status(target_id, path)
    preview = path / "job" / "preview.png"
    status["preview"] = str(preview) if preview.exists() else None
    status["target"] = target_id
    status["name"] = read_json(path / "target.json").get("name", target_id)
    state = status.get("state", "none")
    history = status.get("heldout_l1") or []
    parts = [f"{state}" if state != "none" else "not trained yet"]
    if status.get("queue_position"):
        parts[0] = f"queued ({status['queue_position']} in line for a training slot)"
    if status.get("max_steps") and state != "none":
        parts.append(f"step {status.get('step', 0)}")
        parts.append(f"{status.get('elapsed_s', 0) / 60:.1f}/{status.get('budget_s', 0) / 60:.0f} min")
    if status.get("steps_per_s"):
        parts.append(f"{status['steps_per_s']:.2f} steps/s")
    if history:
        parts.append(f"held-out L1 {history[0][1]:.3f} -> {history[-1][1]:.3f}")
    if status.get("quality"):
        parts.append(quality_summary(status["quality"]))
    if status.get("error"):
        parts.append(f"error: {status['error']}")
    status["summary"] = " | ".join(parts)
    return status


def label_preview(target_id: str, owner: str | None = None, count: int = 3, height: int = 360) -> tuple[np.ndarray | None, str]:
    """What the target's labels draw, to look at: ``count`` of its poses (spread over the video)
    drawn as its labels draw them (only the parts in ``label_parts``), each cropped around the
    person on EDN's 1080p canvas and shown ``height`` px high, side by side; and a line saying
    which parts the labels carry (and why hands were left out, when they were). (None, why)
    before the poses are found (the training job's first step, for a video target)."""
    from pipelines.dance.render import render_canvas
    from pipelines.dance.target import for_labels, load_poses

    path = _target_dir(target_id, owner)
    meta = read_json(path / "target.json")
    parts = label_parts(meta)
    drawn = "Labels draw: " + ", ".join({"body": "body (18 points)", "face": "face", "hands": "hands (21 points each)"}[p]
                                        for p in parts)  # fmt: skip
    if meta.get("label_note"):
        drawn += f". {meta['label_note']}"
    if not (path / "poses.npz").exists():
        return None, "The labels show here once the person's poses are found (the first step of training)."
    found = [p for p in load_poses(path / "poses.npz") if not p.is_empty]
    if not found:
        return None, "No person was found in the target's video, so it has no labels."
    picks = [found[round(i * (len(found) - 1) / max(1, count - 1))] for i in range(min(count, len(found)))]
    crops = []
    for pose in picks:
        canvas = render_canvas(for_labels(pose, parts))
        crop = _around_person(canvas, pose)
        width = max(1, round(crop.shape[1] * height / crop.shape[0]))
        crops.append(np.asarray(Image.fromarray(crop).resize((width, height), Image.LANCZOS)))
        crops.append(np.full((height, 8, 3), 200, np.uint8))  # a grey gap between poses
    return np.concatenate(crops[:-1], axis=1), drawn


def _around_person(canvas: np.ndarray, pose: Any, margin: int = 40) -> np.ndarray:
    """The part of a label canvas around every drawn point of ``pose`` (body, face and hands)."""
    points = np.concatenate([pose.body, pose.face, pose.hand_right, pose.hand_left])
    seen = points[points[:, 2] > 0, :2]
    rows, cols = canvas.shape[:2]
    x0, y0 = np.maximum(seen.min(0) - margin, 0).astype(int)
    x1, y1 = np.minimum(seen.max(0) + margin, (cols, rows)).astype(int)
    return canvas[y0:y1, x0:x1]


def quality_summary(entries: list[dict[str, Any]]) -> str:
    """The latest held-out figures of each stage, e.g. ``held-out SSIM/LPIPS: global 0.412/0.301,
    face 0.420/0.296``; when LPIPS could not be measured, the reason once."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in entries:
        latest[entry["stage"]] = entry  # later entries (a continued session) replace earlier ones
    figures = []
    for stage, q in latest.items():
        lpips = f"{q['lpips']:.3f}" if q.get("lpips") is not None else "n/a"
        figures.append(f"{stage} {q['ssim']:.3f}/{lpips} (step {q['step']})")
    notes = {q.get("lpips_note") for q in latest.values()} - {"", None}
    return f"held-out SSIM/LPIPS: {', '.join(figures)}" + "".join(f" [{n}]" for n in sorted(notes))


def stop_training(target_id: str, owner: str | None = None) -> str:
    """Stop ``owner``'s target's training in whatever state it is; returns what happened, for
    the user: "dequeued" (it had not started), "stopping" (it checkpoints and ends at its next
    step), or "not running" (nothing to stop: it is done, stopped, failed or never trained)."""
    path = _target_dir(target_id, owner)
    slots = common_jobs.training_slots()
    if slots.dequeue(_slot_key(target_id)):
        jobs.mark_stopped(path, "Stopped before it started (it was waiting for a training slot).")
        return "dequeued"
    status = jobs.read_status(path)
    if status.get("state") in jobs.ACTIVE_STATES and (slots.state(_slot_key(target_id)) == "running" or status.get("running")):
        jobs.request_stop(path)  # honoured while preparing and between steps, after a checkpoint
        return "stopping"
    return "not running"


# --------------------------------------------------------------------------- transfer


def transfer(
    target_id: str,
    source_video: str | os.PathLike | None = None,
    *,
    sample_motion: bool = False,
    side_by_side: bool = False,
    normalize: bool = True,
    progress: ProgressFn | None = None,
    owner: str | None = None,
    hands: bool | None = None,
    precision: str | None = None,
    first_seconds: float | None = None,
) -> TransferResult:
    """Make the target perform the source video's motion (or the sample motion); see
    :class:`~pipelines.dance.transfer.DanceTransferPipeline`. ``precision``: ``auto``/``exact``
    for the pose network and the generators (:mod:`pipelines.common.precision`);
    ``first_seconds``: only the start of the source (None or 0: the whole clip)."""
    path = _target_dir(target_id, owner)
    common_jobs.touch(path)
    with precisions.using(precision):
        pipe = DanceTransferPipeline.from_dir(path)
        motion = sample_motion_arrays() if sample_motion else None
        return pipe(source_video, motion=motion, side_by_side=side_by_side, normalize=normalize, progress=progress,
                    find_hands=hands, first_seconds=first_seconds)  # fmt: skip
