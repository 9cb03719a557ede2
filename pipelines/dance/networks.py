"""The pix2pixHD networks of Everybody Dance Now, with the original state-dict layout.

Everybody Dance Now never published weights; checkpoints are the ones a user trains here (or with
the original code), saved as plain ``net.state_dict()``. So the module names below reproduce the
original ones exactly (``model.N``, ``model1_1``/``model1_2``, ``scale{i}_layer{j}``,
``facemodel``): a file written by the original trainer loads with ``strict=True`` and vice versa.

Conventions shared by every network (see ``shared/reference/edn/README.md``):

* generators take 6 channels: the current label (RGB, 0..1) and the previous generated frame
  (-1..1, zeros for the first frame); they output -1..1 (tanh);
* InstanceNorm has ``affine=False`` and no running statistics, so it adds no keys; the face
  discriminator is the only BatchNorm network;
* every input pyramid uses ``AvgPool2d(3, 2, 1, count_include_pad=False)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

NormFactory = type[nn.Module]


def instance_norm(channels: int) -> nn.Module:
    """pix2pixHD's ``norm='instance'``: no affine parameters, no running statistics."""
    return nn.InstanceNorm2d(channels, affine=False)


def batch_norm(channels: int) -> nn.Module:
    """The face discriminator's norm (affine, running statistics)."""
    return nn.BatchNorm2d(channels)


def pyramid_downsample() -> nn.AvgPool2d:
    """Halve resolution for the next scale, exactly as the original (padding not counted)."""
    return nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)


