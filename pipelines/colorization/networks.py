"""DeOldify's generators: fastai v1 "dynamic U-Nets" on a torchvision ResNet body, without fastai.

The module tree mirrors the original so that ``state_dict()`` keys match the published
``Colorize*_gen.pth`` files exactly: the top module keeps its children in ``layers`` (the
original is a fastai ``SequentialEx``), spectral-norm convolutions store ``weight_orig``,
``weight_u``, ``weight_v`` and the head's weight-norm conv ``weight_g``, ``weight_v``.

Layer order (``layers.N``): 0 encoder (ResNet children 0..7), 1 BatchNorm, 2 ReLU, 3 middle
convs, 4..7 decoder blocks (skips: layer3, layer2, layer1, stem ReLU), 8 PixelShuffle_ICNR to
full resolution, 9 concatenation with the network input, 10 residual block, 11 1x1 conv to RGB,
12 ``sigmoid * 6 - 3``. Convolution blocks run conv -> ReLU -> BatchNorm, as in the original.

Spectral and weight normalisation are computed from the stored tensors exactly as PyTorch does at
inference (no power iteration), and cached after the first eval-mode forward: the normalised
weight only depends on the loaded tensors, so recomputing it per call is wasted work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from pipelines.colorization.config import GeneratorConfig, variant

# ---------------------------------------------------------------------------------------------
# Normalised convolutions


class _CachedWeight(nn.Module):
    """Base for convolutions whose effective weight is derived from stored tensors.

    In eval mode the derived weight is computed once and kept in a non-persistent buffer (so it
    follows ``.to()``/``.half()`` but never appears in the state dict); loading a state dict or
    switching to train mode drops it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_folded", None, persistent=False)

    def compute_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def weight(self) -> torch.Tensor:
        if self.training:
            self._folded = None
            return self.compute_weight()
        if self._folded is None:
            with torch.no_grad():
                self._folded = self.compute_weight()
        return self._folded

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._folded = None
        super()._load_from_state_dict(*args, **kwargs)


class SpectralConv(_CachedWeight):
    """``torch.nn.utils.spectral_norm(nn.ConvNd(...))`` at inference: ``W / (u . W v)``.

    ``dims`` is 1 (the self-attention's ``Conv1d``) or 2.
    """

    def __init__(self, ni: int, nf: int, ks: int = 1, bias: bool = False, dims: int = 2) -> None:
        super().__init__()
        shape = (nf, ni, ks) if dims == 1 else (nf, ni, ks, ks)
        self.dims = dims
        self.padding = (ks - 1) // 2
        self.bias = nn.Parameter(torch.zeros(nf)) if bias else None
        self.weight_orig = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_normal_(self.weight_orig)
        w = self.weight_orig.detach().reshape(nf, -1)
        self.register_buffer("weight_u", F.normalize(torch.randn(nf), dim=0, eps=1e-12))
        self.register_buffer("weight_v", F.normalize(w.t() @ self.weight_u, dim=0, eps=1e-12))

    def compute_weight(self) -> torch.Tensor:
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        return w / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight()
        if self.dims == 1:
            return F.conv1d(x, w, self.bias, padding=self.padding)
        return F.conv2d(x, w, self.bias, padding=self.padding)


class WeightNormConv(_CachedWeight):
    """``torch.nn.utils.weight_norm(nn.Conv2d(ni, nf, 1))``: ``W = g * v / ||v||`` (norm per output)."""

    def __init__(self, ni: int, nf: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(nf))
        self.weight_v = nn.Parameter(torch.empty(nf, ni, 1, 1))
        nn.init.kaiming_normal_(self.weight_v)
        self.weight_g = nn.Parameter(self.weight_v.detach().flatten(1).norm(dim=1).reshape(nf, 1, 1, 1))

    def compute_weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias)


# ---------------------------------------------------------------------------------------------
# Building blocks (fastai / DeOldify layer helpers)


