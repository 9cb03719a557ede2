"""Restore networks: the reference network cases, and the memory-saving attention against the dense formula.

The two face-generator cases (tens of seconds each on the build machine) and the two stage-1 pipeline cases run
in ``tests/test_parity.py`` with every other reference case; the quick network cases of this family run here too,
so a change to these networks fails close to its cause.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipelines.restoration.networks.detector import AntialiasDownsample
from pipelines.restoration.networks.mapping import (
    NonLocalBlockWithMask,
    PatchAttention,
    feature_valid_mask,
    masked_attention,
)
from pipelines.restoration.networks.spade import SpectralConv2d
from weights.parity.runner import run_case

QUICK_CASES = (
    "detector_unet",
    "vae_a_encoder",
    "vae_b_decoder",
    "mapping_quality",
    "mapping_scratch",
    "mapping_scratch_hr_keys",
)


@pytest.mark.parametrize("name", QUICK_CASES)
def test_reference_network_case(reference_dir, name: str) -> None:
    result = run_case(reference_dir / "bopbtl" / name)
    assert result.passed, result.line


def _dense_attention(theta, phi, g, valid, temperature=1.0):
    """The original's dense formula: full (L x L) scores, softmax, times key validity, L1 renormalisation."""
    f = torch.matmul(theta, phi) / temperature
    f = F.softmax(f, dim=2) * valid.repeat(1, theta.shape[1], 1)
    return torch.matmul(F.normalize(f, p=1, dim=2), g)


@pytest.mark.parametrize("chunk", [1, 7, 23, 64, None])
def test_chunked_attention_equals_dense(chunk) -> None:
    gen = torch.Generator().manual_seed(1)
    n, length, c = 2, 60, 16
    # float64, so that the comparison shows the math is the same rather than float32 kernel rounding
    theta = torch.randn(n, length, c, generator=gen, dtype=torch.float64)
    phi = torch.randn(n, c, length, generator=gen, dtype=torch.float64)
    g = torch.randn(n, length, c, generator=gen, dtype=torch.float64)
    valid = (torch.rand(n, 1, length, generator=gen) > 0.3).double()
    want = _dense_attention(theta, phi, g, valid, temperature=0.7)
    got = masked_attention(theta, phi, g, valid, temperature=0.7, chunk=chunk, budget_bytes=2000)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


def test_nonlocal_block_is_chunk_invariant_and_keeps_valid_positions() -> None:
    torch.manual_seed(0)
    block = NonLocalBlockWithMask(8, 8).eval()
    x = torch.randn(1, 8, 6, 5)
    mask = torch.zeros(1, 1, 24, 20)
    mask[..., 8:13, 4:9] = 1.0
    with torch.no_grad():
        block.chunk = None
        dense = block(x, mask)
        block.chunk = 4
        chunked = block(x, mask)
    torch.testing.assert_close(chunked, dense, atol=1e-6, rtol=1e-5)
    valid = feature_valid_mask(mask, (6, 5))
    assert 0 < valid.sum() < valid.numel()
    keep = valid.bool().expand_as(x)
    assert torch.equal(dense[keep], x[keep])
    assert not torch.allclose(dense[~keep], x[~keep])


def test_feature_valid_mask_marks_every_touched_position() -> None:
    mask = torch.zeros(1, 1, 16, 16)
    mask[0, 0, 5, 9] = 1.0
    valid = feature_valid_mask(mask, (4, 4))
    # Bilinear downsampling by 4 (align_corners=False) reads pixels 4i+1.5 +- 0.5: only feature (1, 2) sees (5, 9).
    expected = torch.ones(1, 1, 4, 4)
    expected[0, 0, 1, 2] = 0
    assert torch.equal(valid, expected)


def _patch_attention_reference(module: PatchAttention, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Patch by patch: each >60%-hole patch becomes the most cosine-similar hole-free patch."""
    p = module.patch_size
    x = module.res_block(z)
    h, w = x.shape[2:]
    m = F.interpolate(mask, (h, w), mode="bilinear", align_corners=False)
    m = (m > 0).float() + (m <= 0).float() * m
    out = x.clone()
    cells = [(i, j) for i in range(h // p) for j in range(w // p)]
    cover = {ij: float(m[0, 0, ij[0] * p : ij[0] * p + p, ij[1] * p : ij[1] * p + p].mean()) for ij in cells}
    keys = [ij for ij in cells if cover[ij] <= 0.6]
    for ij in cells:
        if cover[ij] <= 0.6 or not keys:
            continue
        q = x[0, :, ij[0] * p : ij[0] * p + p, ij[1] * p : ij[1] * p + p].reshape(-1)
        sims = [F.cosine_similarity(q, x[0, :, a * p : a * p + p, b * p : b * p + p].reshape(-1), dim=0) for a, b in keys]
        a, b = keys[int(torch.stack(sims).argmax())]
        out[0, :, ij[0] * p : ij[0] * p + p, ij[1] * p : ij[1] * p + p] = x[0, :, a * p : a * p + p, b * p : b * p + p]
    return module.F_Combine(torch.cat((z, out, m), dim=1))


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_patch_attention_replaces_hole_patches_with_best_match(chunk) -> None:
    torch.manual_seed(0)
    module = PatchAttention(channels=8, patch_size=2, chunk=chunk).eval()
    module.F_Combine = torch.nn.Conv2d(17, 8, 3, 1, 1)  # 2*8+1 inputs for this small width
    z = torch.randn(1, 8, 8, 10)
    mask = torch.zeros(1, 1, 32, 40)
    mask[..., 4:18, 8:20] = 1.0
    with torch.no_grad():
        got = module(z, mask)
        want = _patch_attention_reference(module, z, mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_spectral_conv_matches_torch_spectral_norm_in_eval() -> None:
    torch.manual_seed(0)
    ref = torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 5, 3, padding=1))
    ref.train()
    ref(torch.randn(1, 6, 4, 4))  # a few power iterations so u, v are not the initial ones
    ref.eval()
    ours = SpectralConv2d(6, 5, 3, padding=1)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 6, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-5)
        before = ours.weight_u.clone()
        ours(x)
    assert torch.equal(ours.weight_u, before)  # no power iteration at inference


def test_antialias_filter_is_the_binomial_blur() -> None:
    down = AntialiasDownsample(3)
    assert down.filt.shape == (3, 1, 3, 3)
    torch.testing.assert_close(down.filt[0, 0], torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    flat = torch.full((1, 3, 8, 6), 0.25)
    torch.testing.assert_close(down(flat), torch.full((1, 3, 4, 3), 0.25))
