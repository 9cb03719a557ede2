"""The Everybody Dance Now pose-to-video GAN trainer: one run on one target's data.

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

A run checkpoints into the target folder, so a session can stop and later continue::

    job/status.json             state, step, losses, held-out L1 history, messages (atomic writes)
    job/checkpoint.pt           G, D, face G/D, optimisers, step, elapsed time (every N steps)
    job/preview.png             label | generated | real on a held-out frame
    job/stop                    present = please stop at the next step (checkpoint first)
    model/generator.json        GeneratorConfig + size + face settings, for transfer
    model/net_G.safetensors     the generator (original key names: latest_net_G.pth layout)
    model/net_Gface.safetensors the face residual generator (latest_net_Gface.pth layout)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.common.device import pick_device
from pipelines.common.disk import write_json
from pipelines.common.lpips import load_lpips
from pipelines.common.quality import measure
from pipelines.dance import distributed, losses
from pipelines.dance.config import TrainConfig, check_resumable
from pipelines.dance.networks import MultiscaleDiscriminator, NLayerDiscriminator, batch_norm, init_weights
from pipelines.dance.target import TargetData, split_holdout
from pipelines.dance.transfer import generate_sequence, tensor_to_uint8

log = logging.getLogger("nostalgia.dance")


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
    quality: list[dict[str, Any]] = field(default_factory=list)  # after each stage: step, stage, ssim, lpips, ...
    world_size: int = 1  # training processes (torchrun)
    messages: list[str] = field(default_factory=list)
    error: str = ""
    pid: int | None = None
    device: str = ""
    updated: float = 0.0


def crop_faces(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Stack each sample's face crop (all boxes have the same side)."""
    return torch.stack([x[i, :, b[0] : b[1], b[2] : b[3]] for i, b in enumerate(boxes.tolist())])


