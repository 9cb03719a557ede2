"""The training losses of Everybody Dance Now (pix2pixHD): LSGAN, discriminator feature matching
and the VGG19 perceptual loss, with the original weights.

* LSGAN: MSE of each scale's patch score map against 1 (real) or 0 (fake), summed over scales.
* Feature matching: L1 between the discriminator's intermediate features on fake and real input,
  weighted ``lambda_feat * 4 / (n_layers + 1) / num_D`` per layer (the score map excluded).
* VGG19: L1 between relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 features, weighted 1/32, 1/16,
  1/8, 1/4, 1, times ``lambda_feat``. It needs ImageNet VGG19 weights, which this project never
  downloads on its own: :func:`load_vgg19` returns None with the reason when they are not in the
  weights cache, and training continues without the perceptual term (and says so).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("nostalgia.dance")

VGG19_CHECKPOINT = "edn/vgg19"  # registry id of torchvision's ImageNet VGG19 (vgg19-dcbb9e9d.pth)
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
# torchvision vgg19.features indices bounding the five slices (relu1_1 .. relu5_1).
_VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))


def lsgan_loss(predictions: list[list[torch.Tensor]] | torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss summed over discriminator scales (last entry of each = scores)."""
    if isinstance(predictions, torch.Tensor):
        predictions = [[predictions]]
    total = predictions[0][-1].new_zeros(())
    for scale in predictions:
        pred = scale[-1].float()
        target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
        total = total + F.mse_loss(pred, target)
    return total


def feature_matching_loss(
    fake: list[list[torch.Tensor]],
    real: list[list[torch.Tensor]],
    n_layers: int,
    lambda_feat: float = 10.0,
) -> torch.Tensor:
    """pix2pixHD's GAN feature matching: per scale and per layer (score map excluded),
    ``lambda_feat * (4 / (n_layers + 1)) * (1 / num_D) * L1(fake, real.detach())``."""
    feat_weight = 4.0 / (n_layers + 1)
    d_weight = 1.0 / len(fake)
    total = fake[0][0].new_zeros((), dtype=torch.float32)
    for fake_scale, real_scale in zip(fake, real, strict=True):
        for f, r in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            total = total + d_weight * feat_weight * F.l1_loss(f.float(), r.detach().float()) * lambda_feat
    return total


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features`` up to relu5_1, keys ``features.N.*`` as in its checkpoint.

    Inputs are the generator's -1..1 images fed as they are, as pix2pixHD's VGGLoss does."""

    def __init__(self) -> None:
        super().__init__()
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
        layers: list[nn.Module] = []
        in_ch = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(v)
        self.features = nn.Sequential(*layers[:30])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for start, end in _VGG_SLICES:
            for i in range(start, end):
                x = self.features[i](x)
            out.append(x)
        return out


class VGGLoss(nn.Module):
    """Weighted L1 between VGG19 features of the generated and the real image."""

    def __init__(self, vgg: VGG19Features):
        super().__init__()
        self.vgg = vgg.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.vgg(x), self.vgg(y)
        total = x.new_zeros((), dtype=torch.float32)
        for w, a, b in zip(VGG_WEIGHTS, fx, fy, strict=True):
            total = total + w * F.l1_loss(a.float(), b.detach().float())
        return total


def load_vgg19(device: torch.device) -> tuple[VGGLoss | None, str]:
    """The perceptual loss if ImageNet VGG19 weights are in the weights cache, else None and a
    sentence saying why (shown in the training log and the UI)."""
    from weights import registry, store

    try:
        ckpt = registry.get(VGG19_CHECKPOINT)
    except KeyError:
        return None, f"VGG19 perceptual loss OFF: no {VGG19_CHECKPOINT!r} entry in the weights registry."
    state = store.status(ckpt)
    if state.state == "missing":
        return None, (
            f"VGG19 perceptual loss OFF: ImageNet VGG19 weights are not in the weights cache "
            f"(`python -m weights download {VGG19_CHECKPOINT}`); training uses GAN + feature matching only."
        )
    if state.state == "fixture":
        return None, "VGG19 perceptual loss OFF: the cached VGG19 file is a fixture, not ImageNet weights."
    vgg = VGG19Features()
    try:
        sd = store.load_state_dict(VGG19_CHECKPOINT)
        vgg.load_state_dict({k: v for k, v in sd.items() if k in vgg.state_dict()}, strict=True)
    except (store.WeightsError, RuntimeError) as exc:
        return None, f"VGG19 perceptual loss OFF: the cached weights could not be loaded ({exc})."
    return VGGLoss(vgg).to(device), "VGG19 perceptual loss ON (ImageNet weights from the cache)."