class SelfAttention(nn.Module):
    """SAGAN self-attention as in fastai v1: ``gamma * (h @ softmax(f^T g, dim=1)) + x``.

    The softmax runs over the *first* position index (dim 1 of the [B, N, N] product), as in the
    original; query/key project to n//8 channels, all three are spectral-norm 1x1 Conv1d.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.query = SpectralConv(n, n // 8, dims=1)
        self.key = SpectralConv(n, n // 8, dims=1)
        self.value = SpectralConv(n, n, dims=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape
        flat = x.reshape(size[0], size[1], -1)
        f, g, h = self.query(flat), self.key(flat), self.value(flat)
        beta = torch.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)
        out = self.gamma * torch.bmm(h, beta) + flat
        return out.reshape(size)


def conv_block(
    ni: int, nf: int, ks: int = 3, *, bn: bool = True, relu: bool = True, self_attention: bool = False
) -> nn.Sequential:
    """DeOldify's ``custom_conv_layer`` with spectral norm: conv [-> ReLU] [-> BN] [-> SA].

    The conv has a bias only when no BatchNorm follows (fastai's ``bias = not bn``).
    """
    layers: list[nn.Module] = [SpectralConv(ni, nf, ks, bias=not bn)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    if bn:
        layers.append(nn.BatchNorm2d(nf))
    if self_attention:
        layers.append(SelfAttention(nf))
    return nn.Sequential(*layers)


class Blur(nn.Module):
    """Replication-pad left/top by one, then 2x2 average with stride 1 (checkerboard removal).

    The original tests ``if self.blur`` on the pooling *module*, which is always truthy, so this
    runs after every pixel shuffle regardless of the ``blur`` flag.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


class ShuffleUp(nn.Module):
    """``CustomPixelShuffle_ICNR``: SN conv1x1 + BN, ReLU, PixelShuffle(2), blur."""

    def __init__(self, ni: int, nf: int) -> None:
        super().__init__()
        self.conv = conv_block(ni, nf * 4, ks=1, relu=False)
        self.shuf = nn.PixelShuffle(2)
        self.blur = Blur()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.shuf(F.relu(self.conv(x), inplace=True)))


class HeadShuffle(nn.Module):
    """fastai's ``PixelShuffle_ICNR`` (weight-norm conv1x1 with bias, ni -> 4*ni), ReLU, shuffle, blur."""

    def __init__(self, ni: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(WeightNormConv(ni, ni * 4))
        self.shuf = nn.PixelShuffle(2)
        self.blur = Blur()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.shuf(F.relu(self.conv(x), inplace=True)))


