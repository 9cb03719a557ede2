"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), version 0.1, as a plain network whose parts load the published files unchanged.

The distance of two images in -1..1: both are shifted and scaled to the ImageNet statistics
(the v0.1 ``ScalingLayer``), run through an ImageNet backbone (torchvision's AlexNet or VGG16,
``features`` only), and at each of five ReLU outputs the features are unit-normalised along the
channels; the squared difference is weighted per channel by a learned 1x1 convolution
(``lin0`` .. ``lin4``, the published ``alex.pth`` / ``vgg.pth``), averaged over the pixels and
summed over the five layers. Identical images are at distance 0.

Two published files make one metric (see ``weights/catalog/edn.py``): the linear layers
(``lin{k}.model.1.weight``, 1 x C x 1 x 1, exactly :class:`LinearHeads`'s keys) and the torchvision
backbone (``features.N.*`` exactly :class:`AlexNetFeatures` / :class:`VGG16Features`'s keys; the
classifier in that file is not used). :func:`load_lpips` never downloads: without the files it
says that LPIPS is unavailable, and with fixture files it measures but says the number is not real.
"""

from __future__ import annotations

import torch
from torch import nn

# The v0.1 input normalisation (ScalingLayer): (x - shift) / scale, x in -1..1.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# net -> (linear-layer checkpoint id, backbone checkpoint id)
CHECKPOINTS = {"alex": ("edn/lpips_alex", "edn/alexnet"), "vgg": ("edn/lpips_vgg", "edn/vgg16")}
DEFAULT_NET = "alex"  # the authors' recommended forward metric


class AlexNetFeatures(nn.Module):
    """torchvision ``alexnet().features`` without its last max-pool; returns relu1..relu5."""

    taps = (1, 4, 7, 9, 11)
    channels = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class VGG16Features(nn.Module):
    """torchvision ``vgg16().features`` up to relu5_3; returns relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    taps = (3, 8, 15, 22, 29)
    channels = (64, 128, 256, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU()]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)

    forward = AlexNetFeatures.forward


class _Linear(nn.Module):
    """``NetLinLayer``: dropout (inactive in eval) then a bias-free 1x1 conv to one channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LinearHeads(nn.Module):
    """The learned per-channel weights of LPIPS v0.1; keys as in ``alex.pth`` / ``vgg.pth``."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        for k, c in enumerate(channels):
            self.add_module(f"lin{k}", _Linear(c))

    def __iter__(self):
        return iter(self.children())


def build_backbone(net: str) -> AlexNetFeatures | VGG16Features:
    if net == "alex":
        return AlexNetFeatures()
    if net == "vgg":
        return VGG16Features()
    raise ValueError(f"Unknown LPIPS network {net!r}: alex or vgg.")


def build_alex_linear() -> LinearHeads:
    return LinearHeads(AlexNetFeatures.channels)


def build_vgg_linear() -> LinearHeads:
    return LinearHeads(VGG16Features.channels)


def normalize_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit length along the channels at each pixel (the original adds eps to the norm)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """``LPIPS(net)(x, y)`` -> ``(N,)`` distances for ``(N, 3, H, W)`` images in -1..1."""

    def __init__(self, net: str = DEFAULT_NET) -> None:
        super().__init__()
        self.net = build_backbone(net)
        self.lins = LinearHeads(self.net.channels)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.net((x - self.shift) / self.scale)
        fy = self.net((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for a, b, lin in zip(fx, fy, self.lins, strict=True):
            diff = (normalize_channels(a) - normalize_channels(b)) ** 2
            total = total + lin.model(diff).mean(dim=(1, 2, 3))
        return total


def load_lpips(net: str = DEFAULT_NET, device: torch.device | None = None) -> tuple[LPIPS | None, str]:
    """LPIPS with the cached published weights, or None and why. The second value is "" for
    real weights, else a short note for the user ("LPIPS unavailable: ..." or a fixture warning)."""
    from weights import registry, store

    linear_id, backbone_id = CHECKPOINTS[net]
    missing = []
    fixture = []
    for ckpt_id in (linear_id, backbone_id):
        try:
            state = store.status(registry.get(ckpt_id)).state
        except KeyError:
            return None, f"LPIPS unavailable: no {ckpt_id!r} entry in the weights registry"
        if state == "missing":
            missing.append(ckpt_id)
        elif state == "fixture":
            fixture.append(ckpt_id)
    if missing:
        return None, f"LPIPS unavailable: weights not present (python -m weights download {' '.join(missing)})"
    model = LPIPS(net)
    try:
        store.load_into(model.lins, linear_id)
        backbone = store.load_state_dict(backbone_id)
        model.net.load_state_dict({k: v for k, v in backbone.items() if k.startswith("features.")}, strict=True)
    except (store.WeightsError, RuntimeError) as exc:
        return None, f"LPIPS unavailable: the cached weights could not be loaded ({str(exc)[:300]})"
    note = f"fixture weights ({', '.join(fixture)}): not a real LPIPS" if fixture else ""
    return model.to(device or torch.device("cpu")), note