def paste_faces(x: torch.Tensor, boxes: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``x`` with each sample's face box plus its residual."""
    out = x.clone()
    for i, b in enumerate(boxes.tolist()):
        out[i, :, b[0] : b[1], b[2] : b[3]] = x[i, :, b[0] : b[1], b[2] : b[3]] + residual[i]
    return out


class TemporalPair(nn.Module):
    """The generator step of the original loop as one module: ``I0 = G(l0, 0)``, ``I1 = G(l1, I0)``,
    each with the face residual in the face stage (``boxes`` given). One forward per optimisation
    step is what DistributedDataParallel supports; a module calling itself on its own output
    within one step is not."""

    def __init__(self, netG: nn.Module, faceG: nn.Module | None) -> None:  # noqa: N803 - the original names
        super().__init__()
        self.netG = netG
        self.faceG = faceG

    def _frame(self, label: torch.Tensor, previous: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        frame = self.netG(torch.cat((label, previous), 1))
        if boxes is not None:
            frame = paste_faces(frame, boxes, self.faceG(torch.cat((crop_faces(label, boxes), crop_faces(frame, boxes)), 1)))
        return frame

    def forward(self, l0: torch.Tensor, l1: torch.Tensor, boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        i0 = self._frame(l0, torch.zeros_like(l0), boxes)
        return i0, self._frame(l1, i0, boxes)


class Trainer:
    """One run on one target: builds the networks, resumes from ``job/checkpoint.pt`` if present,
    and trains until the step count or the time budget is reached or a stop is requested."""

    def __init__(self, target_dir: Path, config: TrainConfig, data: TargetData,
                 world: distributed.World | None = None, device: torch.device | None = None):  # fmt: skip
        config.validate()
        self.world = world or distributed.World()
        distributed.check_batch(config.batch_size, self.world)
        self.target_dir = target_dir
        self.job_dir = target_dir / "job"
        self.model_dir = target_dir / "model"
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.device = device or pick_device(config.device)
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
        self.lpips, self.lpips_note = None, ""
        if self.world.is_main:  # only rank 0 evaluates
            self.lpips, self.lpips_note = load_lpips(config.lpips_net, self.device)
            self.messages.append(f"Held-out quality: SSIM, {self.lpips_note or 'LPIPS ' + config.lpips_net}.")
        if self.world.distributed:
            self.messages.append(f"{self.world.size} training processes (DistributedDataParallel), "
                                 f"{config.batch_size // self.world.size} pair(s) each per step.")  # fmt: skip
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
                             pid=os.getpid(), messages=list(self.messages), world_size=self.world.size)  # fmt: skip
        self.face_trained = False  # the face GAN has had at least one step (then transfer uses it)
        self._wrapped: dict[tuple[int, tuple[bool, ...]], torch.nn.Module] = {}
        self.pair = TemporalPair(self.netG, self.faceG)
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
        t = distributed.shard(t, self.world)  # every process draws the global batch, trains on its slice
        l0, i0 = self._to_device(t)
        l1, i1 = self._to_device(t + 1)
        return l0, l1, i0, i1, torch.from_numpy(self.data.boxes[t])

    def _training(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` as the optimisation step calls it: under DDP with several processes. DDP
        reduces the parameters that required grad when it was built, so a wrapper is built per
        set of trainable parameters (the face stage freezes G; ``niter_fix_global`` part of it)."""
        if not self.world.distributed:
            return net
        trainable = tuple(p.requires_grad for p in net.parameters())
        key = (id(net), trainable)
        if key not in self._wrapped:
            self._wrapped[key] = distributed.wrap(net, self.world, self.device)
        return self._wrapped[key]

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

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
        if self.faceG is not None:
            self.faceG.requires_grad_(face)
        generate_pair, net_d = self._training(self.pair), self._training(self.netD)
        face_d = self._training(self.faceD) if face else None
        with self._autocast():
            zeros = torch.zeros_like(r0)
            I0, I1 = generate_pair(l0, l1, boxes if face else None)
            if face:
                fl0, fl1 = crop_faces(l0, boxes), crop_faces(l1, boxes)

            # generator losses
            pred_fake = net_d(torch.cat((l0, l1, I0, I1), 1))
            with torch.no_grad():
                pred_real = net_d(torch.cat((l0, l1, r0, r1), 1))
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
                ff0, ff1, rf0, rf1 = crop_faces(I0, boxes), crop_faces(I1, boxes), crop_faces(r0, boxes), crop_faces(r1, boxes)
                loss_gface = 0.5 * losses.lsgan_loss(face_d(torch.cat((fl0, ff0), 1)), True)
                loss_gface = loss_gface + 0.5 * losses.lsgan_loss(face_d(torch.cat((fl1, ff1), 1)), True)
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
            pred_fake = net_d(torch.cat((l0, l1, I0.detach(), I1.detach()), 1))
            pred_real = net_d(torch.cat((l0, l1, r0, r1), 1))
            loss_d = 0.5 * (losses.lsgan_loss(pred_fake, False) + losses.lsgan_loss(pred_real, True))
            if face:
                d_face = 0.0
                for fl, ff, rf in ((fl0, ff0, rf0), (fl1, ff1, rf1)):
                    d_face = d_face + 0.5 * losses.lsgan_loss(face_d(torch.cat((fl, ff.detach()), 1)), False)
                    d_face = d_face + 0.5 * losses.lsgan_loss(face_d(torch.cat((fl, rf), 1)), True)
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
        step_losses = {"G_GAN": loss_gan.item(), "G_GAN_Feat": loss_feat.item(), "G_VGG": loss_vgg.item(),
                       "G_L1": loss_l1.item(), "G_GANface": loss_gface.item(), "D": loss_d.item()}  # fmt: skip
        return distributed.mean(step_losses, self.world, self.device)  # the global batch's losses

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

    def record_quality(self, stage: str) -> dict[str, Any]:
        """SSIM and LPIPS of the held-out frames regenerated from their own poses (the paper's
        self-reconstruction figures), kept in the status and the log."""
        if self.status.quality and (self.status.quality[-1]["step"], self.status.quality[-1]["stage"]) == (self.step, stage):
            return self.status.quality[-1]
        frames = self.generate(self.holdout_idx)
        real = [self._to_device(np.asarray([i]))[1] for i in self.holdout_idx]
        quality = measure(frames, real, self.lpips, self.lpips_note)
        entry = {"step": self.step, "stage": stage, **quality.to_dict()}
        self.status.quality.append(entry)
        message = f"Quality after the {stage} stage (step {self.step}): {quality.summary()}."
        self.status.messages.append(message)
        log.info(message)
        return entry

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
                         "heldout_l1": self.status.heldout_l1, "quality": self.status.quality}  # fmt: skip
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
            "quality": self.status.quality[-1] if self.status.quality else None,
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
        self.status.quality = [dict(x) for x in meta.get("quality", [])]
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
        if not self.world.is_main:
            return
        step0, elapsed0 = self.session_start
        s.progress = min(1.0, max((self.step - step0) / max(1, self.config.max_steps - step0),
                                  (self.elapsed - elapsed0) / max(1e-9, self.budget_s - elapsed0)))  # fmt: skip
        write_json(self.job_dir / "status.json", asdict(s))

    def run(self) -> Status:
        """Train until the step cap, the time budget or a stop request. With several processes
        every one runs this loop; rank 0 decides when it ends and alone writes to disk."""
        cfg = self.config
        budget = self.budget_s
        main = self.world.is_main
        stop_flag = self.job_dir / "stop"  # cleared when a job is launched, so an early stop is kept
        for m in self.messages:
            log.info(m)
        if main and not self.status.heldout_l1:
            self.status.heldout_l1.append([self.step, self.heldout_l1()])
        self.write_status(state="training", stage=cfg.netG)
        last_tick = time.perf_counter()
        recent: list[float] = []
        reason = "done"
        while True:
            # rank 0's clock and stop file decide for every process
            self.elapsed, stop = distributed.agree([self.elapsed, float(main and stop_flag.exists())], self.world, self.device)
            if self.step >= cfg.max_steps or self.elapsed >= budget:
                break
            if stop:
                reason = "stopped"
                break
            if not self.face_stage() and self.status.stage == "face":
                self.status.stage = cfg.netG  # a continued session trains the body generator again first
            if self.face_stage() and self.status.stage != "face":
                if main:
                    self.record_quality(self.status.stage or cfg.netG)  # the body stage of this session is over
                self.status.stage = "face"
                self.status.messages.append(f"Face stage from step {self.step}: G frozen, face residual GAN training.")
            step_start = time.perf_counter()
            step_losses = self.train_step()
            recent = [*recent[-19:], time.perf_counter() - step_start]
            self.status.losses = step_losses
            self.status.steps_per_s = len(recent) / sum(recent)
            if main:
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
        if main:
            if not self.status.heldout_l1 or self.status.heldout_l1[-1][0] != self.step:
                self.status.heldout_l1.append([self.step, self.heldout_l1()])
            self.record_quality(self.status.stage or cfg.netG)
            self.write_preview()
            self.save_checkpoint()
        self.write_status(state=reason)
        distributed.barrier(self.world)
        return self.status