def _merge_skip(up: torch.Tensor, skip: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Nearest-resize ``up`` to the skip's size when they differ, then ReLU(cat([up, BN(skip)]))."""
    if up.shape[-2:] != skip.shape[-2:]:
        up = F.interpolate(up, size=skip.shape[-2:], mode="nearest")
    return F.relu(torch.cat([up, bn(skip)], dim=1))


class UnetBlockDeep(nn.Module):
    """Decoder block of ``DynamicUnetDeep``: upsample, merge the skip, two 3x3 convs."""

    def __init__(self, up_in_c: int, x_in_c: int, *, final_div: bool, nf_factor: float, self_attention: bool) -> None:
        super().__init__()
        self.shuf = ShuffleUp(up_in_c, up_in_c // 2)
        self.bn = nn.BatchNorm2d(x_in_c)
        ni = up_in_c // 2 + x_in_c
        nf = int((ni if final_div else ni // 2) * nf_factor)
        self.conv1 = conv_block(ni, nf)
        self.conv2 = conv_block(nf, nf, self_attention=self_attention)
        self.out_channels = nf

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(_merge_skip(self.shuf(up_in), skip, self.bn)))


class UnetBlockWide(nn.Module):
    """Decoder block of ``DynamicUnetWide``: upsample to n_out//2, merge the skip, one 3x3 conv."""

    def __init__(self, up_in_c: int, x_in_c: int, n_out: int, *, self_attention: bool) -> None:
        super().__init__()
        up_out = x_out = n_out // 2
        self.shuf = ShuffleUp(up_in_c, up_out)
        self.bn = nn.BatchNorm2d(x_in_c)
        self.conv = conv_block(up_out + x_in_c, x_out, self_attention=self_attention)
        self.out_channels = x_out

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(_merge_skip(self.shuf(up_in), skip, self.bn))


class MergeInput(nn.Module):
    """fastai ``MergeLayer(dense=True)`` at the top level: concatenate the network's own input."""

    def forward(self, x: torch.Tensor, network_input: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, network_input], dim=1)


class ResBlock(nn.Module):
    """fastai ``res_block(ni, norm_type=Spectral)``: two SN 3x3 convs with bias and ReLU, plus the input."""

    def __init__(self, ni: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([conv_block(ni, ni, bn=False), conv_block(ni, ni, bn=False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.layers[0](x)) + x


class SigmoidRange(nn.Module):
    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.high - self.low) + self.low


# ---------------------------------------------------------------------------------------------
# The generator

# Encoder children whose outputs feed the decoder (the places where the spatial size changes):
# stem ReLU (/2), layer1 (/4), layer2 (/8), layer3 (/16). Used deepest first.
SKIP_INDICES = (2, 4, 5, 6)


def _resnet_body(name: str) -> nn.Sequential:
    """A torchvision ResNet without avgpool/fc, randomly initialised (nothing is downloaded)."""
    net = getattr(torchvision.models, name)(weights=None)
    return nn.Sequential(*list(net.children())[:-2])


def _out_channels(module: nn.Module) -> int:
    """Channels produced by an encoder child: a BatchNorm, or a ResNet stage (whose last block
    never has a downsample branch, so its last conv is the block's output conv)."""
    if isinstance(module, nn.BatchNorm2d):
        return module.num_features
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class DeOldifyGenerator(nn.Module):
    """``DynamicUnetDeep`` (artistic) or ``DynamicUnetWide`` (stable, video) with DeOldify's settings.

    Input: gray photo replicated to RGB, /255, ImageNet-normalised, [B, 3, H, W] with H, W any
    multiple of 16 (DeOldify renders at render_factor*16); output: RGB in the same normalised
    space, squeezed into ``y_range`` (-3, 3).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        encoder = _resnet_body(config.encoder)
        # the stem ReLU (child 2) carries the channels of the BatchNorm before it (child 1)
        channels = [_out_channels(encoder[i - 1] if i == 2 else encoder[i]) for i in SKIP_INDICES]
        ni = _out_channels(encoder[7])
        layers: list[nn.Module] = [
            encoder,
            nn.BatchNorm2d(ni),
            nn.ReLU(),
            nn.Sequential(conv_block(ni, ni * 2), conv_block(ni * 2, ni)),
        ]
        x_c = ni
        skips = list(reversed(channels))  # layer3, layer2, layer1, stem
        for i, skip_c in enumerate(skips):
            not_final = i != len(skips) - 1
            sa = config.self_attention and i == len(skips) - 3
            if config.unet == "deep":
                block: nn.Module = UnetBlockDeep(x_c, skip_c, final_div=not_final, nf_factor=config.nf_factor, self_attention=sa)
            elif config.unet == "wide":
                nf = int(512 * config.nf_factor)
                block = UnetBlockWide(x_c, skip_c, nf if not_final else nf // 2, self_attention=sa)
            else:
                raise ValueError(f"unknown U-Net kind {config.unet!r}")
            layers.append(block)
            x_c = block.out_channels
        in_c = encoder[0].in_channels
        layers += [
            HeadShuffle(x_c),
            MergeInput(),
            ResBlock(x_c + in_c),
            conv_block(x_c + in_c, config.n_classes, ks=1, bn=False, relu=False),
            SigmoidRange(*config.y_range),
        ]
        self.layers = nn.ModuleList(layers)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder output and the skip features, deepest first."""
        skips: list[torch.Tensor] = []
        for i, child in enumerate(self.layers[0]):
            x = child(x)
            if i in SKIP_INDICES:
                skips.append(x)
        return x, skips[::-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        network_input = x
        h, skips = self.encode(x)
        h = self.layers[3](self.layers[2](self.layers[1](h)))
        for block, skip in zip(self.layers[4:8], skips, strict=True):
            h = block(h, skip)
        h = self.layers[9](self.layers[8](h), network_input)
        h = self.layers[11](self.layers[10](h))
        return self.layers[12](h)


def build_generator(name: str) -> DeOldifyGenerator:
    """The generator of a published variant (``artistic``, ``stable``, ``video``), random weights
    (the registry's builder of the three DeOldify files)."""
    return DeOldifyGenerator(variant(name))
