"""SPADE face enhancer (stage 3): ``Face_Enhancement/models/networks/generator.py:SPADEGenerator``.

Configuration of the published checkpoints: ``norm_G spectralspadesyncbatch3x3``, ngf 64, "normal" upsampling,
no VAE, SPADE injected in every block, ``--no_parsing_map`` (the SPADE modulation is computed from the degraded
face itself, the segmentation input is unused). ``Setting_9_epoch_100`` is load_size 256, ``FaceSR_512`` 512.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipelines.restoration.config import FaceGeneratorConfig


class SpectralConv2d(nn.Module):
    """A Conv2d with spectral normalisation in the layout of ``torch.nn.utils.spectral_norm``.

    Keys ``weight_orig``, ``weight_u``, ``weight_v`` (and ``bias``). Inference only: the weight is
    ``weight_orig / (u . W v)`` with the stored ``u``, ``v`` (what PyTorch's hook computes in eval mode);
    there is no power iteration, so results never drift between calls.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int = 0, bias: bool = True):
        super().__init__()
        self.padding = padding
        self.weight_orig = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight_orig, a=5**0.5)
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        w = self.weight_orig.detach().reshape(out_ch, -1)
        self.register_buffer("weight_u", F.normalize(torch.randn(out_ch), dim=0, eps=1e-12))
        self.register_buffer("weight_v", F.normalize(w.t() @ self.weight_u, dim=0, eps=1e-12))

    def weight(self) -> torch.Tensor:
        w_mat = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        sigma = torch.dot(self.weight_u, torch.mv(w_mat, self.weight_v))
        return self.weight_orig / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """``norm(x) * (1 + gamma(face)) + beta(face)``; norm = BatchNorm2d(affine=False) with running stats."""

    def __init__(self, channels: int, hidden: int = 128, kernel_size: int = 3):
        super().__init__()
        pw = kernel_size // 2
        self.param_free_norm = nn.BatchNorm2d(channels, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(3, hidden, kernel_size, padding=pw), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pw)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=pw)

    def forward(self, x: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        face = F.interpolate(face, size=x.shape[2:], mode="bilinear", align_corners=False)
        actv = self.mlp_shared(face)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """Pre-activation residual block with SPADE norms and spectral-norm convs; learned 1x1 shortcut if fin != fout."""

    def __init__(self, fin: int, fout: int, hidden: int = 128):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmid = min(fin, fout)
        self.conv_0 = SpectralConv2d(fin, fmid, 3, padding=1)
        self.conv_1 = SpectralConv2d(fmid, fout, 3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, hidden)
        self.norm_1 = SPADE(fmid, hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, hidden)

    def forward(self, x: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, face)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, face), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, face), 0.2))
        return x_s + dx


class SPADEFaceGenerator(nn.Module):
    """Degraded face (N,3,s,s) in [-1,1] -> enhanced face (N,3,load_size,load_size) in [-1,1] (tanh)."""

    def __init__(self, config: FaceGeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or FaceGeneratorConfig()
        nf, hid = cfg.ngf, cfg.spade_hidden
        self.fc = nn.Conv2d(3, 16 * nf, 3, padding=1)
        self.head_0 = SPADEResnetBlock(16 * nf, 16 * nf, hid)
        self.G_middle_0 = SPADEResnetBlock(16 * nf, 16 * nf, hid)
        self.G_middle_1 = SPADEResnetBlock(16 * nf, 16 * nf, hid)
        self.up_0 = SPADEResnetBlock(16 * nf, 8 * nf, hid)
        self.up_1 = SPADEResnetBlock(8 * nf, 4 * nf, hid)
        self.up_2 = SPADEResnetBlock(4 * nf, 2 * nf, hid)
        self.up_3 = SPADEResnetBlock(2 * nf, 1 * nf, hid)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def forward(self, seg: torch.Tensor | None, degraded_image: torch.Tensor) -> torch.Tensor:
        """``seg`` is accepted for the original's signature and ignored (``--no_parsing_map``)."""
        face = degraded_image
        x = F.interpolate(face, size=self.config.latent_size, mode="bilinear", align_corners=False)
        x = self.fc(x)
        x = self.head_0(x, face)
        x = self._up(x)
        x = self.G_middle_0(x, face)
        x = self.G_middle_1(x, face)
        for block in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = block(self._up(x), face)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x)