# --------------------------------------------------------------------------- generators


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convs with a residual connection (keys ``conv_block.{1,5}``)."""

    def __init__(self, dim: int, norm=instance_norm):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _global_layers(input_nc: int, output_nc: int, ngf: int, n_downsampling: int, n_blocks: int, norm) -> list[nn.Module]:
    """The flat layer list of pix2pixHD's GlobalGenerator (its indices are the state-dict keys)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(n_downsampling):
        ch = ngf * 2**i
        layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), norm(ch * 2), nn.ReLU(True)]
    ch = ngf * 2**n_downsampling
    layers += [ResnetBlock(ch, norm) for _ in range(n_blocks)]
    for i in range(n_downsampling):
        ch = ngf * 2 ** (n_downsampling - i)
        layers += [
            nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
            norm(ch // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    return layers


class GlobalGenerator(nn.Module):
    """pix2pixHD GlobalGenerator: 7x7 stem, strided downsampling, ResnetBlocks, transposed-conv
    upsampling, 7x7 tanh head. Used for the global stage (ngf 64, 4 down, 9 blocks) and, with
    3 downsamplings and 5 blocks, as the face residual generator."""

    def __init__(
        self,
        input_nc: int = 6,
        output_nc: int = 3,
        ngf: int = 64,
        n_downsampling: int = 4,
        n_blocks: int = 9,
        norm=instance_norm,
    ):
        super().__init__()
        self.n_downsampling = n_downsampling
        self.n_blocks = n_blocks
        self.model = nn.Sequential(*_global_layers(input_nc, output_nc, ngf, n_downsampling, n_blocks, norm))

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return 2**self.n_downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output plus the activations after the encoder and after the residual blocks
        (the reference cases compare them to localise a mismatch)."""
        end_encoder = 4 + 3 * self.n_downsampling
        end_blocks = end_encoder + self.n_blocks
        stages: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i == end_encoder - 1:
                stages["stage.encoder"] = x
            elif i == end_blocks - 1:
                stages["stage.resblocks"] = x
        stages["y"] = x
        return stages


class LocalEnhancer(nn.Module):
    """pix2pixHD LocalEnhancer: a global generator (ngf * 2**n_local_enhancers, without its
    3-layer head) on the half-resolution input, refined at full resolution by ``model{n}_1``
    (downsampling front end) and ``model{n}_2`` (residual blocks, upsampling, head)."""

    def __init__(
        self,
        input_nc: int = 6,
        output_nc: int = 3,
        ngf: int = 32,
        n_downsample_global: int = 4,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm=instance_norm,
    ):
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        self.n_downsample_global = n_downsample_global
        global_layers = _global_layers(input_nc, output_nc, ngf * 2**n_local_enhancers, n_downsample_global, n_blocks_global, norm)
        self.model = nn.Sequential(*global_layers[:-3])
        for n in range(1, n_local_enhancers + 1):
            ch = ngf * 2 ** (n_local_enhancers - n)
            front = [
                nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ch, 7), norm(ch), nn.ReLU(True),
                nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), norm(ch * 2), nn.ReLU(True),
            ]  # fmt: skip
            back: list[nn.Module] = [ResnetBlock(ch * 2, norm) for _ in range(n_blocks_local)]
            back += [nn.ConvTranspose2d(ch * 2, ch, 3, stride=2, padding=1, output_padding=1), norm(ch), nn.ReLU(True)]
            if n == n_local_enhancers:
                back += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
            setattr(self, f"model{n}_1", nn.Sequential(*front))
            setattr(self, f"model{n}_2", nn.Sequential(*back))
        self.downsample = pyramid_downsample()

    @property
    def stride(self) -> int:
        return 2 ** (self.n_downsample_global + self.n_local_enhancers)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        stages = {"stage.input_downsampled": pyramid[-1], "stage.global_features": out}
        for n in range(1, self.n_local_enhancers + 1):
            front = getattr(self, f"model{n}_1")(pyramid[self.n_local_enhancers - n])
            if n == 1:
                stages["stage.local_downsample"] = front
            out = getattr(self, f"model{n}_2")(front + out)
        stages["y"] = out
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            out = getattr(self, f"model{n}_2")(getattr(self, f"model{n}_1")(pyramid[self.n_local_enhancers - n]) + out)
        return out


# --------------------------------------------------------------------------- discriminators


def _patch_layers(input_nc: int, ndf: int, n_layers: int, norm, use_sigmoid: bool) -> list[list[nn.Module]]:
    """PatchGAN layer groups: k4 convs (padding 2), stride 2 then 1, channels capped at 512."""
    groups: list[list[nn.Module]] = [[nn.Conv2d(input_nc, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True)]]
    nf = ndf
    for _ in range(1, n_layers):
        prev, nf = nf, min(nf * 2, 512)
        groups.append([nn.Conv2d(prev, nf, 4, stride=2, padding=2), norm(nf), nn.LeakyReLU(0.2, True)])
    prev, nf = nf, min(nf * 2, 512)
    groups.append([nn.Conv2d(prev, nf, 4, stride=1, padding=2), norm(nf), nn.LeakyReLU(0.2, True)])
    groups.append([nn.Conv2d(nf, 1, 4, stride=1, padding=2)])
    if use_sigmoid:
        groups.append([nn.Sigmoid()])
    return groups


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator. With ``intermediate=True`` each layer group is its own module
    (``{prefix}model{j}``) and ``forward`` returns every group's output (for feature matching);
    otherwise one ``{prefix}model`` Sequential returning the patch scores. The face
    discriminator is ``NLayerDiscriminator(6, norm=batch_norm, prefix="face")``."""

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm=instance_norm,
        use_sigmoid: bool = False,
        intermediate: bool = False,
        prefix: str = "",
    ):
        super().__init__()
        self.prefix = prefix
        self.intermediate = intermediate
        groups = _patch_layers(input_nc, ndf, n_layers, norm, use_sigmoid)
        self.n_groups = len(groups)
        if intermediate:
            for j, group in enumerate(groups):
                setattr(self, f"{prefix}model{j}", nn.Sequential(*group))
        else:
            setattr(self, f"{prefix}model", nn.Sequential(*[m for g in groups for m in g]))

    def groups(self) -> list[nn.Module]:
        if self.intermediate:
            return [getattr(self, f"{self.prefix}model{j}") for j in range(self.n_groups)]
        return [getattr(self, f"{self.prefix}model")]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if not self.intermediate:
            return getattr(self, f"{self.prefix}model")(x)
        feats = []
        for group in self.groups():
            x = group(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on an input pyramid. Output ``i`` (``i = 0`` full resolution) is the
    list of layer outputs of sub-network ``scale{num_D-1-i}`` (or ``layer{num_D-1-i}`` without
    intermediate features), as in the original; the last entry of each list is the score map."""

    def __init__(
        self,
        input_nc: int = 12,
        ndf: int = 64,
        n_layers: int = 3,
        norm=instance_norm,
        use_sigmoid: bool = False,
        num_D: int = 3,  # noqa: N803 - the original option name
        intermediate: bool = True,
    ):
        super().__init__()
        self.num_D = num_D
        self.n_layers = n_layers
        self.intermediate = intermediate
        for i in range(num_D):
            groups = _patch_layers(input_nc, ndf, n_layers, norm, use_sigmoid)
            if intermediate:
                for j, group in enumerate(groups):
                    setattr(self, f"scale{i}_layer{j}", nn.Sequential(*group))
            else:
                setattr(self, f"layer{i}", nn.Sequential(*[m for g in groups for m in g]))
        self.n_groups = len(groups)
        self.downsample = pyramid_downsample()

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results: list[list[torch.Tensor]] = []
        for i in range(self.num_D):
            s = self.num_D - 1 - i
            if self.intermediate:
                feats, h = [], x
                for j in range(self.n_groups):
                    h = getattr(self, f"scale{s}_layer{j}")(h)
                    feats.append(h)
                results.append(feats)
            else:
                results.append([getattr(self, f"layer{s}")(x)])
            if i != self.num_D - 1:
                x = self.downsample(x)
        return results


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class GeneratorConfig:
    """One generator variant as data (saved beside every trained checkpoint as JSON)."""

    kind: str = "global"  # "global" | "local"
    input_nc: int = 6
    output_nc: int = 3
    ngf: int = 64
    n_downsampling: int = 4  # global: n_downsample_global
    n_blocks: int = 9  # global: n_blocks_global
    n_local_enhancers: int = 1
    n_blocks_local: int = 3

    def build(self) -> nn.Module:
        if self.kind == "global":
            return GlobalGenerator(self.input_nc, self.output_nc, self.ngf, self.n_downsampling, self.n_blocks)
        if self.kind == "local":
            return LocalEnhancer(
                self.input_nc, self.output_nc, self.ngf, self.n_downsampling, self.n_blocks,
                self.n_local_enhancers, self.n_blocks_local,
            )  # fmt: skip
        raise ValueError(f"unknown generator kind {self.kind!r} (global or local)")

    @property
    def stride(self) -> int:
        """Frame sides must be multiples of this (32 for the published global and local nets)."""
        extra = self.n_local_enhancers if self.kind == "local" else 0
        return 2 ** (self.n_downsampling + extra)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# The published variants (EDN README commands), as data.
GLOBAL_G = GeneratorConfig("global", ngf=64, n_downsampling=4, n_blocks=9)
LOCAL_G = GeneratorConfig("local", ngf=32, n_downsampling=4, n_blocks=9, n_local_enhancers=1, n_blocks_local=3)
FACE_G = GeneratorConfig("global", ngf=64, n_downsampling=3, n_blocks=5)


def build_global_generator() -> GlobalGenerator:
    return GLOBAL_G.build()  # type: ignore[return-value]


def build_local_enhancer() -> LocalEnhancer:
    return LOCAL_G.build()  # type: ignore[return-value]


def build_face_generator() -> GlobalGenerator:
    return FACE_G.build()  # type: ignore[return-value]


def build_multiscale_discriminator(num_D: int = 3, ndf: int = 64) -> MultiscaleDiscriminator:  # noqa: N803
    return MultiscaleDiscriminator(12, ndf, 3, num_D=num_D, intermediate=True)


def build_face_discriminator(ndf: int = 64) -> NLayerDiscriminator:
    return NLayerDiscriminator(6, ndf, 3, norm=batch_norm, prefix="face")


def init_weights(module: nn.Module) -> None:
    """The original ``weights_init``: conv weights N(0, 0.02); BatchNorm scale N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_frame_size(height: int, width: int, stride: int) -> None:
    """Generators need sides that are multiples of their total stride (32 for the published nets)."""
    if height % stride or width % stride:
        raise ValueError(f"frame {width}x{height} is not a multiple of {stride}; use e.g. "
                         f"{math.ceil(width / stride) * stride}x{math.ceil(height / stride) * stride}")
