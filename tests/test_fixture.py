"""The fixture-weight formula (reference README, version 1)."""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F

from weights.fixture import fixture_like, fixture_state_dict, fixture_tensor


def _randn(text: str, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(text.encode())))


def test_generic_rules_follow_the_formula() -> None:
    salt = "s/"
    shapes = {
        "a.weight": (4, 3, 3, 3),
        "a.bias": (4,),
        "bn.weight": (4,),
        "bn.running_mean": (4,),
        "bn.running_var": (4,),
        "bn.num_batches_tracked": (),
        "attn.gamma": (1,),
    }
    sd = fixture_state_dict(shapes, salt, gain=1.5)
    assert torch.equal(sd["a.weight"], 1.5 * _randn("s/a.weight", (4, 3, 3, 3)) / math.sqrt(27))
    assert torch.equal(sd["a.bias"], 0.1 * _randn("s/a.bias", (4,)))
    assert torch.equal(sd["bn.weight"], 1.0 + 0.1 * _randn("s/bn.weight", (4,)))
    assert torch.equal(sd["bn.running_mean"], 0.1 * _randn("s/bn.running_mean", (4,)))
    assert torch.equal(sd["bn.running_var"], 1.0 + 0.1 * _randn("s/bn.running_var", (4,)).abs())
    assert sd["bn.num_batches_tracked"].dtype == torch.long and int(sd["bn.num_batches_tracked"]) == 0
    assert torch.equal(sd["attn.gamma"], 1.0 + 0.1 * _randn("s/attn.gamma", (1,)))
    assert list(sd) == list(shapes)  # key order kept


def test_spectral_norm_u_v_are_the_power_iteration_of_weight_orig() -> None:
    shapes = {"c.weight_orig": (6, 2, 3, 3), "c.weight_u": (6,), "c.weight_v": (18,), "c.bias": (6,)}
    sd = fixture_state_dict(shapes, "x")
    w = sd["c.weight_orig"].reshape(6, -1)
    u = F.normalize(_randn("xc.weight_u", (6,)), dim=0)
    for _ in range(50):
        v = F.normalize(w.t() @ u, dim=0)
        u = F.normalize(w @ v, dim=0)
    assert torch.allclose(sd["c.weight_u"], u) and torch.allclose(sd["c.weight_v"], v)
    sigma = torch.dot(sd["c.weight_u"], w @ sd["c.weight_v"])
    assert torch.isclose(sigma, torch.linalg.matrix_norm(w, ord=2), rtol=1e-3)


def test_weight_norm_v_without_weight_orig_uses_generic_rule() -> None:
    shapes = {"h.weight_g": (8, 1, 1, 1), "h.weight_v": (8, 4, 1, 1)}
    sd = fixture_state_dict(shapes, "y", gain=2.0)
    assert torch.equal(sd["h.weight_g"], 2.0 * _randn("yh.weight_g", (8, 1, 1, 1)))
    assert torch.equal(sd["h.weight_v"], fixture_tensor("h.weight_v", (8, 4, 1, 1), "y", 2.0))


def test_fixture_like_loads_strictly_into_a_spectral_norm_module() -> None:
    module = torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 5, 3))
    sd = fixture_like(module, "z")
    module.load_state_dict(sd, strict=True)
    assert set(sd) == {"weight_orig", "weight_u", "weight_v", "bias"}


def test_nested_spectral_norm_vectors_differ_from_generic_rule() -> None:
    module = torch.nn.Sequential(torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 5, 3)))
    sd = fixture_like(module, "z")
    w = sd["0.weight_orig"].reshape(5, -1)
    # u, v are the converged singular vectors: W v = sigma u.
    sigma = torch.dot(sd["0.weight_u"], w @ sd["0.weight_v"])
    assert torch.allclose(w @ sd["0.weight_v"], sigma * sd["0.weight_u"], atol=1e-4)
    assert not torch.equal(sd["0.weight_v"], fixture_tensor("0.weight_v", (27,), "z"))
