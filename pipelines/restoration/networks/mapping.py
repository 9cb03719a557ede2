"""Latent mapping networks: old-photo latent (VAE_A) -> clean-photo latent (VAE_B).

- :class:`MappingModel` (``mapping_quality``): convs + 6 ResnetBlocks at 512 channels.
- :class:`MappingModelWithMask` (``mapping_scratch``): the same with a masked non-local block in the middle,
  so holes (scratches) are filled from the rest of the photo.
- :class:`MappingModelPatchAttention` (``mapping_Patch_Attention``, ``--HR``): multi-scale patch attention.

Memory: the original non-local block builds the full (hw x hw) attention matrix, which exceeds any GPU beyond
~1000 px photos (a 1000x1000 photo has a 250x250 latent: 62500^2 floats = 15.6 GB). Here the attention is
computed in blocks of query rows (each row's softmax / renormalisation is independent), so peak memory is
O(block x hw) while the result is the same; ``attention_chunk`` / ``attention_budget_bytes`` set the block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipelines.common.progress import stop_point
from pipelines.restoration.config import MappingConfig
from pipelines.restoration.networks.blocks import ResnetBlock, instance_norm

_TMP_NC = 64
_N_UP = 4
DEFAULT_ATTENTION_BUDGET = 256 << 20


def _encoder_convs(mc: int, act: nn.Module) -> list[nn.Module]:
    """64 -> 128 -> 256 -> 512 -> 512 (capped at ``mc``), each conv 3x3 + IN + ReLU (12 layers)."""
    layers: list[nn.Module] = []
    for i in range(_N_UP):
        ic = min(_TMP_NC * 2**i, mc)
        oc = min(_TMP_NC * 2 ** (i + 1), mc)
        layers += [nn.Conv2d(ic, oc, 3, 1, 1), instance_norm(oc), act]
    return layers


def _decoder_convs(mc: int, act: nn.Module, feat_dim: int) -> list[nn.Module]:
    """512 -> 512 -> 256 -> 128 (conv + IN + ReLU), then conv 128 -> 64 without norm."""
    layers: list[nn.Module] = []
    for i in range(_N_UP - 1):
        ic = min(64 * 2 ** (4 - i), mc)
        oc = min(64 * 2 ** (3 - i), mc)
        layers += [nn.Conv2d(ic, oc, 3, 1, 1), instance_norm(oc), act]
    layers += [nn.Conv2d(_TMP_NC * 2, _TMP_NC, 3, 1, 1)]
    if 0 < feat_dim < 64:
        layers += [instance_norm(_TMP_NC), act, nn.Conv2d(_TMP_NC, feat_dim, 1, 1)]
    return layers


class MappingModel(nn.Module):
    """``Mapping_Model``: the quality (no scratch) mapping; keys ``model.<i>``."""

    def __init__(self, config: MappingConfig | None = None):
        super().__init__()
        cfg = config or MappingConfig()
        act = nn.ReLU(True)
        layers = _encoder_convs(cfg.map_mc, act)
        layers += [ResnetBlock(cfg.map_mc, act, cfg.dilation) for _ in range(cfg.n_blocks)]
        layers += _decoder_convs(cfg.map_mc, act, cfg.feat_dim)
        self.model = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.model(latent)


def feature_valid_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Where the latent is untouched by holes: 1 = valid, 0 = hole (``NonLocalBlock2D_with_mask_Res``).

    ``mask`` (N,1,H,W), 1 = scratch. Bilinear downsampling, any positive value counts as hole, then also
    multiplied by the nearest-neighbour downsampled ``1 - mask``.
    """
    keep = 1 - mask
    m = F.interpolate(mask, size, mode="bilinear", align_corners=False)
    m = torch.where(m > 0, torch.ones_like(m), m)
    return (1 - m) * F.interpolate(keep, size, mode="nearest")


