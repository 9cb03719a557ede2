"""The four released TPSMM configurations, as data.

``model_params`` mirror ``config/<name>.yaml`` of the original repository; vox-256, taichi-256 and
ted-384 are identical apart from the demo resolution (ted runs at 384x384); mgif-256 has no
background predictor. ``build_*`` functions are the registry builders (random init, no downloads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.common.errors import InputError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CommonParams:
    num_tps: int = 10
    num_channels: int = 3
    bg: bool = True
    multi_mask: bool = True


@dataclass(frozen=True)
class GeneratorParams:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 3


@dataclass(frozen=True)
class DenseMotionParams:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25


@dataclass(frozen=True)
class AVDParams:
    id_bottle_size: int = 128
    pose_bottle_size: int = 128


@dataclass(frozen=True)
class TPSMMConfig:
    """One released model: its networks' parameters, demo resolution and what it is for."""

    name: str
    checkpoint_id: str
    img_size: int
    label: str
    purpose: str
    face: bool  # trained on faces: face detection / cropping / best-frame apply
    common: CommonParams = field(default_factory=CommonParams)
    generator: GeneratorParams = field(default_factory=GeneratorParams)
    dense_motion: DenseMotionParams = field(default_factory=DenseMotionParams)
    avd: AVDParams = field(default_factory=AVDParams)

    def kp_detector_args(self) -> dict[str, Any]:
        return {"num_tps": self.common.num_tps}

    def dense_motion_args(self) -> dict[str, Any]:
        c, d = self.common, self.dense_motion
        return {
            "block_expansion": d.block_expansion,
            "num_blocks": d.num_blocks,
            "max_features": d.max_features,
            "num_tps": c.num_tps,
            "num_channels": c.num_channels,
            "scale_factor": d.scale_factor,
            "bg": c.bg,
            "multi_mask": c.multi_mask,
        }

    def inpainting_args(self) -> dict[str, Any]:
        c, g = self.common, self.generator
        return {
            "num_channels": c.num_channels,
            "block_expansion": g.block_expansion,
            "max_features": g.max_features,
            "num_down_blocks": g.num_down_blocks,
            "multi_mask": c.multi_mask,
        }

    def avd_args(self) -> dict[str, Any]:
        return {"num_tps": self.common.num_tps, "id_bottle_size": self.avd.id_bottle_size, "pose_bottle_size": self.avd.pose_bottle_size}

    @property
    def components(self) -> tuple[str, ...]:
        """Checkpoint entries this config's file holds (bg_predictor only when ``bg``)."""
        base = ("kp_detector", "dense_motion_network", "inpainting_network", "avd_network")
        return (*base, "bg_predictor") if self.common.bg else base

    def build(self, network: str) -> torch.nn.Module:
        """One network of this config, randomly initialised (the weights come from the registry
        or, in parity checks and benchmarks, from the fixture formula)."""
        from pipelines.animation import networks

        if network == "kp_detector":
            return networks.KPDetector(**self.kp_detector_args())
        if network == "dense_motion_network":
            return networks.DenseMotionNetwork(**self.dense_motion_args())
        if network == "inpainting_network":
            return networks.InpaintingNetwork(**self.inpainting_args())
        if network == "avd_network":
            return networks.AVDNetwork(**self.avd_args())
        if network == "bg_predictor":
            return networks.BGMotionPredictor()
        raise KeyError(f"unknown TPSMM network {network!r}; one of {', '.join(NETWORKS)}")


CONFIGS: dict[str, TPSMMConfig] = {
    "vox": TPSMMConfig(
        "vox", "tpsmm/vox", 256, "Talking face (VoxCeleb)",
        "Portraits: a face animated by a talking-head video. The Deep Nostalgia use case.", face=True,
    ),
    "taichi": TPSMMConfig(
        "taichi", "tpsmm/taichi", 256, "Full body (TaiChiHD)",
        "A whole standing person moved by a full-body video (trained on tai-chi).", face=False,
    ),
    "ted": TPSMMConfig(
        "ted", "tpsmm/ted", 384, "Upper body (TED talks)",
        "A presenter from the waist up, animated by a talk video, at 384x384.", face=False,
    ),
    "mgif": TPSMMConfig(
        "mgif", "tpsmm/mgif", 256, "Pixel animals (MGif)",
        "Cartoon animals on plain backgrounds (trained on the MGif set).", face=False,
        common=CommonParams(bg=False),
    ),
}  # fmt: skip


def get_config(name: str) -> TPSMMConfig:
    key = name.lower().split("-")[0]
    if key not in CONFIGS:
        raise InputError(f"Unknown animation model {name!r}; choose one of {', '.join(CONFIGS)}.")
    return CONFIGS[key]


def config_from_model_params(model_params: dict[str, Any], name: str = "custom", img_size: int = 256) -> TPSMMConfig:
    """A config from the original YAML's ``model_params`` section (what reference cases record)."""
    return TPSMMConfig(
        name, f"tpsmm/{name}", img_size, name, "", face=False,
        common=CommonParams(**model_params.get("common_params", {})),
        generator=GeneratorParams(**model_params.get("generator_params", {})),
        dense_motion=DenseMotionParams(**model_params.get("dense_motion_params", {})),
        avd=AVDParams(**model_params.get("avd_network_params", {})),
    )  # fmt: skip


# --------------------------------------------------------------------------- registry builder

NETWORKS = ("kp_detector", "dense_motion_network", "inpainting_network", "avd_network", "bg_predictor")
#: The networks :class:`~pipelines.animation.pipeline.TPSMMPipeline` runs (the demo never uses bg_predictor).
PIPELINE_NETWORKS = NETWORKS[:4]


def build_network(config: str, network: str) -> torch.nn.Module:
    """One network of a released config (random weights): the registry's builder of every TPSMM
    component (``weights/catalog/tpsmm.py`` passes ``config`` and ``network`` as data)."""
    return CONFIGS[config].build(network)
