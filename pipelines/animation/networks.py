"""The five networks of the Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022).

Module and parameter names reproduce the published ``*.pth.tar`` state dicts exactly, so each
network loads its entry of the checkpoint with ``strict=True``. The maths follows the original
``yoyo-nb/Thin-Plate-Spline-Motion-Model`` (commit c616878) operation for operation where float32
rounding matters (TPS system built the same way and inverted with ``torch.inverse``); elsewhere
the code is organised for inference speed:

* every network takes keypoints as plain ``(bs, K*5, 2)`` tensors (the original wraps them in
  ``{'fg_kp': ...}`` dicts);
* the dense motion network and the inpainting network accept a batch of driving keypoints for ONE
  source image (source batch 1 is broadcast), and split their work into a source-side part that is
  computed once per source (down-sampled source, source heatmaps, inpainting encoder features) and
  a per-frame part.

Coordinates are normalised to [-1, 1] as ``(x, y)`` pairs, ``align_corners=True`` everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

# --------------------------------------------------------------------------- geometry helpers


def coordinate_grid(h: int, w: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """(h, w, 2) grid of ``(x, y)`` in [-1, 1]; pixel centres of the borders sit at +-1."""
    x = 2 * (torch.arange(w, dtype=dtype, device=device) / (w - 1)) - 1
    y = 2 * (torch.arange(h, dtype=dtype, device=device) / (h - 1)) - 1
    return torch.stack([x.view(1, w).expand(h, w), y.view(h, 1).expand(h, w)], dim=-1)


def gaussian_heatmaps(kp: torch.Tensor, h: int, w: int, variance: float) -> torch.Tensor:
    """``exp(-|grid - kp|^2 / (2 variance))`` for every keypoint: (bs, N, 2) -> (bs, N, h, w)."""
    grid = coordinate_grid(h, w, kp.dtype, kp.device)
    diff = grid.view(1, 1, h, w, 2) - kp.view(*kp.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def _tps_kernel(sq_dist: torch.Tensor) -> torch.Tensor:
    """TPS radial basis on SQUARED distances: U = r^2 log r^2 (the original's convention)."""
    return sq_dist * torch.log(sq_dist + 1e-9)


def tps_grids(kp_driving: torch.Tensor, kp_source: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Backward sampling grids of the K thin-plate-spline warps, (bs, K, h, w, 2).

    Group k interpolates driving control points ``kp_driving[:, 5k:5k+5]`` onto source points
    ``kp_source[:, 5k:5k+5]`` with a 0.01 ridge on the whole 8x8 system; each driving-frame pixel
    gets the source location to sample. ``kp_source`` may have batch 1 (broadcast).
    """
    bs = kp_driving.shape[0]
    p = kp_driving.view(bs, -1, 5, 2)  # control points (driving)
    q = kp_source.view(kp_source.shape[0], -1, 5, 2).expand(bs, -1, -1, -1)  # targets (source)
    groups, n = p.shape[1], p.shape[2]
    dtype, device = p.dtype, p.device
    # Built with the same operations as the original so float32 rounding of the inverse matches.
    k_mat = _tps_kernel(torch.norm(p[:, :, :, None] - p[:, :, None, :], dim=4, p=2) ** 2)
    p1 = torch.cat([p, torch.ones(bs, groups, n, 1, dtype=dtype, device=device)], 3)
    bottom = torch.cat([p1, torch.zeros(bs, groups, 3, 3, dtype=dtype, device=device)], 2)
    system = torch.cat([torch.cat([k_mat, p1.permute(0, 1, 3, 2)], 2), bottom], 3)
    system = system + torch.eye(n + 3, dtype=dtype, device=device).expand(system.shape) * 0.01
    rhs = torch.cat([q, torch.zeros(bs, groups, 3, 2, dtype=dtype, device=device)], 2)
    param = torch.matmul(torch.inverse(system), rhs)
    affine = param[:, :, n:, :].permute(0, 1, 3, 2)  # (bs, K, 2, 3)
    weights = param[:, :, :n, :]  # (bs, K, n, 2)

    coords = coordinate_grid(h, w, dtype, device).view(1, h * w, 2)
    out = torch.matmul(affine[:, :, :, :2], coords.permute(0, 2, 1)) + affine[:, :, :, 2:]  # (bs, K, 2, hw)
    sq = ((coords.view(1, 1, 1, -1, 2) - p.reshape(bs, groups, n, 1, 2)) ** 2).sum(-1)  # (bs, K, n, hw)
    radial = torch.matmul(_tps_kernel(sq).permute(0, 1, 3, 2), weights)  # (bs, K, hw, 2)
    return (out.permute(0, 1, 3, 2) + radial).view(bs, groups, h, w, 2)


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``features`` (bs or 1, C, H, W) at ``flow`` (bs, h, w, 2), resizing the flow to
    (H, W) bilinearly first when sizes differ (bilinear, zero padding, align_corners=True)."""
    h, w = features.shape[2:]
    if flow.shape[1:3] != (h, w):
        flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    if features.shape[0] != flow.shape[0]:
        features = features.expand(flow.shape[0], *features.shape[1:])
    dtype = torch.promote_types(features.dtype, flow.dtype)  # a bf16/fp16 grid would move pixels: never round it
    return F.grid_sample(features.to(dtype), flow.to(dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


# --------------------------------------------------------------------------- building blocks


class DownBlock2d(nn.Module):
    """conv3x3 -> InstanceNorm(affine) -> ReLU -> AvgPool 2x2."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.InstanceNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class UpBlock2d(nn.Module):
    """Nearest x2 -> conv3x3 -> InstanceNorm(affine) -> ReLU."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.InstanceNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))))


class SameBlock2d(nn.Module):
    """conv -> InstanceNorm(affine) -> ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=kernel_size // 2)
        self.norm = nn.InstanceNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv(relu(IN(conv(relu(IN(x))))))."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.InstanceNorm2d(features, affine=True)
        self.norm2 = nn.InstanceNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out))) + x


class HourglassEncoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else min(max_features, block_expansion * 2**i),
                min(max_features, block_expansion * 2 ** (i + 1)),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.out_channels: list[int] = []
        blocks = []
        for i in reversed(range(num_blocks)):
            in_filters = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            self.out_channels.append(in_filters)
            blocks.append(UpBlock2d(in_filters, min(max_features, block_expansion * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels.append(block_expansion + in_features)

    def forward(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        """All intermediate concatenations, coarsest first (the last one is full resolution)."""
        skips = list(skips)
        out = skips.pop()
        outs = []
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
            outs.append(out)
        return outs


class Hourglass(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur (depthwise conv with the stored ``weight`` buffer) then nearest down-sampling.

    The kernel is a buffer saved in the checkpoints; the forward always uses the loaded value.
    """

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        axis = torch.arange(size, dtype=torch.float32)
        g = torch.exp(-((axis - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.conv2d(F.pad(x, (self.ka, self.kb, self.ka, self.kb)), self.weight, groups=self.groups)
        return F.interpolate(out, scale_factor=(self.scale, self.scale), mode="nearest")


def _resnet18_head(in_channels: int, outputs: int) -> nn.Module:
    net = resnet18(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Linear(net.fc.in_features, outputs)
    return net


def resnet18_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision resnet18 up to the flattened global average pool (bs, 512)."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return torch.flatten(net.avgpool(x), 1)


# --------------------------------------------------------------------------- the networks


class KPDetector(nn.Module):
    """resnet18 regressing ``num_tps * 5`` keypoints in (-1, 1) from an RGB image in [0, 1]."""

    def __init__(self, num_tps: int = 10, **_: object):
        super().__init__()
        self.num_tps = num_tps
        self.fg_encoder = _resnet18_head(3, num_tps * 5 * 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.fg_encoder(image)
        return (torch.sigmoid(logits) * 2 - 1).view(image.shape[0], self.num_tps * 5, 2)


class BGMotionPredictor(nn.Module):
    """resnet18 on cat(source, driving) predicting the background affine as a 3x3 matrix.

    Only training/reconstruction use it; it is built so ``bg: True`` checkpoints load whole.
    """

    def __init__(self, **_: object):
        super().__init__()
        self.bg_encoder = _resnet18_head(6, 6)
        with torch.no_grad():
            self.bg_encoder.fc.weight.zero_()
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))

    def forward(self, source_image: torch.Tensor, driving_image: torch.Tensor) -> torch.Tensor:
        bs = source_image.shape[0]
        rows = self.bg_encoder(torch.cat([source_image, driving_image], dim=1)).view(bs, 2, 3)
        last = torch.tensor([0.0, 0.0, 1.0], dtype=rows.dtype, device=rows.device).expand(bs, 1, 3)
        return torch.cat([rows, last], dim=1)


def _mlp(sizes: list[int], relu_inplace: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(sizes[i + 1]), nn.ReLU(inplace=relu_inplace)]
    return nn.Sequential(*layers)


class AVDNetwork(nn.Module):
    """Animation via disentanglement: new keypoints = decoder(pose(driving), identity(source))."""

    def __init__(self, num_tps: int = 10, id_bottle_size: int = 64, pose_bottle_size: int = 64, **_: object):
        super().__init__()
        size = num_tps * 5 * 2
        self.num_tps = num_tps
        self.id_encoder = _mlp([size, 256, 512, 1024, id_bottle_size], True)
        self.pose_encoder = _mlp([size, 256, 512, 1024, pose_bottle_size], True)
        self.decoder = _mlp([pose_bottle_size + id_bottle_size, 1024, 512, 256, size], False)

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        bs = kp_driving.shape[0]
        pose = self.pose_encoder(kp_driving.reshape(bs, -1))
        identity = self.id_encoder(kp_source.reshape(kp_source.shape[0], -1))
        if identity.shape[0] != bs:
            identity = identity.expand(bs, -1)
        return self.decoder(torch.cat([pose, identity], dim=1)).view(bs, self.num_tps * 5, 2)


@dataclass
class DenseMotion:
    """Output of :class:`DenseMotionNetwork` for a batch of driving poses."""

    deformation: torch.Tensor  # (bs, h/s, w/s, 2) backward flow
    occlusion_map: list[torch.Tensor]  # coarse to fine
    contribution_maps: torch.Tensor | None = None  # (bs, K+1, h/s, w/s)
    deformed_source: torch.Tensor | None = None  # (bs, K+1, C, h/s, w/s)
    transformations: torch.Tensor | None = None  # (bs, K+1, h/s, w/s, 2)
    maps_logits: torch.Tensor | None = None


@dataclass
class DenseMotionSource:
    """Per-source work of the dense motion network, reusable for every driving frame."""

    down: torch.Tensor  # (1, C, h, w) down-sampled source
    heat_source: torch.Tensor  # (1, N, h, w) source keypoint Gaussians
    kp_source: torch.Tensor  # (1, N, 2)


class DenseMotionNetwork(nn.Module):
    """Predicts the optical flow (softmax mixture of K TPS warps and one background grid) and the
    multi-resolution occlusion masks, at ``scale_factor`` of the input resolution."""

    def __init__(
        self,
        block_expansion: int = 64,
        num_blocks: int = 5,
        max_features: int = 1024,
        num_tps: int = 10,
        num_channels: int = 3,
        scale_factor: float = 0.25,
        bg: bool = False,
        multi_mask: bool = True,
        kp_variance: float = 0.01,
        **_: object,
    ):
        super().__init__()
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)
        self.scale_factor = scale_factor
        self.multi_mask = multi_mask
        self.num_tps = num_tps
        self.bg = bg
        self.kp_variance = kp_variance
        in_features = num_channels * (num_tps + 1) + num_tps * 5 + 1
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features)
        sizes = self.hourglass.out_channels
        self.maps = nn.Conv2d(sizes[-1], num_tps + 1, kernel_size=7, padding=3)
        if multi_mask:
            self.up_nums = int(math.log(1 / scale_factor, 2))
            self.occlusion_num = 4
            self.up = nn.ModuleList(UpBlock2d(sizes[-1] // 2**i, sizes[-1] // 2 ** (i + 1)) for i in range(self.up_nums))
            channels = [sizes[-i - 1] for i in range(self.occlusion_num - self.up_nums)[::-1]]
            channels += [sizes[-1] // 2 ** (i + 1) for i in range(self.up_nums)]
            self.occlusion = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=7, padding=3) for c in channels)
        else:
            self.occlusion = nn.ModuleList([nn.Conv2d(sizes[-1], 1, kernel_size=7, padding=3)])

    def prepare_source(self, source_image: torch.Tensor, kp_source: torch.Tensor) -> DenseMotionSource:
        down = self.down(source_image) if self.scale_factor != 1 else source_image
        h, w = down.shape[2:]
        return DenseMotionSource(down, gaussian_heatmaps(kp_source, h, w, self.kp_variance), kp_source)

    def forward(
        self,
        source_image: torch.Tensor | DenseMotionSource,
        kp_driving: torch.Tensor,
        kp_source: torch.Tensor | None = None,
        bg_param: torch.Tensor | None = None,
        keep_intermediates: bool = True,
    ) -> DenseMotion:
        """``source_image`` (1 or bs, C, H, W) or a prepared :class:`DenseMotionSource`;
        ``kp_driving`` (bs, N, 2); ``kp_source`` (1 or bs, N, 2)."""
        src = source_image if isinstance(source_image, DenseMotionSource) else self.prepare_source(source_image, kp_source)
        bs = kp_driving.shape[0]
        _, c, h, w = src.down.shape
        heat = gaussian_heatmaps(kp_driving, h, w, self.kp_variance) - src.heat_source
        heatmap = torch.cat([heat.new_zeros(bs, 1, h, w), heat], dim=1)

        identity = coordinate_grid(h, w, kp_driving.dtype, kp_driving.device).view(1, 1, h, w, 2).expand(bs, 1, h, w, 2)
        if bg_param is not None:
            homog = torch.cat([identity, torch.ones_like(identity[..., :1])], dim=-1)
            mapped = torch.matmul(bg_param.view(bs, 1, 1, 1, 3, 3), homog.unsqueeze(-1)).squeeze(-1)
            identity = mapped[..., :2] / mapped[..., 2:3]
        transformations = torch.cat([identity, tps_grids(kp_driving, src.kp_source, h, w)], dim=1)  # (bs, K+1, h, w, 2)

        k1 = self.num_tps + 1
        down = src.down.expand(bs, c, h, w) if src.down.shape[0] != bs else src.down
        repeated = down.unsqueeze(1).expand(bs, k1, c, h, w).reshape(bs * k1, c, h, w)
        grids = transformations.reshape(bs * k1, h, w, 2).to(repeated.dtype)
        deformed = F.grid_sample(repeated, grids, align_corners=True).view(bs, k1, c, h, w)

        prediction = self.hourglass(torch.cat([heatmap, deformed.view(bs, -1, h, w)], dim=1))
        logits = self.maps(prediction[-1])
        contribution = F.softmax(logits, dim=1)
        deformation = (transformations * contribution.unsqueeze(-1)).sum(dim=1)  # (bs, h, w, 2)

        masks: list[torch.Tensor] = []
        if self.multi_mask:
            for i in range(self.occlusion_num - self.up_nums):
                masks.append(torch.sigmoid(self.occlusion[i](prediction[self.up_nums - self.occlusion_num + i])))
            feature = prediction[-1]
            for i in range(self.up_nums):
                feature = self.up[i](feature)
                masks.append(torch.sigmoid(self.occlusion[i + self.occlusion_num - self.up_nums](feature)))
        else:
            masks.append(torch.sigmoid(self.occlusion[0](prediction[-1])))
        if not keep_intermediates:
            return DenseMotion(deformation, masks)
        return DenseMotion(deformation, masks, contribution, deformed, transformations, logits)


class InpaintingNetwork(nn.Module):
    """Encodes the source, warps every encoder level by the flow, masks it by the occlusion map
    of that level and decodes the driving frame; the occluded parts are inpainted."""

    def __init__(
        self,
        num_channels: int = 3,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 3,
        multi_mask: bool = True,
        **_: object,
    ):
        super().__init__()
        self.num_down_blocks = num_down_blocks
        self.multi_mask = multi_mask
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7)
        down, up, res = [], [], []
        for i in range(num_down_blocks):
            in_f = min(max_features, block_expansion * 2**i)
            out_f = min(max_features, block_expansion * 2 ** (i + 1))
            down.append(DownBlock2d(in_f, out_f))
            dec_in = out_f if i == num_down_blocks - 1 else out_f * 2
            up.append(UpBlock2d(dec_in, in_f))
            res += [ResBlock2d(dec_in), ResBlock2d(dec_in)]
        self.down_blocks = nn.ModuleList(down)
        self.up_blocks = nn.ModuleList(up[::-1])
        self.resblock = nn.ModuleList(res[::-1])
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def encode(self, source_image: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features of the source, finest first (depends on the source only)."""
        out = self.first(source_image)
        maps = [out]
        for block in self.down_blocks:
            out = block(out)
            maps.append(out)
        return maps

    def _mask(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.multi_mask and x.shape[2:] != mask.shape[2:]:
            mask = F.interpolate(mask, size=x.shape[2:], mode="bilinear", align_corners=True)
        return x * mask

    def decode(
        self,
        source_image: torch.Tensor,
        encoder_maps: list[torch.Tensor],
        deformation: torch.Tensor,
        occlusion_map: list[torch.Tensor],
        warped_maps: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, deformed source) for a batch of flows; source and encoder maps may have
        batch 1. ``warped_maps`` (optional) collects the warped, masked encoder features."""
        out = self._mask(warp(encoder_maps[-1], deformation), occlusion_map[0])
        if warped_maps is not None:
            warped_maps.append(out)
        encoded = out
        for i in range(self.num_down_blocks):
            out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
            out = self.up_blocks[i](out)
            encoded = self._mask(warp(encoder_maps[-(i + 2)], deformation), occlusion_map[i + 1 if self.multi_mask else 0])
            if warped_maps is not None:
                warped_maps.append(encoded)
            if i < self.num_down_blocks - 1:
                out = torch.cat([out, encoded], 1)
        deformed = warp(source_image, deformation)
        last = occlusion_map[-1]
        if not self.multi_mask:
            last = F.interpolate(last, size=out.shape[2:], mode="bilinear", align_corners=True)
        out = torch.sigmoid(self.final(out * (1 - last) + encoded))
        return out * (1 - last) + deformed * last, deformed

    def forward(self, source_image: torch.Tensor, motion: DenseMotion) -> torch.Tensor:
        prediction, _ = self.decode(source_image, self.encode(source_image), motion.deformation, motion.occlusion_map)
        return prediction
