"""Building blocks shared by the VAE and mapping networks (pix2pixHD style, instance norm)."""

from __future__ import annotations

import torch
from torch import nn


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """``InstanceNorm2d(affine=False)``: the original's ``get_norm_layer("instance")``; it has no state-dict keys."""
    return nn.InstanceNorm2d(channels, affine=False)


class ResnetBlock(nn.Module):
    """Reflect-pad, 3x3 conv, IN, ReLU, reflect-pad, 3x3 conv, IN; ``out = x + block(x)``.

    Keys ``conv_block.1`` and ``conv_block.5``. ``activation`` is passed in because the original shares one
    in-place ReLU instance across a whole network (forward hooks on it therefore see its *last* call); sharing
    it here too keeps hooks, and so the reference intermediates, identical.
    """

    def __init__(self, dim: int, activation: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        activation = activation if activation is not None else nn.ReLU(True)
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(dilation),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, dilation=dilation),
            instance_norm(dim),
            activation,
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0),
            instance_norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)
