"""Time Machine settings as data: training presets, the base model, and the per-person limits.

A **preset** is a :class:`TrainConfig`: the DreamBooth-LoRA recipe (Ruiz et al., CVPR 2023, with
LoRA adapters on the UNet's attention projections as in diffusers' ``train_dreambooth_lora.py``)
at one size. ``standard`` is the usual recipe at the model's native 512 px (GPU); ``test`` is the
small one a CPU can finish: lower resolution, few steps, low rank (a preview of the method, not a
likeness).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from pipelines.common.errors import InputError

BASE_MODEL_ID = "time_machine/sd15"  # registry id of the base text-to-image model

MIN_PHOTOS = 10
MAX_PHOTOS = 20
CLASS_NOUN = "person"
# A rare token, so the person's name in a prompt does not start from an existing concept (DreamBooth).
INSTANCE_TOKEN = "sks"


@dataclass
class TrainConfig:
    """One training run (stored as ``job/config.json`` beside the person)."""

    resolution: int = 512  # px; capped at the base model's native size
    rank: int = 16  # LoRA rank (alpha = rank)
    learning_rate: float = 1e-4
    max_steps: int = 800
    batch_size: int = 1
    time_budget_min: float = 30.0  # wall time of one session, evaluation and checkpoints included
    mixed_precision: str = "auto"  # "auto": fp16 on CUDA (bf16 where supported), fp32 on CPU
    checkpoint_every: int = 50
    preview_every: int = 100
    seed: int = 0
    device: str = ""  # "" = pick_device()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        if not 16 <= self.resolution <= 1024 or self.resolution % 8:
            raise InputError(f"Resolution must be a multiple of 8 between 16 and 1024 (got {self.resolution}).")
        if not 1 <= self.rank <= 128:
            raise InputError(f"LoRA rank must be between 1 and 128 (got {self.rank}).")
        if not 1 <= self.max_steps <= 20000 or not 1 <= self.batch_size <= 16:
            raise InputError("Steps must be 1..20000 and the batch 1..16.")
        if not 0 < self.time_budget_min <= 24 * 60:
            raise InputError(f"The time budget must be between 0 and 1440 minutes (got {self.time_budget_min}).")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise InputError(f"Unknown precision {self.mixed_precision!r}: auto, no, fp16 or bf16.")


PRESETS: dict[str, dict[str, Any]] = {
    # diffusers' DreamBooth-LoRA defaults for SD 1.5 faces: 512 px, rank 16, lr 1e-4, ~800 steps.
    "standard": dict(resolution=512, rank=16, learning_rate=1e-4, max_steps=800, batch_size=1, checkpoint_every=100,
                     preview_every=200),
    # What a CPU can finish in minutes: 256 px, rank 4, a higher rate for few steps.
    "test": dict(resolution=256, rank=4, learning_rate=5e-4, max_steps=60, batch_size=1, checkpoint_every=20,
                 preview_every=30, time_budget_min=30.0),
}  # fmt: skip
CPU_PRESETS = ("test",)


def train_config(preset: str = "test", **overrides: Any) -> TrainConfig:
    if preset not in PRESETS:
        raise InputError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    config = TrainConfig.from_dict({**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}})
    config.validate()
    return config


@dataclass(frozen=True)
class GenerateConfig:
    steps: int = 30
    guidance_scale: float = 7.5
    max_images_per_era: int = 4
    max_eras: int = 6


def generate_config() -> GenerateConfig:
    """Generation bounds; ``NOSTALGIA_TM_STEPS`` changes the sampler's step count."""
    steps = int(os.environ.get("NOSTALGIA_TM_STEPS") or GenerateConfig.steps)
    return GenerateConfig(steps=max(1, min(steps, 100)))
