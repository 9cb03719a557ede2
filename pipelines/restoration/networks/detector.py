"""Scratch-detection UNet (stage 1a), keys as in ``Global/checkpoints/detection/FT_Epoch_latest.pt["model_state"]``.

Reflection padding everywhere, BatchNorm (plain ``BatchNorm2d``: the original's SynchronizedBatchNorm is the same
in eval mode, with the same keys), LeakyReLU 0.2, anti-aliased stride-2 downsampling (a fixed binomial filter
stored as the buffer ``filt``), bilinear upsampling. The output is logits; the caller applies the sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipelines.restoration.config import DetectorConfig


class AntialiasDownsample(nn.Module):
    """Blur-then-subsample (Zhang 2019, "Making CNNs shift-invariant again"), filter size 3, stride 2.

    The depthwise filter is a buffer (``filt``, shape (C,1,3,3)) because the checkpoint stores it; the real
    file holds ``[1,2,1]^T [1,2,1] / 16`` per channel, which is also what a fresh module starts with.
    """

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        self.stride = stride
        taps = torch.tensor([1.0, 2.0, 1.0])
        filt = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=x.shape[1])


def _conv_block(conv_num: int, in_ch: int, out_ch: int, slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(conv_num):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3), nn.BatchNorm2d(out_ch), nn.LeakyReLU(slope, True)]
        in_ch = out_ch
    return nn.Sequential(*layers)


class UNetConvBlock(nn.Module):
    """``conv_num`` x (reflect pad 1, conv 3x3, BN, LeakyReLU); keys ``block.{1,2,5,6}``."""

    def __init__(self, conv_num: int, in_ch: int, out_ch: int, slope: float):
        super().__init__()
        self.block = _conv_block(conv_num, in_ch, out_ch, slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UNetUpBlock(nn.Module):
    """Bilinear x2, reflect pad, conv 3x3 (``up.2``); concatenate the skip; conv block (``conv_block``)."""

    def __init__(self, conv_num: int, in_ch: int, out_ch: int, slope: float):
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(mode="bilinear", scale_factor=2, align_corners=False),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_ch, out_ch, 3),
        )
        self.conv_block = UNetConvBlock(conv_num, in_ch, out_ch, slope)

    def forward(self, x: torch.Tensor, bridge: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        # The original centre-crops the skip to the upsampled size; with padding both are equal (even sizes).
        if bridge.shape[2:] != up.shape[2:]:
            dy = (bridge.shape[2] - up.shape[2]) // 2
            dx = (bridge.shape[3] - up.shape[3]) // 2
            bridge = bridge[:, :, dy : dy + up.shape[2], dx : dx + up.shape[3]]
        return self.conv_block(torch.cat([up, bridge], 1))


class ScratchDetectorUNet(nn.Module):
    """UNet(depth 4, wf 6, conv_num 2) of detection.py. Input (N,1,H,W) grey in [-1,1], H and W multiples of 16."""

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        cfg = config or DetectorConfig()
        slope = cfg.leaky_slope
        width = 2**cfg.wf
        self.first = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(cfg.in_channels, width, 7), nn.LeakyReLU(slope, True))
        self.down_path = nn.ModuleList()
        self.down_sample = nn.ModuleList()
        prev = width
        for i in range(cfg.depth):
            self.down_sample.append(
                nn.Sequential(
                    nn.ReflectionPad2d(1),
                    nn.Conv2d(prev, prev, 3),
                    nn.BatchNorm2d(prev),
                    nn.LeakyReLU(slope, True),
                    AntialiasDownsample(prev),
                )
            )
            out = 2 ** (cfg.wf + i + 1)
            self.down_path.append(UNetConvBlock(cfg.conv_num, prev, out, slope))
            prev = out
        self.up_path = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            out = 2 ** (cfg.wf + i)
            self.up_path.append(UNetUpBlock(cfg.conv_num, prev, out, slope))
            prev = out
        self.last = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(prev, cfg.out_channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for down_sample, down in zip(self.down_sample, self.down_path, strict=True):
            skips.append(x)
            x = down(down_sample(x))
        for i, up in enumerate(self.up_path):
            x = up(x, skips[-i - 1])
        return self.last(x)
