"""Training a target person: Everybody Dance Now's pose-to-video GAN on one video of that person.

A training run is a **job whose whole state is on disk**, so it survives the browser closing,
the app restarting, and interruptions (it resumes from its last checkpoint)::

    <target dir>/
      target.json                 name, where the frames came from, fps, frame count
      poses.npz                   BODY_23/face/hand keypoints per frame (canvas pixels), once
      source.mp4 | frames.npz     the target video (uploads) or its frames (the procedural sample)
      data_<W>x<H>_f<box>.npz     frames, labels and face boxes at one training size, once
      job/config.json             the TrainConfig of the run
      job/status.json             state, step, losses, held-out L1 history, messages (atomic writes)
      job/checkpoint.pt           G, D, face G/D, optimisers, step, elapsed time (every N steps)
      job/preview.png             label | generated | real on a held-out frame
      job/log.txt                 the job's log
      job/stop                    present = please stop at the next step (checkpoint first)
      model/generator.json        GeneratorConfig + size + face settings, for transfer
      model/net_G.safetensors     the generator (original key names: latest_net_G.pth layout)
      model/net_Gface.safetensors the face residual generator (latest_net_Gface.pth layout)

The loop is the original ``train_fullts.py`` + ``Pix2PixHDModel.forward`` with temporal
smoothing: for a pair of consecutive frames, ``I0 = G(cat(l0, 0))``, ``I1 = G(cat(l1, I0))``;
the multiscale discriminator sees ``cat(l0, l1, I0, I1)``; losses LSGAN + feature matching
(+ VGG19 when its ImageNet weights are cached, else the original ``--use_l1`` term instead,
logged). In the face stage (the last ``face_fraction`` of each session) G is frozen and only the
face residual generator learns, with the face discriminator on the 6-channel face crops, as the
original face stage does. ``netG="local"`` is the paper's second stage: a LocalEnhancer at twice
the size whose inner global generator starts from the target's finished global stage
(``--load_pretrain``; ``niter_fix_global`` as the original). Adam (lr 2e-4, beta1 0.5), constant
then linearly decayed to 0 over the second half of each phase (``niter`` = ``niter_decay``).

Differences from the original, on purpose: a session is bounded by a time budget (and a step
cap) instead of epochs, and one session trains the body generator then the face GAN; batches of
several pairs and bf16/fp16 autocast on GPU; frames are sampled as random consecutive pairs.

Run a job: ``python -m pipelines.dance.training <target dir>`` (what :func:`launch` spawns).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.common.device import pick_device
from pipelines.common.errors import InputError
from pipelines.dance import losses
from pipelines.dance.networks import (
    GeneratorConfig,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    batch_norm,
    check_frame_size,
    init_weights,
)
from pipelines.dance.transfer import generate_sequence, tensor_to_uint8

log = logging.getLogger("nostalgia.dance")

EDN_LABEL_WIDTH = 1024  # the published face box (128 px) is defined at 1024x512 labels
EDN_FACE_BOX = 128


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Everything a run needs; saved as ``job/config.json``. Defaults = the global stage of the
    paper at a size a single GPU trains in minutes (512x256, ngf 64, 4 down, 9 blocks)."""

    width: int = 512
    height: int = 256
    netG: str = "global"  # noqa: N815 - "local": the paper's second stage (LocalEnhancer, 2x the global size)
    ngf: int = 64  # local: the enhancer's ngf (32); its global part has 2 * ngf
    n_downsampling: int = 4
    n_blocks: int = 9
    n_blocks_local: int = 3
    niter_fix_global: int = 0  # local stage: steps that train only the enhancer layers (the original option)
    ndf: int = 64
    num_D: int = 2  # noqa: N815 - the original option name
    n_layers_D: int = 3  # noqa: N815
    lambda_feat: float = 10.0
    lambda_l1: float = 10.0  # the original --lambda_A, used with --use_l1
    use_vgg: bool = True  # only if VGG19 ImageNet weights are in the weights cache
    use_l1: bool | None = None  # None = on exactly when the VGG term is off
    lr: float = 2e-4
    beta1: float = 0.5
    lr_decay: bool = True  # the original's niter/niter_decay: constant, then linear to 0 over the 2nd half
    batch_size: int = 1
    max_steps: int = 20000
    time_budget_min: float = 30.0
    face: bool = True  # train the face residual GAN in the last face_fraction of the run
    face_fraction: float = 0.2
    face_ngf: int = 64
    face_n_downsampling: int = 3
    face_n_blocks: int = 5
    checkpoint_every: int = 200
    preview_every: int = 50
    eval_every: int = 100
    holdout_fraction: float = 0.1
    holdout_min: int = 2
    amp: bool = True  # autocast on CUDA only
    seed: int = 0
    device: str | None = None
    threads: int | None = None  # CPU threads for torch (None: leave as is)

    def generator(self) -> GeneratorConfig:
        if self.netG == "local":
            return GeneratorConfig("local", 6, 3, self.ngf, self.n_downsampling, self.n_blocks, 1, self.n_blocks_local)
        return GeneratorConfig("global", 6, 3, self.ngf, self.n_downsampling, self.n_blocks)

    def face_generator(self) -> GeneratorConfig:
        return GeneratorConfig("global", 6, 3, self.face_ngf, self.face_n_downsampling, self.face_n_blocks)

    @property
    def face_box(self) -> int:
        """Face crop side at this width: EDN's 128 px at 1024 wide, scaled, a multiple of 8."""
        side = EDN_FACE_BOX * self.width / EDN_LABEL_WIDTH
        unit = 2**self.face_n_downsampling
        return max(unit, round(side / unit) * unit)

    def validate(self) -> None:
        if self.netG not in ("global", "local"):
            raise InputError(f"Unknown generator {self.netG!r}: global or local.")
        try:
            check_frame_size(self.height, self.width, self.generator().stride)
        except ValueError as exc:
            raise InputError(f"Training size: {exc}.") from None
        if self.time_budget_min <= 0 or self.max_steps <= 0 or self.batch_size <= 0:
            raise InputError("Training needs a positive time budget, step count and batch size.")
        if self.face_box > min(self.width, self.height):
            raise InputError(f"The face box ({self.face_box} px) does not fit a {self.width}x{self.height} frame.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# --------------------------------------------------------------------------- atomic JSON state


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename, so a reader (the UI polling status) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    # a finished child that was not reaped yet is a zombie: not running
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------- target data


@dataclass
class TargetData:
    """The training material at one size: frames (-1..1 targets), labels (0..1) and face boxes."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N, H, W, 3) uint8
    boxes: np.ndarray  # (N, 4) int (miny, maxy, minx, maxx); -1 rows = no face
    valid: np.ndarray  # (N,) bool: a person was found in the frame

    def __len__(self) -> int:
        return len(self.images)


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
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, body=body, face=face, hand_right=right, hand_left=left, valid=valid,
                        frame_shape=np.asarray(frame_shape))  # fmt: skip
    os.replace(tmp, path)


def load_poses(path: Path) -> list[Any]:
    from pipelines.dance.skeleton import Pose

    with np.load(path) as z:
        return [
            Pose(z["body"][i], z["face"][i], z["hand_right"][i], z["hand_left"][i]) if z["valid"][i] else Pose.empty()
            for i in range(len(z["valid"]))
        ]


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


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
    poses = load_poses(poses_file)
    if frames_file.exists():
        with np.load(frames_file) as z:
            frames: Iterable[np.ndarray] = list(z["frames"])
    else:  # a video target: decode again, one frame at a time (a minute of 1080p would not fit in memory)
        from pipelines.common.media import iter_frames

        frames = iter_frames(video)
    data = render_training_data(frames, poses, config.width, config.height, config.face_box, progress)
    _save_npz(cache, images=data.images, labels=data.labels, boxes=data.boxes, valid=data.valid)
    return data


def split_holdout(n: int, fraction: float, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / held-out frame indices: the held-out frames are the contiguous END of the video
    (neighbouring frames are near-duplicates, so a random split would leak)."""
    if n < minimum + 2:
        raise InputError(f"The target video has {n} usable frames; at least {minimum + 2} are needed.")
    k = max(minimum, math.ceil(n * fraction))
    return np.arange(0, n - k), np.arange(n - k, n)


# --------------------------------------------------------------------------- the trainer

_SHAPE_KEYS = ("width", "height", "netG", "ngf", "n_downsampling", "n_blocks", "n_blocks_local", "ndf", "num_D",
               "n_layers_D", "face_ngf", "face_n_downsampling", "face_n_blocks")  # fmt: skip


def check_resumable(saved: TrainConfig, new: TrainConfig) -> None:
    """A checkpoint continues only with the same network shapes, or as the local stage of a
    global one (LocalEnhancer ngf = global ngf / 2, same depth); else a specific InputError."""
    if saved.netG == "global" and new.netG == "local":
        if (saved.ngf, saved.n_downsampling, saved.n_blocks) != (2 * new.ngf, new.n_downsampling, new.n_blocks):
            raise InputError(f"The local stage needs a global stage with ngf {2 * new.ngf}, {new.n_downsampling} "
                             f"downsamplings and {new.n_blocks} blocks; this target's has ngf {saved.ngf}.")  # fmt: skip
        return
    changed = [k for k in _SHAPE_KEYS if getattr(saved, k) != getattr(new, k)]
    if changed:
        raise InputError(f"This target was trained with other network settings ({', '.join(changed)}); "
                         "pick the model size it was trained with, or restart from scratch.")  # fmt: skip



@dataclass
class Status:
    """What ``job/status.json`` holds (the UI reads it; :func:`read_status` adds liveness)."""

    state: str = "queued"  # queued | preparing | training | done | stopped | failed | interrupted
    stage: str = ""  # "" | "global" | "face"
    step: int = 0
    max_steps: int = 0
    elapsed_s: float = 0.0
    budget_s: float = 0.0
    steps_per_s: float = 0.0
    progress: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    heldout_l1: list[list[float]] = field(default_factory=list)  # [[step, l1], ...]
    messages: list[str] = field(default_factory=list)
    error: str = ""
    pid: int | None = None
    device: str = ""
    updated: float = 0.0


class Trainer:
    """One run on one target: builds the networks, resumes from ``job/checkpoint.pt`` if present,
    and trains until the step count or the time budget is reached or a stop is requested."""

    def __init__(self, target_dir: Path, config: TrainConfig, data: TargetData):
        config.validate()
        self.target_dir = target_dir
        self.job_dir = target_dir / "job"
        self.model_dir = target_dir / "model"
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.device = pick_device(config.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed frame size: let cuDNN pick the fastest kernels
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)

        usable = np.flatnonzero(data.valid)
        if len(usable) < len(data):
            data = TargetData(data.images[usable], data.labels[usable], data.boxes[usable], data.valid[usable])
        self.data = data
        self.train_idx, self.holdout_idx = split_holdout(len(data), config.holdout_fraction, config.holdout_min)
        # pairs (t, t+1) within the training part
        self.pairs = self.train_idx[:-1]
        self.images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
        self.labels = torch.from_numpy(data.labels).permute(0, 3, 1, 2).contiguous()
        self.has_faces = bool(config.face and (data.boxes[:, 0] >= 0).all())

        self.netG = config.generator().build().to(self.device)
        self.netD = MultiscaleDiscriminator(12, config.ndf, config.n_layers_D, num_D=config.num_D, intermediate=True).to(self.device)
        init_weights(self.netG)
        init_weights(self.netD)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.faceG = self.faceD = self.optFG = self.optFD = None
        if self.has_faces:
            self.faceG = config.face_generator().build().to(self.device)
            self.faceD = NLayerDiscriminator(6, config.ndf, config.n_layers_D, norm=batch_norm, prefix="face").to(self.device)
            init_weights(self.faceG)
            init_weights(self.faceD)
            self.optFG = torch.optim.Adam(self.faceG.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
            self.optFD = torch.optim.Adam(self.faceD.parameters(), lr=config.lr, betas=(config.beta1, 0.999))

        self.vgg, vgg_message = losses.load_vgg19(self.device) if config.use_vgg else (None, "VGG19 perceptual loss OFF (disabled).")
        self.use_l1 = config.use_l1 if config.use_l1 is not None else self.vgg is None
        self.messages = [vgg_message]
        if self.use_l1:
            self.messages.append(f"L1 reconstruction term ON (the original --use_l1, weight {config.lambda_l1:g}).")
        if config.face and not self.has_faces:
            self.messages.append("Face GAN OFF: some target frames have no face box.")

        amp_dtype = None
        if config.amp and self.device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

        self.step = 0
        self.elapsed = 0.0
        self.status = Status(max_steps=config.max_steps, budget_s=config.time_budget_min * 60, device=str(self.device),
                             pid=os.getpid(), messages=list(self.messages))  # fmt: skip
        self.face_trained = False  # the face GAN has had at least one step (then transfer uses it)
        if (self.job_dir / "checkpoint.pt").exists():
            self._load_checkpoint()
        # The budget is per session: continuing a target trains for another time_budget_min, and
        # every session ends with its face stage (the last face_fraction of the session).
        self.session_start = (self.step, self.elapsed)
        self.budget_s = self.elapsed + config.time_budget_min * 60
        self.status.budget_s = self.budget_s

    # ---------------------------------------------------------------- batches

    def _to_device(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.asarray(idx))
        labels = self.labels[index].to(self.device, non_blocking=True).float().div_(255.0)
        images = self.images[index].to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        return labels, images

    def _sample_pairs(self) -> tuple[torch.Tensor, ...]:
        t = self.rng.choice(self.pairs, size=self.config.batch_size, replace=len(self.pairs) < self.config.batch_size)
        l0, i0 = self._to_device(t)
        l1, i1 = self._to_device(t + 1)
        return l0, l1, i0, i1, torch.from_numpy(self.data.boxes[t])

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    @staticmethod
    def _crop(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Stack each sample's face crop (all boxes have the same side)."""
        return torch.stack([x[i, :, b[0] : b[1], b[2] : b[3]] for i, b in enumerate(boxes.tolist())])

    def _paste(self, x: torch.Tensor, boxes: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        for i, b in enumerate(boxes.tolist()):
            out[i, :, b[0] : b[1], b[2] : b[3]] = x[i, :, b[0] : b[1], b[2] : b[3]] + residual[i]
        return out

    # ---------------------------------------------------------------- one step

    def face_stage(self) -> bool:
        """In the last ``face_fraction`` of this session (by steps or by time)."""
        if not self.has_faces:
            return False
        step0, elapsed0 = self.session_start
        keep = 1.0 - self.config.face_fraction
        by_steps = self.step >= step0 + (self.config.max_steps - step0) * keep
        by_time = self.elapsed >= elapsed0 + (self.budget_s - elapsed0) * keep
        return by_steps or by_time

    def phase_progress(self) -> float:
        """How far (0..1) the current phase of this session is: the body phase is the first
        ``1 - face_fraction`` of the session, the face phase the rest (by steps or by time)."""
        step0, elapsed0 = self.session_start
        keep = 1.0 - self.config.face_fraction if self.has_faces else 1.0
        spans = ((step0, self.config.max_steps, self.step), (elapsed0, self.budget_s, self.elapsed))
        fractions = []
        for start, end, now in spans:
            split = start + (end - start) * keep
            lo, hi = (split, end) if self.face_stage() else (start, split)
            fractions.append((now - lo) / max(1e-9, hi - lo))
        return min(1.0, max(0.0, *fractions))

    def learning_rate(self) -> float:
        """``lr`` for the first half of each phase, then linearly down to 0 (the original's
        ``niter`` = ``niter_decay`` schedule, applied to each phase of a time-budgeted session)."""
        if not self.config.lr_decay:
            return self.config.lr
        return self.config.lr * min(1.0, 2.0 * (1.0 - self.phase_progress()))

    def train_step(self) -> dict[str, float]:
        """One optimisation step of the original ``train_fullts`` loop on a batch of pairs."""
        cfg = self.config
        face = self.face_stage()
        l0, l1, r0, r1, boxes = self._sample_pairs()
        lr = self.learning_rate()
        for opt in (self.optG, self.optD, self.optFG, self.optFD):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr
        self.netG.train(not face)
        self.netG.requires_grad_(not face)
        if not face and cfg.netG == "local" and self.step < cfg.niter_fix_global:
            self.netG.model.requires_grad_(False)  # --niter_fix_global: only the enhancer learns at first
        with self._autocast():
            zeros = torch.zeros_like(r0)
            I0 = self.netG(torch.cat((l0, zeros), 1))
            if face:
                fl0, fl1 = self._crop(l0, boxes), self._crop(l1, boxes)
                I0 = self._paste(I0, boxes, self.faceG(torch.cat((fl0, self._crop(I0, boxes)), 1)))
            I1 = self.netG(torch.cat((l1, I0), 1))
            if face:
                I1 = self._paste(I1, boxes, self.faceG(torch.cat((fl1, self._crop(I1, boxes)), 1)))

            # generator losses
            pred_fake = self.netD(torch.cat((l0, l1, I0, I1), 1))
            with torch.no_grad():
                pred_real = self.netD(torch.cat((l0, l1, r0, r1), 1))
            loss_gan = losses.lsgan_loss(pred_fake, True)
            loss_feat = losses.feature_matching_loss(pred_fake, pred_real, cfg.n_layers_D, cfg.lambda_feat)
            loss_vgg = zeros.new_zeros((), dtype=torch.float32)
            if self.vgg is not None:
                loss_vgg = (self.vgg(I0, r0) + self.vgg(I1, r1)) * cfg.lambda_feat
                if cfg.netG == "global":
                    loss_vgg = loss_vgg * 0.5  # the original halves it for the global stage only
            loss_l1 = F.l1_loss(I1.float(), r1) * cfg.lambda_l1 if self.use_l1 else loss_vgg.new_zeros(())
            loss_gface = loss_vgg.new_zeros(())
            if face:
                ff0, ff1, rf0, rf1 = self._crop(I0, boxes), self._crop(I1, boxes), self._crop(r0, boxes), self._crop(r1, boxes)
                loss_gface = 0.5 * losses.lsgan_loss(self.faceD(torch.cat((fl0, ff0), 1)), True)
                loss_gface = loss_gface + 0.5 * losses.lsgan_loss(self.faceD(torch.cat((fl1, ff1), 1)), True)
                if self.vgg is not None:
                    loss_vgg = loss_vgg + 0.5 * (self.vgg(ff0, rf0) + self.vgg(ff1, rf1)) * cfg.lambda_feat
                if self.use_l1:
                    loss_l1 = loss_l1 + 0.5 * (F.l1_loss(ff0.float(), rf0) + F.l1_loss(ff1.float(), rf1)) * cfg.lambda_l1
            loss_G = loss_gan + loss_feat + loss_vgg + loss_l1 + loss_gface

        opt_g = self.optFG if face else self.optG
        opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_G).backward()
        self.scaler.step(opt_g)

        # discriminator losses (fakes detached)
        with self._autocast():
            pred_fake = self.netD(torch.cat((l0, l1, I0.detach(), I1.detach()), 1))
            pred_real = self.netD(torch.cat((l0, l1, r0, r1), 1))
            loss_d = 0.5 * (losses.lsgan_loss(pred_fake, False) + losses.lsgan_loss(pred_real, True))
            if face:
                d_face = 0.0
                for fl, ff, rf in ((fl0, ff0, rf0), (fl1, ff1, rf1)):
                    d_face = d_face + 0.5 * losses.lsgan_loss(self.faceD(torch.cat((fl, ff.detach()), 1)), False)
                    d_face = d_face + 0.5 * losses.lsgan_loss(self.faceD(torch.cat((fl, rf), 1)), True)
                loss_d = loss_d + 0.5 * d_face
        self.optD.zero_grad(set_to_none=True)
        if face:
            self.optFD.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.optD)
        if face:
            self.scaler.step(self.optFD)
        self.scaler.update()
        self.step += 1
        self.face_trained = self.face_trained or face
        return {"G_GAN": loss_gan.item(), "G_GAN_Feat": loss_feat.item(), "G_VGG": loss_vgg.item(), "G_L1": loss_l1.item(),
                "G_GANface": loss_gface.item(), "D": loss_d.item()}  # fmt: skip

    # ---------------------------------------------------------------- evaluation

    @torch.no_grad()
    def generate(self, indices: np.ndarray) -> list[torch.Tensor]:
        """Frames for ``indices`` in order with feedback, exactly as at transfer time."""
        self.netG.eval()
        if self.faceG is not None:
            self.faceG.eval()
        face_g = self.faceG if self.face_trained else None
        labels = (self._to_device(np.asarray([i]))[0] for i in indices)
        boxes = [tuple(int(v) for v in self.data.boxes[i]) for i in indices]
        with self._autocast():
            frames = [step.frame.float() for step in generate_sequence(self.netG, face_g, labels, boxes)]
        self.netG.train()
        return frames

    def heldout_l1(self) -> float:
        """Mean L1 (in -1..1 units) of the held-out frames generated in order with feedback."""
        frames = self.generate(self.holdout_idx)
        errs = [float((y - self._to_device(np.asarray([i]))[1]).abs().mean()) for y, i in zip(frames, self.holdout_idx, strict=True)]
        return float(np.mean(errs))

    def write_preview(self) -> None:
        """label | generated | real for the held-out frames' first and last frame."""
        idx = self.holdout_idx
        frames = self.generate(idx)
        rows = []
        for k in sorted({0, len(idx) - 1}):
            i = idx[k]
            rows.append(np.concatenate([self.data.labels[i], tensor_to_uint8(frames[k]), self.data.images[i]], axis=1))
        from pipelines.common.media import save_png

        tmp = self.job_dir / ".preview.tmp.png"
        save_png(np.concatenate(rows, axis=0), tmp)
        os.replace(tmp, self.job_dir / "preview.png")

    # ---------------------------------------------------------------- checkpoints

    def _nets(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer | None]:
        return {"G": self.netG, "D": self.netD, "Gface": self.faceG, "Dface": self.faceD,
                "optG": self.optG, "optD": self.optD, "optGface": self.optFG, "optDface": self.optFD}  # fmt: skip

    def save_checkpoint(self) -> None:
        """Training state (atomic) plus the inference export under ``model/``."""
        state = {k: v.state_dict() for k, v in self._nets().items() if v is not None}
        state["scaler"] = self.scaler.state_dict()
        state["meta"] = {"step": self.step, "elapsed": self.elapsed, "stage": self.status.stage, "face_trained": self.face_trained,
                         "rng": self.rng.bit_generator.state, "config": asdict(self.config),
                         "heldout_l1": self.status.heldout_l1}  # fmt: skip
        tmp = self.job_dir / ".checkpoint.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.job_dir / "checkpoint.pt")
        self.export_model()

    def export_model(self) -> None:
        from safetensors.torch import save_file

        def save(net: torch.nn.Module, name: str) -> None:
            tmp = self.model_dir / f".{name}.tmp"
            save_file({k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
            os.replace(tmp, self.model_dir / name)

        save(self.netG, "net_G.safetensors")
        face_ready = self.faceG is not None and self.face_trained
        if face_ready:
            save(self.faceG, "net_Gface.safetensors")
        write_json(self.model_dir / "generator.json", {
            "generator": self.config.generator().to_dict(),
            "face_generator": self.config.face_generator().to_dict() if face_ready else None,
            "width": self.config.width, "height": self.config.height, "face_box": self.config.face_box,
            "step": self.step, "heldout_l1": self.status.heldout_l1[-1][1] if self.status.heldout_l1 else None,
            "saved": time.time(),
        })  # fmt: skip

    def _load_checkpoint(self) -> None:
        state = torch.load(self.job_dir / "checkpoint.pt", map_location=self.device, weights_only=True)
        meta = state["meta"]
        saved = TrainConfig.from_dict(meta["config"])
        if saved.netG == "global" and self.config.netG == "local":
            self._init_from_global_stage(state, saved)
            return
        check_resumable(saved, self.config)
        for name, obj in self._nets().items():
            if obj is not None and name in state:
                obj.load_state_dict(state[name])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.elapsed = int(meta["step"]), float(meta["elapsed"])
        self.rng.bit_generator.state = meta["rng"]
        self.status.stage = meta.get("stage", "")
        self.face_trained = bool(meta.get("face_trained", False))
        self.status.heldout_l1 = [list(x) for x in meta.get("heldout_l1", [])]
        self.status.messages.append(f"Resumed from step {self.step} ({self.elapsed / 60:.1f} min already spent).")

    def _init_from_global_stage(self, state: dict[str, Any], saved: TrainConfig) -> None:
        """Start the local stage from a finished global stage, as the original's ``--load_pretrain``:
        the LocalEnhancer's ``model.*`` (a global generator without its head) takes the global
        generator's weights; the face nets carry over when their settings match (they are fully
        convolutional, so the larger face box is fine); the discriminators start afresh."""
        check_resumable(saved, self.config)
        own = self.netG.model.state_dict()
        self.netG.model.load_state_dict({k[len("model."):]: v for k, v in state["G"].items() if k[len("model."):] in own}, strict=True)
        face_same = all(getattr(saved, k) == getattr(self.config, k) for k in ("face_ngf", "face_n_downsampling", "face_n_blocks"))
        if self.faceG is not None and face_same and "Gface" in state:
            self.faceG.load_state_dict(state["Gface"])
            self.faceD.load_state_dict(state["Dface"])
        self.status.messages.append(
            f"Local stage ({self.config.width}x{self.config.height}) initialised from the global stage "
            f"({saved.width}x{saved.height}, step {int(state['meta']['step'])})."
        )

    # ---------------------------------------------------------------- the loop

    def write_status(self, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(self.status, k, v)
        s = self.status
        s.step, s.elapsed_s, s.updated = self.step, self.elapsed, time.time()
        step0, elapsed0 = self.session_start
        s.progress = min(1.0, max((self.step - step0) / max(1, self.config.max_steps - step0),
                                  (self.elapsed - elapsed0) / max(1e-9, self.budget_s - elapsed0)))  # fmt: skip
        write_json(self.job_dir / "status.json", asdict(s))

    def run(self) -> Status:
        cfg = self.config
        budget = self.budget_s
        stop_flag = self.job_dir / "stop"  # cleared when a job is launched, so an early stop is kept
        for m in self.messages:
            log.info(m)
        if not self.status.heldout_l1:
            self.status.heldout_l1.append([self.step, self.heldout_l1()])
        self.write_status(state="training", stage=cfg.netG)
        last_tick = time.perf_counter()
        recent: list[float] = []
        reason = "done"
        while True:
            if self.step >= cfg.max_steps or self.elapsed >= budget:
                break
            if stop_flag.exists():
                reason = "stopped"
                break
            if not self.face_stage() and self.status.stage == "face":
                self.status.stage = cfg.netG  # a continued session trains the body generator again first
            if self.face_stage() and self.status.stage != "face":
                self.status.stage = "face"
                self.status.messages.append(f"Face stage from step {self.step}: G frozen, face residual GAN training.")
            step_start = time.perf_counter()
            step_losses = self.train_step()
            recent = [*recent[-19:], time.perf_counter() - step_start]
            self.status.losses = step_losses
            self.status.steps_per_s = len(recent) / sum(recent)
            if self.step % cfg.eval_every == 0:
                self.status.heldout_l1.append([self.step, self.heldout_l1()])
            if self.step % cfg.preview_every == 0:
                self.write_preview()
            if self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
            now = time.perf_counter()  # the budget is wall time: evaluation and checkpoints count
            self.elapsed += now - last_tick
            last_tick = now
            self.write_status()
        if not self.status.heldout_l1 or self.status.heldout_l1[-1][0] != self.step:
            self.status.heldout_l1.append([self.step, self.heldout_l1()])
        self.write_preview()
        self.save_checkpoint()
        self.write_status(state=reason)
        return self.status


# --------------------------------------------------------------------------- targets and jobs


def prepare_target_from_arrays(
    target_dir: Path,
    frames: Sequence[np.ndarray],
    poses: Sequence[Any],
    *,
    name: str,
    fps: float,
    source: str,
) -> Path:
    """Store a target's frames and poses (already known, e.g. the procedural sample)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    frame_shape = tuple(np.asarray(frames[0]).shape[:2])
    _save_npz(target_dir / "frames.npz", frames=np.stack([np.asarray(f, np.uint8) for f in frames]))
    save_poses(target_dir / "poses.npz", poses, frame_shape)  # type: ignore[arg-type]
    write_json(target_dir / "target.json", {
        "name": name, "source": source, "fps": float(fps), "n_frames": len(frames),
        "frame_shape": list(frame_shape), "created": time.time(),
        "n_with_person": int(sum(p is not None and not p.is_empty for p in poses)),
    })  # fmt: skip
    return target_dir


def prepare_target_from_video(
    target_dir: Path,
    video: Path,
    progress: Callable[[float, str], None] | None = None,
) -> Path:
    """Find the person's pose in every frame of the target video, store the poses (canvas
    pixels); the frames stay in the video and are decoded again when training data is rendered."""
    poses, info = detect_video_poses(video, progress)
    shape = (info.height, info.width)
    if sum(not p.is_empty for p in poses) < 4:
        raise InputError(f"{video.name}: no person was found in enough frames to train on. "
                         "Use a video with one person, whole body in view.")  # fmt: skip
    save_poses(target_dir / "poses.npz", poses, shape)
    meta = read_json(target_dir / "target.json")
    meta.update(n_frames=len(poses), n_with_person=int(sum(not p.is_empty for p in poses)))
    write_json(target_dir / "target.json", meta)
    return target_dir


def detect_video_poses(video: str | os.PathLike, progress: Callable[[float, str], None] | None = None,
                       chunk_size: int = 16) -> tuple[list[Any], Any]:  # fmt: skip
    """One pose per frame of a video (Part A's estimator, ``chunk_size`` decoded frames in memory
    at a time), fitted onto EDN's 1080p canvas; and the video's info (limits checked)."""
    from pipelines.common.media import iter_frames, probe_video
    from pipelines.dance.render import fit_pose_to_canvas

    info = probe_video(video)
    shape = (info.height, info.width, 3)
    poses: list[Any] = []
    chunk: list[np.ndarray] = []

    def flush() -> None:
        found = detect_poses(chunk)
        poses.extend(p if p.is_empty else fit_pose_to_canvas(p, shape) for p in found)
        chunk.clear()
        if progress:
            progress(min(1.0, len(poses) / max(1, info.n_frames)), f"finding poses {len(poses)}/{info.n_frames}")

    for frame in iter_frames(video):
        chunk.append(frame)
        if len(chunk) == chunk_size:
            flush()
    if chunk:
        flush()
    return poses, info


def detect_poses(frames: Sequence[np.ndarray], progress: Callable[[float, str], None] | None = None) -> list[Any]:
    """One :class:`~pipelines.dance.skeleton.Pose` per frame from Part A's estimator."""
    from pipelines.dance.openpose import estimate_poses

    def report(done: int, total: int) -> None:
        if progress:
            progress(done / max(1, total), f"finding poses {done}/{total}")

    return list(estimate_poses(frames, progress=report))


def job_config(target_dir: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_json(target_dir / "job" / "config.json"))


def run_job(target_dir: Path) -> Status:
    """Prepare the data if needed and train; every outcome ends up in ``job/status.json``."""
    target_dir = Path(target_dir)
    job_dir = target_dir / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    config = job_config(target_dir)
    status_path = job_dir / "status.json"

    def preparing(fraction: float, message: str) -> None:
        prev = read_json(status_path)
        prev.update(state="preparing", progress=0.0, messages=[message], pid=os.getpid(), updated=time.time())
        write_json(status_path, prev)

    try:
        meta = read_json(target_dir / "target.json")
        if not (target_dir / "poses.npz").exists():
            video = target_dir / meta.get("video", "source.mp4")
            prepare_target_from_video(target_dir, video, preparing)
        data = target_training_data(target_dir, config, preparing)
        trainer = Trainer(target_dir, config, data)
        return trainer.run()
    except Exception as exc:  # the job must leave its reason on disk for the UI
        prev = read_json(status_path)
        user = isinstance(exc, InputError) or type(exc).__name__ in ("ModelUnavailableError", "OutOfMemoryError")
        prev.update(state="failed", error=str(exc) if user else f"{type(exc).__name__}: {exc}", updated=time.time())
        write_json(status_path, prev)
        (job_dir / "log.txt").open("a").write(traceback.format_exc())
        raise


def launch(target_dir: Path, config: TrainConfig, *, resume: bool = True) -> int:
    """Start a background training process for a target (detached from the web server's request,
    so closing the browser does not stop it). Returns its pid."""
    config.validate()
    job_dir = Path(target_dir) / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    current = read_status(target_dir)
    if current.get("running"):
        raise InputError(f"Target {Path(target_dir).name} is already training (step {current.get('step', 0)}).")
    if not resume:
        for name in ("checkpoint.pt", "status.json", "preview.png"):
            (job_dir / name).unlink(missing_ok=True)
    elif (job_dir / "checkpoint.pt").exists() and (job_dir / "config.json").exists():
        check_resumable(job_config(Path(target_dir)), config)  # refuse now, not minutes later in the job
    (job_dir / "stop").unlink(missing_ok=True)
    write_json(job_dir / "config.json", asdict(config))
    write_json(job_dir / "status.json", {**asdict(Status(budget_s=config.time_budget_min * 60, max_steps=config.max_steps)),
                                         "updated": time.time()})  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    with open(job_dir / "log.txt", "a") as logfile:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.dance.training", str(target_dir)],
            cwd=root, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    status = read_json(job_dir / "status.json")
    status["pid"] = proc.pid
    write_json(job_dir / "status.json", status)
    return proc.pid


def request_stop(target_dir: Path) -> None:
    """Ask a running job to checkpoint and stop at its next step."""
    (Path(target_dir) / "job" / "stop").touch()


def read_status(target_dir: Path) -> dict[str, Any]:
    """``job/status.json`` plus ``running`` (its process is alive); a job whose process died
    while training is reported ``interrupted`` (it resumes from its last checkpoint)."""
    status = read_json(Path(target_dir) / "job" / "status.json")
    if not status:
        return {"state": "none", "running": False}
    active = status.get("state") in ("queued", "preparing", "training")
    alive = _pid_alive(status.get("pid"))
    status["running"] = bool(active and alive)
    if active and not alive and status.get("pid") and time.time() - float(status.get("updated", 0)) > 5:
        status["state"] = "interrupted"
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.dance.training", description="Run one EDN training job.")
    parser.add_argument("target_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: (Path(args.target_dir) / "job" / "stop").touch())
    try:
        status = run_job(args.target_dir)
    except Exception:
        return 1
    log.info("finished: %s at step %d", status.state, status.step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
