"""Image quality measures: SSIM against scikit-image, LPIPS against its published files and the
authors' implementation, and the registry entries LPIPS loads from."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from pipelines.common.lpips import CHECKPOINTS, LPIPS, AlexNetFeatures, LinearHeads, VGG16Features, load_lpips
from pipelines.common.quality import measure, ssim
from weights import registry, store


def _pair(seed: int, shape: tuple[int, int, int] = (37, 53, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-50, 50, shape), 0, 255).astype(np.uint8)
    return a, b


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).double()


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_equals_scikit_image_gaussian_window(seed: int) -> None:
    a, b = _pair(seed)
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)  # fmt: skip
    assert float(ssim(_chw(a), _chw(b), data_range=255)) == pytest.approx(expected, abs=1e-10)


def test_ssim_equals_scikit_image_default_uniform_window() -> None:
    a, b = _pair(2, (20, 31, 3))
    expected = structural_similarity(a, b, data_range=255, channel_axis=-1)
    assert float(ssim(_chw(a), _chw(b), data_range=255, gaussian=False)) == pytest.approx(expected, abs=1e-10)


def test_ssim_is_per_image_on_batches_and_one_for_identical_images() -> None:
    a, b = _pair(3)
    batch_x = torch.stack([_chw(a), _chw(a)]) / 255
    batch_y = torch.stack([_chw(b), _chw(a)]) / 255  # 0..1, data_range 1 (the default)
    got = ssim(batch_x, batch_y)
    assert got.shape == (2,)
    assert float(got[1]) == pytest.approx(1.0)
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)  # fmt: skip
    assert float(got[0]) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="one shape"):
        ssim(batch_x, batch_y[:, :, :-1])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(batch_x[..., :8, :8], batch_y[..., :8, :8])


def test_network_keys_are_the_published_and_torchvision_keys() -> None:
    import torchvision

    for net, features, tv in (("alex", AlexNetFeatures, torchvision.models.alexnet),
                              ("vgg", VGG16Features, torchvision.models.vgg16)):  # fmt: skip
        with torch.device("meta"):  # shapes only: no time spent on 100M random numbers
            tv_features = {k: tuple(v.shape) for k, v in tv().state_dict().items() if k.startswith("features.")}
        assert {k: tuple(v.shape) for k, v in features().state_dict().items()} == tv_features
        heads = LinearHeads(features.channels).state_dict()
        assert list(heads) == [f"lin{k}.model.1.weight" for k in range(5)]
        assert [tuple(v.shape) for v in heads.values()] == [(1, c, 1, 1) for c in features.channels]
        model = LPIPS(net)
        assert set(model.state_dict()) == {f"net.{k}" for k in tv_features} | {f"lins.{k}" for k in heads}


# ---------------------------------------------------------------- against the authors' package


def _lpips_package():
    return pytest.importorskip("lpips", reason="the lpips package (requirements-dev) is the reference")


def _published(net: str) -> Path:
    """The published v0.1 file as the authors' package ships it."""
    return Path(_lpips_package().__file__).parent / "weights" / "v0.1" / f"{net}.pth"


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_registry_sha256_and_size_are_those_of_the_published_linear_file(net: str, weights_dir: Path) -> None:
    ckpt = registry.get(CHECKPOINTS[net][0])
    assert ckpt.size == _published(net).stat().st_size
    dest = store.checkpoint_path(ckpt)
    dest.parent.mkdir(parents=True)
    shutil.copyfile(_published(net), dest)
    assert store.verify(ckpt).state == "verified"
    heads = store.load_into(LinearHeads((AlexNetFeatures if net == "alex" else VGG16Features).channels), ckpt.id)
    assert all(float(p.detach().min()) >= 0 for p in heads.parameters())  # v0.1 weights are non-negative


def _slice(net: str, index: int) -> int:
    """The package's slice (1..5) holding torchvision ``features[index]``."""
    taps = (AlexNetFeatures if net == "alex" else VGG16Features).taps
    return next(k + 1 for k, tap in enumerate(taps) if index <= tap)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_authors_implementation(net: str) -> None:
    import warnings

    package = _lpips_package()
    with warnings.catch_warnings(), torch.device("meta"):  # built without weights (fast), filled below
        warnings.simplefilter("ignore")
        reference = package.LPIPS(net=net, pnet_rand=True, pretrained=False, verbose=False)
    reference = reference.to_empty(device="cpu").eval()
    reference.scaling_layer = package.ScalingLayer()  # its constants, as the package defines them
    published = torch.load(_published(net), map_location="cpu", weights_only=True)
    reference.load_state_dict(published, strict=False)  # exactly how the package loads its weights
    torch.manual_seed(0)
    ours = LPIPS(net)  # random backbone, shared below
    reference.net.load_state_dict({f"slice{_slice(net, int(k.split('.')[1]))}.{k.split('.', 1)[1]}": v
                                   for k, v in ours.net.state_dict().items()}, strict=True)  # fmt: skip
    ours.lins.load_state_dict(published, strict=True)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 80, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(2, 3, 64, 80, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        expected = reference(x, y).flatten()
        got = ours(x, y)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
        assert torch.equal(ours(x, x), torch.zeros(2))  # identical images: distance 0
        assert torch.allclose(ours(y, x), got, rtol=1e-5)  # symmetric
        assert (got > 0).all()


# ---------------------------------------------------------------- loading from the cache


def test_lpips_unavailable_without_weights_says_so(weights_dir: Path) -> None:
    model, note = load_lpips("alex")
    assert model is None
    assert note.startswith("LPIPS unavailable: weights not present") and "edn/lpips_alex" in note and "edn/alexnet" in note
    gen = [torch.zeros(1, 3, 16, 16)]
    quality = measure(gen, gen, None, note)
    assert quality.ssim == pytest.approx(1.0) and quality.lpips is None
    assert quality.summary().startswith("SSIM 1.0000, LPIPS unavailable: weights not present (python -m weights download")


@pytest.mark.slow  # writes a 244 MB fixture AlexNet
def test_lpips_with_published_linear_and_fixture_backbone_says_fixture(weights_dir: Path) -> None:
    linear = registry.get("edn/lpips_alex")
    store.checkpoint_path(linear).parent.mkdir(parents=True)
    shutil.copyfile(_published("alex"), store.checkpoint_path(linear))
    store.write_fixture(registry.get("edn/alexnet"))  # `python -m weights fixture edn/alexnet`
    model, note = load_lpips("alex")
    assert model is not None and "fixture" in note and "edn/alexnet" in note and "edn/lpips_alex" not in note
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    quality = measure([x, x], [x, -x], model, note)
    assert quality.frames == 2 and quality.lpips is not None and quality.lpips > 0
    assert quality.lpips == pytest.approx(float(model(x, -x)) / 2, rel=1e-5)
