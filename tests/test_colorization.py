"""Colorization (DeOldify): reference cases, the published-file path, and the pipeline's behaviour.

The parity tests run the cheap reference cases (artistic at 80x80, keys of stable/video, the
still pipeline at render factor 10); the behaviour tests use a randomly initialised artistic
generator at tiny render factors, since batching, sweeps, video and error handling do not depend
on the weights.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.colorization import pipeline as P
from pipelines.colorization.config import ARTISTIC, VARIANTS
from pipelines.colorization.networks import DeOldifyGenerator
from pipelines.common.device import MODELS
from pipelines.common.errors import InputError, ModelUnavailableError, OutOfMemoryError
from pipelines.common.media import ffmpeg_exe, probe_video, video_streams
from weights import registry, store
from weights.parity.runner import run_case

# --------------------------------------------------------------------------- reference cases


@pytest.mark.parametrize("case", ["artistic_80", "video"])
def test_reference_case_passes(reference_dir: Path, case: str) -> None:
    result = run_case(reference_dir / "deoldify" / case)
    assert result.passed, result.line


def test_catalog_knows_the_three_generators() -> None:
    ids = {c.id: c for c in registry.all_checkpoints() if c.family == "deoldify"}
    assert set(ids) == {"deoldify/artistic", "deoldify/stable", "deoldify/video"}
    for config in VARIANTS.values():
        ckpt = ids[config.checkpoint_id]
        comp = ckpt.component("generator")
        assert comp.path == () and ("model",) in comp.alt_paths
        assert ckpt.sources and all(s.resolved_url.startswith("https://") for s in ckpt.sources)
        assert "MIT" in ckpt.licence


def test_published_file_path_matches_reference(reference_dir: Path, weights_dir: Path) -> None:
    """Fixture file in the published layout -> store -> model cache -> pipeline == original output."""
    case_dir = reference_dir / "deoldify" / "pipeline_rf10"
    meta = json.loads((case_dir / "case.json").read_text())
    store.write_fixture(registry.get("deoldify/artistic"), meta["salt"])
    MODELS.unload()  # the model cache is per process; make sure this test loads from its own weights dir
    try:
        colorizer = P.Colorizer.from_pretrained("artistic", "cpu", overflow="wrap", precision="exact")
        got = colorizer(case_dir / "input.png", meta["config"]["render_factor"], meta["config"]["post_process"])
    finally:
        MODELS.unload()
    expected = np.asarray(Image.open(case_dir / "expected.png"))
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert got.shape == expected.shape
    assert diff.max() <= meta["max_abs_diff"] and diff.mean() <= meta["mean_abs_diff"]


def test_missing_weights_is_a_clear_error(weights_dir: Path) -> None:
    MODELS.unload()
    with pytest.raises(ModelUnavailableError, match=r"ColorizeArtistic_gen\.pth"):
        P.Colorizer.from_pretrained("artistic", "cpu")


# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("bad", [0, 65, 3.5, True, "35"])
def test_render_factor_is_validated(bad: object) -> None:
    with pytest.raises(InputError, match="render_factor"):
        P.render_size(bad)  # type: ignore[arg-type]


def test_gray_is_pillow_luminance() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(P.pil_gray(rgb), expected)


def _normalised(values: list[float]) -> torch.Tensor:
    """A [1, 3, 1, n] network output whose denormalised 0..255 values are ``values`` in every channel."""
    v = torch.tensor(values, dtype=torch.float32) / 255.0
    mean = torch.tensor(P.IMAGENET_MEAN).view(3, 1)
    std = torch.tensor(P.IMAGENET_STD).view(3, 1)
    return ((v.view(1, -1) - mean) / std).view(1, 3, 1, -1)


def test_uint8_cast_wraps_like_numpy_or_clips() -> None:
    y = _normalised([-1.5, -0.7, 12.9, 256.2, 300.7])
    assert to_list(P.to_uint8(y, overflow="wrap")) == [255, 0, 12, 0, 44]
    assert to_list(P.to_uint8(y, overflow="clip")) == [0, 0, 12, 255, 255]


def to_list(arr: np.ndarray) -> list[int]:
    return [int(v) for v in arr[0, 0, :, 1]]  # green channel, the one with the least float error here


def test_post_process_keeps_the_photo_luminance() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    color = rng.integers(60, 200, (40, 30, 3), dtype=np.uint8)
    merged = P.merge_luminance(photo, color)
    y_photo = P.rgb_to_yuv(photo)[..., 0].astype(int)
    y_merged = P.rgb_to_yuv(merged)[..., 0].astype(int)
    uv_color = P.rgb_to_yuv(color)[..., 1:].astype(int)
    uv_merged = P.rgb_to_yuv(merged)[..., 1:].astype(int)
    # luminance from the photo, chrominance from the colours (up to 8-bit rounding and gamut clipping)
    assert np.median(np.abs(y_merged - y_photo)) <= 1
    assert np.median(np.abs(uv_merged - uv_color)) <= 2
    assert np.abs(uv_merged - P.rgb_to_yuv(photo)[..., 1:].astype(int)).mean() > 10


# --------------------------------------------------------------------------- pipeline behaviour


@pytest.fixture(scope="module")
def colorizer() -> P.Colorizer:
    torch.manual_seed(0)
    net = DeOldifyGenerator(ARTISTIC).eval().requires_grad_(False)
    return P.Colorizer(net, ARTISTIC, torch.device("cpu"))


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    gray = (127 + 80 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0)).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def test_output_has_input_size_and_colour(colorizer: P.Colorizer) -> None:
    photo = _photo(37, 53)
    out = colorizer(photo, render_factor=3)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert P.rgb_to_yuv(out)[..., 1:].std() > 0  # chroma added to a gray photo
    assert np.abs(P.rgb_to_yuv(out)[..., 0].astype(int) - photo[..., 0].astype(int)).max() <= 2


def test_batch_matches_single_calls(colorizer: P.Colorizer) -> None:
    photos = [_photo(30, 40, 0), _photo(50, 20, 1), _photo(33, 33, 2)]
    batch = colorizer.batch(photos, render_factor=2, batch_size=2)
    single = [colorizer(p, render_factor=2) for p in photos]
    assert len(batch) == 3
    for b, s, p in zip(batch, single, photos, strict=True):
        assert b.shape == p.shape
        assert np.abs(b.astype(int) - s.astype(int)).max() <= 1
    with pytest.raises(InputError):
        colorizer.batch([])


def test_sweep_returns_one_result_per_factor(colorizer: P.Colorizer) -> None:
    seen: list[float] = []
    results = colorizer.sweep(_photo(24, 32), [2, 3, 2, 4], post_process=False, progress=lambda f, _m: seen.append(f))
    assert [r.render_factor for r in results] == [2, 3, 4]
    assert all(r.image.shape == (24, 32, 3) for r in results)
    assert not np.array_equal(results[0].image, results[1].image)
    assert seen[-1] == 1.0
    with pytest.raises(InputError):
        colorizer.sweep(_photo(8, 8), [3, 99])


def test_out_of_memory_is_an_error_not_the_gray_photo(colorizer: P.Colorizer, monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(torch.nn.Module):  # a module, so the precision plan can wrap it as it does the real one
        def forward(self, *_a: object, **_k: object) -> torch.Tensor:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(colorizer, "network", Boom())
    with pytest.raises(OutOfMemoryError, match="Lower the render factor"):
        colorizer(_photo(16, 16), render_factor=40)


def _clip(path: Path, frames: list[np.ndarray], fps: int = 8) -> Path:
    """An MP4 of ``frames`` with a sine audio track longer than the video (the output is cut to the video)."""
    from pipelines.common.media import write_video

    silent = write_video(frames, path.with_name("silent.mp4"), fps)
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i", "sine=frequency=440:duration=5",
         "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_video_keeps_fps_frames_and_audio(colorizer: P.Colorizer, tmp_path: Path) -> None:
    frames = [_photo(48, 64, i) for i in range(6)]
    src = _clip(tmp_path / "in.mp4", frames)
    seen: list[float] = []
    out = colorizer.colorize_video(src, tmp_path / "out.mp4", render_factor=2, smoothing=0.5, batch_size=4,
                                   progress=lambda f, _m: seen.append(f))  # fmt: skip
    info_in, info_out = probe_video(src), probe_video(out)
    assert info_out.n_frames == info_in.n_frames == 6 and info_out.has_audio
    assert abs(info_out.fps - info_in.fps) < 1e-3
    assert (info_out.width, info_out.height) == (64, 48)
    assert video_streams(out) == {"video": "h264", "audio": "aac"}
    assert len(seen) == 6 and seen == sorted(seen) and seen[-1] == 1.0


def test_temporal_smoothing_reduces_chroma_flicker(colorizer: P.Colorizer) -> None:
    rng = np.random.default_rng(3)
    base = _photo(40, 40)
    frames = [np.clip(base.astype(int) + rng.integers(-25, 26, base.shape[:2])[..., None], 0, 255).astype(np.uint8)
              for _ in range(8)]  # fmt: skip
    plain = list(colorizer.colorize_frames(frames, render_factor=2))
    smooth = list(colorizer.colorize_frames(frames, render_factor=2, smoothing=0.8))
    assert [f.shape for f in smooth] == [f.shape for f in frames]
    assert P.chroma_flicker(smooth) < 0.7 * P.chroma_flicker(plain)
    # without smoothing every frame is exactly the still-image result
    assert np.array_equal(plain[3], colorizer(frames[3], render_factor=2))


def test_smoother_resets_at_scene_cuts() -> None:
    smoother = P.ChromaSmoother(strength=0.9)
    dark, bright = np.zeros((4, 4), np.uint8), np.full((4, 4), 200, np.uint8)
    smoother(dark, np.full((4, 4, 2), 100, np.uint8))
    after_cut = smoother(bright, np.full((4, 4, 2), 180, np.uint8))
    assert int(after_cut[0, 0, 0]) == 180
    with pytest.raises(InputError):
        P.ChromaSmoother(strength=1.0)
