"""VAE_A / VAE_B: ``GlobalGenerator_DCDCv2`` (``Global/models/networks.py``), the two latent-space autoencoders.

Each published ``latest_net_G.pth`` holds the whole generator (``encoder.*`` and ``decoder.*``) although stage 1
uses only one half of each: VAE_A's encoder maps the old photo to the latent, VAE_B's decoder maps the cleaned
latent to the restored photo. We build the whole generator so the file loads strictly, and run one half.
"""

from __future__ import annotations

import torch
from torch import nn

from pipelines.restoration.config import VAEConfig
from pipelines.restoration.networks.blocks import ResnetBlock, instance_norm


class GlobalGeneratorDCDCv2(nn.Module):
    """Encoder: 7x7 conv, ``n_downsampling - 1`` stride-2 4x4 convs and ResnetBlocks; decoder mirrors it with
    transposed convs and ends in 7x7 conv + tanh. With test.py's options the latent is (N, 64, H/4, W/4).

    One in-place ReLU instance is shared by every layer, as in the original (see :class:`ResnetBlock`).
    """

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        cfg = config or VAEConfig()
        ngf, mc, k = cfg.ngf, cfg.mc, cfg.k_size
        act = nn.ReLU(True)

        def down(ic: int, oc: int) -> list[nn.Module]:
            return [nn.Conv2d(ic, oc, kernel_size=k, stride=2, padding=1), instance_norm(oc), act]

        def up(ic: int, oc: int) -> list[nn.Module]:
            o_pad = 0 if k == 4 else 1
            return [
                nn.ConvTranspose2d(ic, oc, kernel_size=k, stride=2, padding=1, output_padding=o_pad),
                instance_norm(oc),
                act,
            ]

        enc: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cfg.input_nc, min(ngf, mc), 7), instance_norm(ngf), act]
        for i in range(cfg.start_r):
            enc += down(min(ngf * 2**i, mc), min(ngf * 2 ** (i + 1), mc))
        for i in range(cfg.start_r, cfg.n_downsampling - 1):
            ch = min(ngf * 2 ** (i + 1), mc)
            enc += down(min(ngf * 2**i, mc), ch)
            enc += [ResnetBlock(ch, act), ResnetBlock(ch, act)]
        mult = 2 ** (cfg.n_downsampling - 1)
        ch = min(ngf * mult * 2, mc)
        if cfg.spatio_size == 32:
            enc += down(min(ngf * mult, mc), ch)
        if cfg.spatio_size == 64:
            enc += [ResnetBlock(ch, act)]
        enc += [ResnetBlock(ch, act)]
        if cfg.feat_dim > 0:
            enc += [nn.Conv2d(ch, cfg.feat_dim, 1, 1)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = []
        if cfg.feat_dim > 0:
            dec += [nn.Conv2d(cfg.feat_dim, ch, 1, 1)]
        mult = 2**cfg.n_downsampling
        dec += [ResnetBlock(min(ngf * mult, mc), act)]
        if cfg.spatio_size == 32:
            dec += up(min(ngf * mult, mc), min(ngf * mult // 2, mc))
        if cfg.spatio_size == 64:
            dec += [ResnetBlock(min(ngf * mult, mc), act)]
        for i in range(1, cfg.n_downsampling - cfg.start_r):
            mult = 2 ** (cfg.n_downsampling - i)
            dec += [ResnetBlock(min(ngf * mult, mc), act), ResnetBlock(min(ngf * mult, mc), act)]
            dec += up(min(ngf * mult, mc), min(ngf * mult // 2, mc))
        for i in range(cfg.n_downsampling - cfg.start_r, cfg.n_downsampling):
            mult = 2 ** (cfg.n_downsampling - i)
            dec += up(min(ngf * mult, mc), min(ngf * mult // 2, mc))
        dec += [nn.ReflectionPad2d(3), nn.Conv2d(min(ngf, mc), cfg.output_nc, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1], (N,3,H,W) with H, W multiples of 4 -> latent (N,64,H/4,W/4)."""
        return self.encoder(image)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (N,64,h,w) -> RGB in [-1, 1] (tanh), (N,3,4h,4w)."""
        return self.decoder(latent)

    def forward(self, x: torch.Tensor, flow: str = "enc_dec") -> torch.Tensor:
        if flow == "enc":
            return self.encoder(x)
        if flow == "dec":
            return self.decoder(x)
        if flow == "enc_dec":
            return self.decoder(self.encoder(x))
        raise ValueError(f"flow must be 'enc', 'dec' or 'enc_dec', not {flow!r}")