def masked_attention(
    theta: torch.Tensor,
    phi: torch.Tensor,
    g: torch.Tensor,
    key_valid: torch.Tensor,
    *,
    temperature: float = 1.0,
    renormalize: bool = True,
    chunk: int | None = None,
    budget_bytes: int = DEFAULT_ATTENTION_BUDGET,
) -> torch.Tensor:
    """``normalize_l1(softmax(theta @ phi / T) * valid) @ g`` computed ``chunk`` query rows at a time.

    theta (N,L,C) queries, phi (N,C,L) keys, g (N,L,C) values, key_valid (N,1,L). Every query row is
    independent, so blocking over rows gives the dense result while holding only (N, chunk, L) scores (two
    such blocks at the softmax). ``chunk=None`` picks the largest block whose score matrix fits ``budget_bytes``.
    """
    n, length, _ = theta.shape
    if chunk is None:
        per_row = max(1, n * length * theta.element_size())
        chunk = max(1, int(budget_bytes // per_row))
    chunk = max(1, min(int(chunk), length))
    out = g.new_empty(n, length, g.shape[2])
    for start in range(0, length, chunk):
        stop_point()  # a 1 MP photo's attention is tens of blocks, about a second each on a CPU
        stop = min(start + chunk, length)
        f = torch.matmul(theta[:, start:stop], phi)
        if temperature != 1.0:
            f.div_(temperature)
        f = F.softmax(f, dim=2)  # the only out-of-place step: at most two score blocks are alive
        f.mul_(key_valid)
        if renormalize:  # F.normalize(p=1, eps=1e-12), in place: the same norm kernel, clamp and division
            f.div_(f.norm(1, 2, keepdim=True).clamp_min_(1e-12))
        out[:, start:stop] = torch.matmul(f, g)
        del f
    return out


class NonLocalBlockWithMask(nn.Module):
    """``NonLocalBlock2D_with_mask_Res`` (fusion "combine", renormalised correlation, no cosine, no self).

    Attention weights over key positions are restricted to valid (hole-free) positions; the attended features
    go through ``W`` (1x1) and 3 ResnetBlocks; holes take that result, valid positions keep their input.
    """

    def __init__(
        self,
        channels: int = 512,
        inter_channels: int = 512,
        *,
        temperature: float = 1.0,
        renormalize: bool = True,
        chunk: int | None = None,
        budget_bytes: int = DEFAULT_ATTENTION_BUDGET,
    ):
        super().__init__()
        self.inter_channels = inter_channels
        self.temperature = temperature
        self.renormalize = renormalize
        self.chunk = chunk
        self.budget_bytes = budget_bytes
        self.g = nn.Conv2d(channels, inter_channels, 1)
        self.W = nn.Conv2d(inter_channels, channels, 1)
        self.theta = nn.Conv2d(channels, inter_channels, 1)
        self.phi = nn.Conv2d(channels, inter_channels, 1)
        act = nn.ReLU(True)
        self.res_block = nn.Sequential(*[ResnetBlock(inter_channels, act) for _ in range(3)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c = self.inter_channels
        g_x = self.g(x).view(n, c, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(n, c, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(n, c, -1)
        valid = feature_valid_mask(mask.to(x.dtype), (h, w))
        y = masked_attention(
            theta_x,
            phi_x,
            g_x,
            valid.view(n, 1, -1),
            temperature=self.temperature,
            renormalize=self.renormalize,
            chunk=self.chunk,
            budget_bytes=self.budget_bytes,
        )
        del g_x, theta_x, phi_x
        y = y.permute(0, 2, 1).contiguous().view(n, c, h, w)
        w_y = self.res_block(self.W(y))
        return valid * x + (1 - valid) * w_y


class MappingModelWithMask(nn.Module):
    """``Mapping_Model_with_mask``: ``before_NL`` (12 layers) -> ``NL`` -> ``after_NL``; forward(latent, mask)."""

    def __init__(self, config: MappingConfig | None = None, *, chunk: int | None = None,
                 budget_bytes: int = DEFAULT_ATTENTION_BUDGET):
        super().__init__()
        cfg = config or MappingConfig()
        act = nn.ReLU(True)
        self.before_NL = nn.Sequential(*_encoder_convs(cfg.map_mc, act))
        self.NL = NonLocalBlockWithMask(
            cfg.map_mc,
            cfg.map_mc,
            temperature=cfg.softmax_temperature,
            renormalize=cfg.correlation_renormalize,
            chunk=chunk,
            budget_bytes=budget_bytes,
        )
        after: list[nn.Module] = [ResnetBlock(cfg.map_mc, act, cfg.dilation) for _ in range(cfg.n_blocks)]
        after += _decoder_convs(cfg.map_mc, act, cfg.feat_dim)
        self.after_NL = nn.Sequential(*after)

    def set_attention_chunk(self, chunk: int | None = None, budget_bytes: int | None = None) -> None:
        """Memory knob: query rows per attention block (None = from ``budget_bytes``)."""
        self.NL.chunk = chunk
        if budget_bytes is not None:
            self.NL.budget_bytes = budget_bytes

    def forward(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.after_NL(self.NL(self.before_NL(latent), mask))


class PatchAttention(nn.Module):
    """``Patch_Attention_4`` (its ``inference_forward``, used by test.py with ``--HR``).

    Features are cut into non-overlapping ``patch_size`` patches. Patches more than 60% covered by the
    (bilinear-downsampled, any-positive) hole mask are replaced by the most similar (cosine) hole-free patch;
    then ``F_Combine`` (3x3 conv) fuses [input, composed, mask] (512 + 512 + 1 channels).
    """

    def __init__(self, channels: int = 512, patch_size: int = 8, *, chunk: int | None = None,
                 budget_bytes: int = DEFAULT_ATTENTION_BUDGET):
        super().__init__()
        self.patch_size = patch_size
        self.chunk = chunk
        self.budget_bytes = budget_bytes
        self.F_Combine = nn.Conv2d(2 * channels + 1, channels, 3, 1, 1)
        self.res_block = nn.Sequential(ResnetBlock(channels, nn.ReLU(True)))

    def _best_keys(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """argmax over keys of softmax(cosine(query, key)), row blocks at a time. query (N,Q,D), keys (N,D,K)."""
        n, nq, _ = query.shape
        nk = keys.shape[2]
        chunk = self.chunk or max(1, int(self.budget_bytes // max(1, n * nk * query.element_size())))
        out = torch.empty(n, nq, dtype=torch.long, device=query.device)
        for start in range(0, nq, chunk):
            stop_point()
            corr = F.softmax(torch.bmm(query[:, start : start + chunk], keys), dim=2)
            out[:, start : start + chunk] = corr.max(dim=2).indices
        return out

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.res_block(z)
        _, _, h, w = x.shape
        p = self.patch_size
        m = F.interpolate(mask.to(x.dtype), (h, w), mode="bilinear", align_corners=False)
        m = torch.where(m > 0, torch.ones_like(m), m)
        patch_cover = F.unfold(m, kernel_size=p, stride=p).mean(dim=1)[0]  # batch 0, as the original
        hole = patch_cover > 0.6
        hole_idx = torch.nonzero(hole, as_tuple=True)[0]
        keep_idx = torch.nonzero(~hole, as_tuple=True)[0]
        if len(hole_idx) == 0 or len(keep_idx) == 0:
            # No hole patch: nothing to attend. (No hole-free patch at all: the original fails on an empty
            # argmax; keeping the features is the only meaningful answer.)
            composed = x
        else:
            x_unfold = F.unfold(x, kernel_size=p, stride=p)
            query = F.normalize(x_unfold.index_select(2, hole_idx).permute(0, 2, 1), dim=2)
            key_patches = x_unfold.index_select(2, keep_idx)
            best = self._best_keys(query, F.normalize(key_patches, dim=1))
            picked = torch.gather(key_patches, 2, best[:, None, :].expand(-1, key_patches.shape[1], -1))
            x_unfold[:, :, hole_idx] = picked
            composed = F.fold(x_unfold, output_size=(h, w), kernel_size=p, stride=p)
        return self.F_Combine(torch.cat((z, composed, m), dim=1))


class MappingModelPatchAttention(nn.Module):
    """``Mapping_Model_with_mask_2`` (``--HR`` scratch mapping): patch attention at patch sizes 8, 4, 2."""

    def __init__(self, config: MappingConfig | None = None, *, chunk: int | None = None,
                 budget_bytes: int = DEFAULT_ATTENTION_BUDGET):
        super().__init__()
        cfg = config or MappingConfig()
        mc = cfg.map_mc
        act = nn.ReLU(True)
        s1, s2, s3 = cfg.patch_sizes

        def blocks(n: int) -> list[nn.Module]:
            return [ResnetBlock(mc, act, cfg.dilation) for _ in range(n)]

        self.before_NL = nn.Sequential(*_encoder_convs(mc, act), *blocks(2))
        self.NL_scale_1 = PatchAttention(mc, s1, chunk=chunk, budget_bytes=budget_bytes)
        self.res_block_1 = nn.Sequential(*blocks(2))
        self.NL_scale_2 = PatchAttention(mc, s2, chunk=chunk, budget_bytes=budget_bytes)
        self.res_block_2 = nn.Sequential(*blocks(2))
        self.NL_scale_3 = PatchAttention(mc, s3, chunk=chunk, budget_bytes=budget_bytes)
        self.after_NL = nn.Sequential(*blocks(2), *_decoder_convs(mc, act, cfg.feat_dim))

    def set_attention_chunk(self, chunk: int | None = None, budget_bytes: int | None = None) -> None:
        """Memory knob: query patches per block (None = from ``budget_bytes``)."""
        for nl in (self.NL_scale_1, self.NL_scale_2, self.NL_scale_3):
            nl.chunk = chunk
            if budget_bytes is not None:
                nl.budget_bytes = budget_bytes

    def forward(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.before_NL(latent)
        x = self.res_block_1(self.NL_scale_1(x, mask))
        x = self.res_block_2(self.NL_scale_2(x, mask))
        return self.after_NL(self.NL_scale_3(x, mask))
