"""The restore pipeline end to end with fixture weights (small photos, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pipelines.common.device import MODELS
from pipelines.common.errors import InputError
from pipelines.restoration.examples import age_photo
from pipelines.restoration.pipeline import (
    RestorationPipeline,
    WorkingResolution,
    resize,
    transfer_detail,
    working_size,
)


@pytest.fixture(scope="module")
def fixture_weights(ensure_fixtures) -> None:
    """Fixture checkpoints for every network the pipeline can load (written once per test session)."""
    ensure_fixtures(RestorationPipeline.checkpoints(with_scratch=True, hr=False, enhance_faces=True))


def _small_old_photo(scratches: bool, size: tuple[int, int] = (88, 72)) -> np.ndarray:
    photo = age_photo(skimage.data.astronaut(), 5, scratches)
    return np.asarray(Image.fromarray(photo).resize(size, Image.BICUBIC))


@pytest.mark.slow
def test_scratch_restoration_end_to_end(fixture_weights: None) -> None:
    photo = _small_old_photo(scratches=True)
    steps: list[str] = []
    result = RestorationPipeline(device="cpu")(photo, with_scratch=True, progress=lambda f, m: steps.append(m))
    # 88x72 -> multiples of 16 with Python's half-to-even round, as the original: 96x64
    assert result.image.shape == (64, 96, 3) and result.image.dtype == np.uint8
    assert result.scratch_mask is not None and result.scratch_mask.shape == (64, 96)
    assert set(np.unique(result.scratch_mask)) <= {0, 255}
    assert result.working_size is None and "full resolution" in result.strategy
    assert not result.faces  # fixture weights give no recognisable face: stages 2-4 are skipped
    np.testing.assert_array_equal(result.image, result.global_restored)
    assert result.image.std() > 1  # a real network output, not a blank
    assert steps[0] == "Detecting scratches" and steps[-1] == "Done"
    assert "scratches detected" in result.notes


def test_networks_load_once_and_results_repeat(fixture_weights: None) -> None:
    pipe = RestorationPipeline(device="cpu")
    photo = _small_old_photo(scratches=False, size=(64, 48))
    first = pipe(photo, enhance_faces=False)
    loads = dict(MODELS.load_counts)
    second = RestorationPipeline(device="cpu")(photo, enhance_faces=False)
    np.testing.assert_array_equal(first.image, second.image)
    assert first.image.shape == (48, 64, 3)  # quality mode: multiples of 4, unchanged here
    assert any(key.startswith("bopbtl/mapping_quality") for key in loads)
    assert MODELS.load_counts == loads  # the second pipeline reused every network


def test_grayscale_stays_grayscale(fixture_weights: None) -> None:
    grey = np.asarray(Image.fromarray(skimage.data.camera()).resize((64, 64)))
    result = RestorationPipeline(device="cpu")(grey, enhance_faces=False)
    assert result.grayscale
    assert np.array_equal(result.image[..., 0], result.image[..., 1])
    assert np.array_equal(result.image[..., 1], result.image[..., 2])


@pytest.mark.slow
def test_large_photo_runs_at_working_resolution(fixture_weights: None) -> None:
    working = WorkingResolution(quality_pixels=48 * 36, scratch_pixels=48 * 36)
    photo = _small_old_photo(scratches=True, size=(120, 90))
    result = RestorationPipeline(device="cpu", working=working)(photo, with_scratch=True, enhance_faces=False)
    assert result.working_size == (48, 36)
    assert result.image.shape == photo.shape  # back at the input's size
    assert result.scratch_mask is not None and result.scratch_mask.shape == photo.shape[:2]
    assert "restored at 48x36" in result.strategy


def test_faces_found_after_stage1_are_enhanced_and_blended(fixture_weights: None, monkeypatch) -> None:
    # Stage 1 with fixture weights destroys faces; an identity stage 1 isolates stages 2-4 of the pipeline.
    pipe = RestorationPipeline(device="cpu")
    monkeypatch.setattr(pipe, "restore_global", lambda image, mask, hr: image)
    photo = age_photo(skimage.data.astronaut(), 1, False)
    result = pipe(photo)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.before.shape == face.after.shape == (256, 256, 3)
    changed = np.any(result.image != result.global_restored, axis=2)
    ys, xs = np.nonzero(changed)
    left, top, right, bottom = face.rect
    assert changed.sum() > 2000
    assert left - 60 < xs.mean() < right + 60 and top - 60 < ys.mean() < bottom + 60


@pytest.mark.slow
def test_high_resolution_scratch_mode(ensure_fixtures) -> None:
    ensure_fixtures(RestorationPipeline.checkpoints(with_scratch=True, hr=True, enhance_faces=False))
    pipe = RestorationPipeline(device="cpu")
    result = pipe(_small_old_photo(scratches=True, size=(64, 64)), with_scratch=True, hr=True, enhance_faces=False)
    assert result.image.shape == (64, 64, 3)
    assert any(key.startswith("bopbtl/mapping_patch_attention") for key in MODELS.loaded())


def test_working_size_and_detail_transfer() -> None:
    assert working_size(640, 480, 1_000_000) is None
    w, h = working_size(2560, 1920, 1_000_000)
    assert w * h <= 1_000_000 and abs(w / h - 4 / 3) < 0.01
    photo = skimage.data.astronaut()
    small = resize(photo, (128, 128))
    # full detail on an unchanged restoration gives the photo back
    back = transfer_detail(photo, small, (128, 128), 1.0)
    assert np.abs(back.astype(int) - photo.astype(int)).max() <= 1
    # no detail where the mask says so: the plain upscale is kept there
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[:, :256] = 255
    masked = transfer_detail(photo, small, (128, 128), 1.0, mask)
    np.testing.assert_array_equal(masked[:, :256], resize(small, (512, 512))[:, :256])


def test_bad_input_is_refused(fixture_weights: None, tmp_path: Path) -> None:
    pipe = RestorationPipeline(device="cpu")
    with pytest.raises(InputError, match="too small"):
        pipe(np.zeros((8, 8, 3), np.uint8))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputError):
        pipe(str(junk))


@pytest.mark.slow
def test_restore_tab_through_gradio_client(app_client, ensure_fixtures, tmp_path: Path) -> None:
    from gradio_client import handle_file

    from demos.restore import TITLE, example_photos

    assert TITLE == "Restore" and len(example_photos()) >= 2
    ensure_fixtures(RestorationPipeline.checkpoints(with_scratch=True, hr=False, enhance_faces=True))
    for name, scratched in (("portrait.png", False), ("scratched.png", True)):
        path = tmp_path / name
        Image.fromarray(_small_old_photo(scratched, size=(160, 160))).save(path)
        slider, gallery, note = app_client.predict(handle_file(str(path)), scratched, False, True, api_name="/restore")
        before, after = (item["path"] if isinstance(item, dict) else item for item in slider)
        assert Image.open(before).size == Image.open(after).size == (160, 160)
        captions = [item.get("caption") for item in gallery]
        assert "Global restoration (stage 1)" in captions
        assert ("Scratch mask (white = repaired)" in captions) == scratched
        assert "Done in" in note and "as the original" in note
