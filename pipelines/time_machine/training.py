"""DreamBooth-style LoRA training of one person, as a background job.

The recipe of diffusers' ``train_dreambooth_lora.py`` with the libraries made for it: the base
model's networks from diffusers/transformers, LoRA adapters from peft on the UNet's attention
projections (``to_q``, ``to_k``, ``to_v``, ``to_out.0``), mixed precision and device placement from
accelerate. Everything but the adapters is frozen, so the photos' latents and the caption's text
embedding are computed once. Each step: noise a latent at a random timestep, predict the noise
(or v, per the scheduler), MSE. A fixed set of (latent, noise, timestep) triples gives a held-out
style ``eval_loss`` that falls as the adapters learn the person.

A job is ``python -m pipelines.time_machine.training PERSON_DIR``: it reads ``job/config.json``,
writes ``job/status.json`` (polled by the UI), checkpoints the adapters and the optimizer to
``job/`` (so a stopped job resumes), stops when ``job/stop`` appears or on SIGTERM, and at the
end exports the LoRA (``lora/pytorch_lora_weights.safetensors``, a few MB: the only model kept
per person) and deletes the person's photos.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.common.disk import read_json, write_json
from pipelines.common.errors import InputError
from pipelines.common.jobs import job_process_main
from pipelines.time_machine.config import TrainConfig

log = logging.getLogger("nostalgia.time_machine")

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
LORA_FILE = "pytorch_lora_weights.safetensors"
EVAL_SAMPLES = 8


@dataclass
class Status:
    """What ``job/status.json`` holds."""

    state: str = "queued"  # queued | preparing | training | done | stopped | failed | interrupted
    step: int = 0
    max_steps: int = 0
    elapsed_s: float = 0.0
    budget_s: float = 0.0
    steps_per_s: float = 0.0
    progress: float = 0.0
    loss: float | None = None
    eval_loss: list[list[float]] = field(default_factory=list)  # [[step, loss], ...]
    messages: list[str] = field(default_factory=list)
    error: str = ""
    pid: int | None = None
    device: str = ""
    precision: str = ""
    resolution: int = 0
    updated: float = 0.0


def mixed_precision_for(config: TrainConfig, device: torch.device) -> str:
    """accelerate's ``mixed_precision``: fp16/bf16 on CUDA (bf16 where the GPU has it), none on CPU."""
    if config.mixed_precision != "auto":
        return config.mixed_precision if device.type == "cuda" else "no"
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def load_base(model_dir: Path, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The base model's parts as published (tokenizer, text encoder, VAE, UNet, noise scheduler)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    return {
        "tokenizer": CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer"),
        "text_encoder": CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder", torch_dtype=dtype),
        "vae": AutoencoderKL.from_pretrained(model_dir, subfolder="vae", torch_dtype=dtype),
        "unet": UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet", torch_dtype=dtype),
        "scheduler": DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler"),
    }


def native_resolution(unet: Any, vae: Any) -> int:
    """The image size the base model was trained at (latent size x the VAE's downsampling)."""
    return int(unet.config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)


