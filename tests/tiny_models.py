"""Tiny networks for the foundation tests (registry, store, fixture files)."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.utils.spectral_norm(nn.Conv2d(3, 4, 3, padding=1))
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.conv(x)).mean((2, 3)))


def build_tiny() -> nn.Module:
    return TinyNet()


def build_linear() -> nn.Module:
    return nn.Linear(3, 2)
