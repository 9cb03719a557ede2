"""Stage 1 of Restore: the original's rounding, thresholding and saving rules, input checks, and the
``detect_scratches`` / ``restore_global`` entry points through the weights cache (fixture weights).

The end-to-end parity of both stages with the original runs in ``tests/test_parity.py``
(``bopbtl/pipeline_scratch_detection``, ``bopbtl/pipeline_stage1_quality``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.common.device import MODELS
from pipelines.common.errors import InputError
from pipelines.restoration import stage1
from pipelines.restoration.networks import builders
from pipelines.restoration.stage1 import (
    GlobalRestorer,
    detector_input_size,
    dilate_mask,
    paint_holes,
    resize_to_multiple,
    round_to_multiple,
    save_image_uint8,
    threshold_mask,
)
from weights import registry
from weights.store import write_fixture


def test_rounding_is_pythons_half_to_even() -> None:
    # README examples: 298x450 -> 296x448 (x.5 rounds to even), 372x524 -> 368x528
    assert (round_to_multiple(298, 4), round_to_multiple(450, 4)) == (296, 448)
    assert (round_to_multiple(372, 16), round_to_multiple(524, 16)) == (368, 528)
    assert round_to_multiple(24, 16) == 32  # 1.5 -> 2
    assert round_to_multiple(40, 16) == 32  # 2.5 -> 2


def test_detector_input_size_short_side_256() -> None:
    assert detector_input_size(624, 496) == (320, 256)
    assert detector_input_size(528, 368) == (368, 256)
    assert detector_input_size(256, 512) == (256, 512)
    assert detector_input_size(300, 300) == (256, 256)


def test_resize_only_when_a_side_changes() -> None:
    img = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    assert resize_to_multiple(img, 16, Image.BICUBIC) is img
    odd = img[:30, :45]
    out = resize_to_multiple(odd, 16, Image.BICUBIC)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(odd).resize((48, 32), Image.BICUBIC)))


def test_save_image_min_max_quirks() -> None:
    ones = torch.ones(1, 1, 4, 5)
    assert save_image_uint8(ones, normalize=True).max() == 0  # all-scratch mask is written as all zeros
    mixed = torch.zeros(1, 1, 4, 5)
    mixed[..., 1, 2] = 1
    out = save_image_uint8(mixed, normalize=True)
    assert out.shape == (4, 5, 3) and set(np.unique(out)) == {0, 255} and out[1, 2, 0] == 255
    ramp = torch.linspace(0.2, 0.6, 12).view(1, 3, 2, 2)
    stretched = save_image_uint8(ramp, normalize=True)
    assert stretched.min() == 0 and stretched.max() == 255  # stretched over all channels together
    clamped = save_image_uint8(torch.tensor([[[[-0.5, 0.5, 1.5]]]]).expand(1, 3, 1, 3), normalize=False)
    assert clamped[0, :, 0].tolist() == [0, 128, 255]  # x*255+0.5 truncated


def test_threshold_is_inclusive_and_nearest_upsampled() -> None:
    prob = torch.tensor([[[[0.4, 0.39999], [0.9, 0.1]]]])
    mask = threshold_mask(prob, (4, 4), 0.4)
    assert mask[0, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]


def test_hole_painting_and_dilation() -> None:
    img = np.full((9, 9, 3), 40, np.uint8)
    mask = np.zeros((9, 9), np.uint8)
    mask[4, 4] = 255
    painted = paint_holes(img, mask)
    assert painted[4, 4].tolist() == [255, 255, 255] and painted[0, 0].tolist() == [40, 40, 40]
    grown = dilate_mask(mask, 3)
    assert grown.sum() == 49 * 255 and grown[1:8, 1:8].min() == 255
    assert dilate_mask(mask, 0) is mask


def _restorer(mode: str, hr: bool = False) -> GlobalRestorer:
    """Randomly initialised networks (seeded): these tests check the plumbing, the parity cases the numbers."""
    torch.manual_seed(0)
    build_mapping = builders.mapping_patch_attention if hr else builders.mapping_scratch
    vae = builders.vae()
    return GlobalRestorer(vae, build_mapping(), vae, mode=mode, hr=hr, device=torch.device("cpu"))


def test_bad_inputs_raise_input_errors() -> None:
    quality = GlobalRestorer(builders.vae(), builders.mapping_quality(), builders.vae(), device=torch.device("cpu"))
    with pytest.raises(InputError, match="RGB uint8"):
        quality(np.zeros((16, 16), np.uint8))
    with pytest.raises(InputError, match="RGB uint8"):
        quality(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(InputError, match="too small"):
        quality(np.zeros((4, 40, 3), np.uint8))
    with pytest.raises(InputError, match="no scratch mask"):
        quality(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="precision"):
        GlobalRestorer(builders.vae(), builders.mapping_quality(), builders.vae(), precision="fp16")
    scratch = GlobalRestorer(builders.vae(), builders.mapping_scratch(), builders.vae(), mode="scratch")
    with pytest.raises(InputError, match="needs the scratch mask"):
        scratch(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="size of the multiple-of-16"):
        scratch(np.zeros((32, 32, 3), np.uint8), np.zeros((16, 32), np.uint8))


def test_scratch_mode_restores_holes_and_hr_mode_runs() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    mask = np.zeros((32, 48), np.uint8)
    mask[8:14, 10:30] = 255
    out = _restorer("scratch")(img, mask)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    hr_gen = _restorer("scratch", hr=True).generate(img, mask)
    assert hr_gen.shape == (1, 3, 32, 48) and torch.isfinite(hr_gen).all()
    restorer = _restorer("scratch")
    restorer.precision = "auto"
    bf16 = restorer.generate(img, mask)
    assert bf16.dtype == torch.float32 and bf16.shape == (1, 3, 32, 48) and torch.isfinite(bf16).all()


def test_entry_points_load_through_the_weights_cache(weights_dir) -> None:
    MODELS.unload()
    try:
        for ckpt_id in ("bopbtl/scratch_detector", "bopbtl/vae_a_quality", "bopbtl/mapping_quality", "bopbtl/vae_b_quality"):
            write_fixture(registry.get(ckpt_id), salt=f"test/{ckpt_id}")
        rng = np.random.default_rng(1)
        img = rng.integers(0, 256, (50, 37, 3), dtype=np.uint8)
        mask = stage1.detect_scratches(img, torch.device("cpu"))
        assert mask.shape == (48, 32) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        restored = stage1.restore_global(img, device=torch.device("cpu"))
        assert restored.shape == (48, 36, 3)  # 50 -> 48 (12.5 rounds to 12), 37 -> 36 and restored.dtype == np.uint8
        assert restored.min() == 0 and restored.max() == 255  # the min-max stretch of the original's save
    finally:
        MODELS.unload()


def test_detector_input_is_the_originals_to_one_float32_ulp(reference_dir) -> None:
    """The scaled grey input of the scratch detector, against the original's (stored by the reference
    case): torch's own bilinear kernel differs by up to 1.3e-5 here, the original's arithmetic by
    one float32 ulp; elsewhere both agree with F.interpolate to float rounding."""
    import json

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from safetensors.torch import load_file

    from pipelines.restoration import config as rc
    from pipelines.restoration.networks.detector import ScratchDetectorUNet
    from pipelines.restoration.stage1 import ScratchDetector, bilinear_like_original

    case = reference_dir / "bopbtl" / "pipeline_scratch_detection"
    meta = json.loads((case / "case.json").read_text())
    with Image.open(case / meta["input"]["image"]) as im:
        image = np.asarray(im.convert("RGB")).copy()
    _, scaled = ScratchDetector(ScratchDetectorUNet(), torch.device("cpu"), rc.Stage1Config()).network_input(image)
    assert float((scaled - load_file(str(case / "io.safetensors"))["output.gray_scaled"]).abs().max()) <= 2.5e-7
    x = torch.randn(2, 1, 37, 53, generator=torch.Generator().manual_seed(0))
    for size in [(16, 16), (20, 31), (37, 53), (80, 100)]:
        expected = F.interpolate(x, size, mode="bilinear", align_corners=False)
        assert torch.allclose(bilinear_like_original(x, size), expected, atol=1e-5, rtol=0)