def training_images(data_dir: Path, resolution: int) -> torch.Tensor:
    """The prepared face crops as a (N, 3, R, R) tensor in [-1, 1]."""
    from pipelines.common.media import load_image

    paths = sorted(data_dir.glob("*.png"))
    if not paths:
        raise InputError("This person's photos are gone (deleted after training); start a new person to train again.")
    images = []
    for p in paths:
        arr = load_image(p)
        t = torch.from_numpy(arr).permute(2, 0, 1).float().unsqueeze(0) / 127.5 - 1.0
        images.append(F.interpolate(t, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(images)


class LoraTrainer:
    """One person's training session: resumes from ``job/`` when a checkpoint is there."""

    def __init__(self, person_dir: Path, config: TrainConfig, model_dir: Path, caption: str):
        from accelerate import Accelerator
        from peft import LoraConfig

        from pipelines.common.device import pick_device

        self.person_dir, self.config, self.caption = Path(person_dir), config, caption
        self.job_dir = self.person_dir / "job"
        device = pick_device(config.device or None)
        precision = mixed_precision_for(config, device)
        self.accelerator = Accelerator(mixed_precision=precision, cpu=device.type == "cpu")
        self.device = self.accelerator.device
        frozen_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
        parts = load_base(model_dir, frozen_dtype)
        self.tokenizer, self.text_encoder, self.vae = parts["tokenizer"], parts["text_encoder"], parts["vae"]
        self.unet, self.noise_scheduler = parts["unet"], parts["scheduler"]
        for net in (self.text_encoder, self.vae, self.unet):
            net.requires_grad_(False)
            net.to(self.device)
        self.resolution = min(config.resolution, native_resolution(self.unet, self.vae))
        self.unet.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian",
                                         target_modules=LORA_TARGETS))  # fmt: skip
        params = [p for p in self.unet.parameters() if p.requires_grad]
        for p in params:  # the adapters train in fp32 even when the frozen weights are half precision
            p.data = p.data.float()
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2)
        self.unet, self.optimizer = self.accelerator.prepare(self.unet, self.optimizer)
        self.params = params
        self.generator = torch.Generator().manual_seed(config.seed)
        self._encode_once()
        self.step, self.elapsed = 0, 0.0
        self.status = Status(max_steps=config.max_steps, budget_s=config.time_budget_min * 60, device=self.device.type,
                             precision=precision, resolution=self.resolution)  # fmt: skip
        self._resume()

    # ---------------------------------------------------------------- data

    @torch.no_grad()
    def _encode_once(self) -> None:
        """Latent distributions of the photos and the caption's embedding (frozen networks)."""
        images = training_images(self.person_dir / "data", self.resolution)
        dist = self.vae.encode(images.to(self.device, self.vae.dtype)).latent_dist
        self.latent_mean, self.latent_std = dist.mean.float(), dist.std.float()
        ids = self.tokenizer([self.caption], padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids  # fmt: skip
        self.text_embedding = self.text_encoder(ids.to(self.device))[0].float()
        g = torch.Generator().manual_seed(1234)
        n = len(images)
        idx = torch.arange(EVAL_SAMPLES) % n
        self.eval_latents = self._sample_latents(idx, g)
        self.eval_noise = torch.randn(self.eval_latents.shape, generator=g).to(self.device)
        self.eval_timesteps = torch.linspace(50, self.noise_scheduler.config.num_train_timesteps - 50, EVAL_SAMPLES).long()

    def _sample_latents(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        eps = torch.randn(self.latent_mean[idx].shape, generator=g).to(self.device)
        return (self.latent_mean[idx] + self.latent_std[idx] * eps) * self.vae.config.scaling_factor

    def _loss(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        timesteps = timesteps.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        embedding = self.text_embedding.expand(len(latents), -1, -1)
        with self.accelerator.autocast():
            pred = self.unet(noisy, timesteps, embedding).sample
        return F.mse_loss(pred.float(), target.float())

    # ---------------------------------------------------------------- training

    def train_step(self) -> float:
        n = len(self.latent_mean)
        idx = torch.randint(0, n, (self.config.batch_size,), generator=self.generator)
        latents = self._sample_latents(idx, self.generator)
        noise = torch.randn(latents.shape, generator=self.generator).to(self.device)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (len(latents),), generator=self.generator)
        self.unet.train()
        loss = self._loss(latents, noise, timesteps)
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def eval_loss(self) -> float:
        """MSE on the fixed triples: the same noise and timesteps every time, so it is comparable."""
        self.unet.eval()
        return float(self._loss(self.eval_latents, self.eval_noise, self.eval_timesteps))

    # ---------------------------------------------------------------- saving

    def lora_state(self) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        unet = self.accelerator.unwrap_model(self.unet)
        return {k: v.detach().float().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}

    def save_checkpoint(self) -> None:
        """Adapters (safetensors) and optimizer state + counters, written atomically."""
        from safetensors.torch import save_file

        self.job_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.job_dir / ".adapters.tmp"
        save_file(self.lora_state(), str(tmp))
        os.replace(tmp, self.job_dir / "adapters.safetensors")
        state = {"optimizer": self.optimizer.state_dict(), "step": self.step, "elapsed": self.elapsed,
                 "rank": self.config.rank, "resolution": self.resolution}  # fmt: skip
        torch.save(state, self.job_dir / ".state.tmp")
        os.replace(self.job_dir / ".state.tmp", self.job_dir / "state.pt")
        self.export_lora(self.job_dir / "lora")  # what generation uses while the job is stopped

    def export_lora(self, folder: Path) -> Path:
        """The LoRA in diffusers' format (``load_lora_weights`` reads it)."""
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        folder.mkdir(parents=True, exist_ok=True)
        layers = convert_state_dict_to_diffusers(self.lora_state())
        tmp = folder.with_name(f".{folder.name}.tmp")
        tmp.mkdir(exist_ok=True)
        StableDiffusionPipeline.save_lora_weights(tmp, unet_lora_layers=layers, safe_serialization=True)
        os.replace(tmp / LORA_FILE, folder / LORA_FILE)
        shutil.rmtree(tmp, ignore_errors=True)
        return folder / LORA_FILE

    def _resume(self) -> None:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        adapters, state_path = self.job_dir / "adapters.safetensors", self.job_dir / "state.pt"
        if not (adapters.exists() and state_path.exists()):
            return
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("rank") != self.config.rank or state.get("resolution") != self.resolution:
            raise InputError("This person was trained with another preset; train with the same preset, or restart.")
        set_peft_model_state_dict(self.accelerator.unwrap_model(self.unet), load_file(str(adapters)))
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        previous = read_json(self.job_dir / "status.json")
        self.status.eval_loss = list(previous.get("eval_loss") or [])
        self.status.messages.append(f"Resumed from step {self.step}.")

    # ---------------------------------------------------------------- preview and loop

    @torch.no_grad()
    def write_preview(self) -> None:
        """One portrait from the caption with the current adapters (fixed seed), as ``job/preview.png``."""
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

        from pipelines.common.media import save_png
        from pipelines.time_machine.config import generate_config

        unet = self.accelerator.unwrap_model(self.unet)
        unet.eval()
        pipe = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=unet,
            scheduler=DPMSolverMultistepScheduler.from_config(self.noise_scheduler.config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip
        pipe.set_progress_bar_config(disable=True)
        with self.accelerator.autocast():
            image = pipe(self.caption, num_inference_steps=min(20, generate_config().steps), height=self.resolution, width=self.resolution,
                         generator=torch.Generator().manual_seed(0), output_type="np").images[0]  # fmt: skip
        save_png((np.clip(image, 0, 1) * 255).round().astype(np.uint8), self.job_dir / "preview.png")

    def write_status(self, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(self.status, k, v)
        s = self.status
        s.step, s.elapsed_s, s.updated, s.pid = self.step, self.elapsed, time.time(), os.getpid()
        s.progress = min(1.0, max(self.step / max(1, self.config.max_steps), self.elapsed / max(1e-9, s.budget_s)))
        write_json(self.job_dir / "status.json", asdict(s))

    def run(self) -> Status:
        cfg = self.config
        stop_flag = self.job_dir / "stop"
        if not self.status.eval_loss:
            self.status.eval_loss.append([self.step, self.eval_loss()])
        self.write_status(state="training")
        reason, last = "done", time.perf_counter()
        recent: list[float] = []
        session_budget = self.elapsed + self.status.budget_s  # the budget is per session, wall time
        while self.step < cfg.max_steps:
            if stop_flag.exists():
                reason = "stopped"
                break
            if self.elapsed >= session_budget:
                reason = "stopped"
                self.status.messages.append(f"Time budget reached at step {self.step}; train again to continue.")
                break
            start = time.perf_counter()
            self.status.loss = self.train_step()
            recent = [*recent[-19:], time.perf_counter() - start]
            self.status.steps_per_s = len(recent) / sum(recent)
            if self.step % cfg.checkpoint_every == 0:
                self.status.eval_loss.append([self.step, self.eval_loss()])
                self.save_checkpoint()
            if self.step % cfg.preview_every == 0:
                self.write_preview()
            now = time.perf_counter()
            self.elapsed += now - last
            last = now
            self.write_status()
        if not self.status.eval_loss or self.status.eval_loss[-1][0] != self.step:
            self.status.eval_loss.append([self.step, self.eval_loss()])
        self.save_checkpoint()
        self.write_preview()
        if reason == "done":
            finish(self.person_dir, self)
        self.write_status(state=reason)
        return self.status


def finish(person_dir: Path, trainer: LoraTrainer) -> None:
    """Keep only the LoRA: export it, then delete the photos and the training state."""
    trainer.export_lora(person_dir / "lora")
    for name in ("data", "photos"):
        shutil.rmtree(person_dir / name, ignore_errors=True)
    for name in ("adapters.safetensors", "state.pt"):
        (person_dir / "job" / name).unlink(missing_ok=True)
    shutil.rmtree(person_dir / "job" / "lora", ignore_errors=True)
    trainer.status.messages.append("Training finished: the LoRA is kept, the photos were deleted.")


def run_job(person_dir: Path) -> Status | None:
    """Train one person as ``job/config.json`` says; every outcome ends up in ``job/status.json``."""
    from weights.store import model_dir

    person_dir = Path(person_dir)
    job_dir = person_dir / "job"
    status_path = job_dir / "status.json"
    try:
        if (job_dir / "stop").exists():  # stopped while it waited to start
            write_json(status_path, {**read_json(status_path), "state": "stopped", "updated": time.time()})
            return None
        write_json(status_path, {**read_json(status_path), "state": "preparing", "pid": os.getpid(),
                                 "messages": ["Loading the base model"], "updated": time.time()})  # fmt: skip
        config = TrainConfig.from_dict(read_json(job_dir / "config.json"))
        meta = read_json(person_dir / "person.json")
        trainer = LoraTrainer(person_dir, config, model_dir(meta["base_model"]), meta["caption"])
        return trainer.run()
    except Exception as exc:
        user = isinstance(exc, InputError) or type(exc).__name__ in ("ModelUnavailableError", "WeightsMissingError")
        prev = read_json(status_path)
        prev.update(state="failed", error=str(exc) if user else f"{type(exc).__name__}: {exc}", updated=time.time())
        write_json(status_path, prev)
        with (job_dir / "log.txt").open("a") as fh:
            fh.write(traceback.format_exc())
        raise


def main(argv: list[str] | None = None) -> int:
    return job_process_main(argv, prog="python -m pipelines.time_machine.training", description="Run one LoRA job.",
                            folder="person_dir", run=run_job)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
