"""The settings of one Dance training run (:class:`TrainConfig`, saved as ``job/config.json``)
and the rule for which saved runs a new configuration may continue (:func:`check_resumable`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.common.errors import InputError
from pipelines.dance.networks import GeneratorConfig, check_frame_size

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
    lpips_net: str = "alex"  # LPIPS backbone of the held-out quality figure: alex | vgg (if its weights are cached)
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
