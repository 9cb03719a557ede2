"""Animate (TPSMM): networks, demo pre-processing, batching, best frame, crop/paste, whole-photo video.

The reference cases themselves run in ``test_parity.py``; these tests check what the cases do not
cover (batched == one by one, the source-side precomputation, the whole-photo path, errors), with
small networks where the published sizes are not needed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.animation import networks as N
from pipelines.animation.config import CONFIGS, TPSMMConfig, get_config
from pipelines.animation.crop import crop_square, extract, feather_mask, paste
from pipelines.animation.pipeline import (
    TPSMMPipeline,
    animate,
    animate_faces,
    best_frame_index,
    hull_scale,
    normalize_kp,
)
from pipelines.animation.preprocess import resize_like_skimage_0183, to_uint8_like_skimage
from pipelines.common.errors import InputError
from pipelines.common.media import probe_video, read_video, video_streams
from weights.fixture import fixture_like


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread: on a shared, oversubscribed CPU two OpenMP threads that wait on each
    other run these small convolutions up to 20x slower (measured); results do not change."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _tiny_config() -> TPSMMConfig:
    from pipelines.animation.config import CommonParams, DenseMotionParams, GeneratorParams

    return TPSMMConfig(
        "vox", "tpsmm/vox", 64, "tiny", "test", face=True,
        common=CommonParams(num_tps=4),
        generator=GeneratorParams(block_expansion=8, max_features=32),
        dense_motion=DenseMotionParams(block_expansion=8, max_features=32, num_blocks=3),
    )  # fmt: skip


@functools.cache
def _tiny_weights() -> tuple[dict[str, torch.Tensor], ...]:
    return tuple(fixture_like(net, f"tiny/{i}") for i, net in enumerate(_tiny_networks()))


def _tiny_networks() -> list[torch.nn.Module]:
    cfg = _tiny_config()
    return [
        N.KPDetector(**cfg.kp_detector_args()),
        N.DenseMotionNetwork(**cfg.dense_motion_args()),
        N.InpaintingNetwork(**cfg.inpainting_args()),
        N.AVDNetwork(**cfg.avd_args()),
    ]


def _tiny_pipeline(batch_size: int = 3) -> TPSMMPipeline:
    cfg = _tiny_config()
    nets = _tiny_networks()
    for net, sd in zip(nets, _tiny_weights(), strict=True):
        net.load_state_dict(sd)
    return TPSMMPipeline(cfg, *nets, device=torch.device("cpu"), batch_size=batch_size, precision="exact")  # type: ignore[arg-type]


def _frames(n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.random((size, size, 3))
    return [np.clip(np.roll(base, 3 * i, axis=1) * (0.9 + 0.02 * i), 0, 1) for i in range(n)]


# --------------------------------------------------------------------------- configs and networks


def test_four_released_configs_build_their_checkpoint_entries() -> None:
    from weights import registry

    for name, cfg in CONFIGS.items():
        ckpt = registry.get(cfg.checkpoint_id)
        assert tuple(c.name for c in ckpt.components) == cfg.components
        assert ("bg_predictor" in cfg.components) == (name != "mgif")
        assert set(ckpt.optional_components) <= set(cfg.components)
    assert get_config("ted-384").img_size == 384
    with pytest.raises(InputError, match="Unknown animation model"):
        get_config("nope")


def test_tps_grid_maps_driving_control_points_onto_source_points() -> None:
    """With the 0.01 ridge the TPS nearly interpolates: a grid pixel at a driving control point
    samples (close to) its source point; identical keypoints give (nearly) the identity grid."""
    h = w = 33
    grid = N.coordinate_grid(h, w)
    # control points exactly on grid pixels
    idx = torch.tensor([[4, 4], [28, 6], [16, 16], [6, 27], [27, 27]])
    p = torch.stack([grid[i, j] for i, j in idx]).view(1, 5, 2)
    q = p + torch.tensor([0.05, -0.03])
    grids = N.tps_grids(p, q, h, w)[0, 0]
    at_points = torch.stack([grids[i, j] for i, j in idx])
    assert torch.allclose(at_points, q[0], atol=0.02)
    same = N.tps_grids(p, p, h, w)[0, 0]
    assert torch.allclose(same, grid, atol=0.02)


def test_dense_motion_prepared_source_equals_plain_call() -> None:
    cfg = _tiny_config()
    net = N.DenseMotionNetwork(**cfg.dense_motion_args()).eval()
    net.load_state_dict(fixture_like(net, "dm"))
    source = torch.rand(1, 3, 64, 64)
    kp_s = torch.rand(1, 20, 2) * 1.6 - 0.8
    kp_d = kp_s + 0.05 * torch.randn(3, 20, 2)
    with torch.no_grad():
        batched = net(net.prepare_source(source, kp_s), kp_d)
        for i in range(3):
            single = net(source, kp_d[i : i + 1], kp_s)
            assert torch.allclose(batched.deformation[i], single.deformation[0], atol=1e-5)
            for a, b in zip(batched.occlusion_map, single.occlusion_map, strict=True):
                assert torch.allclose(a[i], b[0], atol=1e-5)


# --------------------------------------------------------------------------- pre-processing


def test_resize_reproduces_the_demo_resize(reference_dir: Path) -> None:
    from safetensors.torch import load_file

    from weights.parity.case import load_image

    case = reference_dir / "tpsmm" / "pipeline_relative"
    expected = load_file(str(case / "io.safetensors"))["output.stage.source_resized"].numpy()
    got = resize_like_skimage_0183(load_image(reference_dir / "tpsmm" / "data" / "source.png"), (256, 256))[..., :3]
    assert got.dtype == np.float64 and got.shape == (256, 256, 3)
    assert np.abs(got.astype(np.float32) - expected).max() < 1e-6
    # modern scikit-image blurs the float image instead: measurably different, so the old path matters
    from skimage.transform import resize

    modern = resize(load_image(reference_dir / "tpsmm" / "data" / "source.png"), (256, 256))[..., :3]
    assert np.abs(modern - got).max() > 1e-3


def test_resize_upsampling_and_uint8_rounding() -> None:
    img = (np.arange(16, dtype=np.uint8).reshape(4, 4) * 16)[..., None].repeat(3, 2)
    up = resize_like_skimage_0183(img, (8, 8))
    assert up.shape == (8, 8, 3) and up.min() >= 0 and up.max() <= 1
    assert np.allclose(up[0, 0], 0.0) and np.allclose(up[-1, -1], 240 / 255)
    with pytest.raises(ValueError):
        resize_like_skimage_0183(img.astype(np.float32), (8, 8))
    halves = np.array([0.5 / 255, 1.5 / 255, 2.5 / 255], dtype=np.float32)
    assert to_uint8_like_skimage(halves).tolist() == [0, 2, 2]  # round half to even


# --------------------------------------------------------------------------- pipeline maths


def test_relative_mode_scales_motion_by_hull_areas() -> None:
    square = torch.tensor([[[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [0.0, 0.0]]])
    initial = square * 0.5  # driving face a quarter of the area: motion doubled
    assert hull_scale(square, initial) == pytest.approx(2.0)
    driving = initial + 0.1
    kp = normalize_kp("relative", square, driving, initial, None)
    assert torch.allclose(kp, square + 0.2)
    assert normalize_kp("standard", square, driving, initial, None) is driving
    with pytest.raises(InputError, match="AVD"):
        normalize_kp("avd", square, driving, initial, None)


def test_batched_frames_equal_one_by_one_and_best_frame_order() -> None:
    frames = _frames(5)
    source = _frames(1, seed=7)[0]
    one = _tiny_pipeline(batch_size=1).animate_arrays(source, frames, "relative", return_stages=True)
    many = _tiny_pipeline(batch_size=4).animate_arrays(source, frames, "relative", return_stages=True)
    assert one.frames.shape == (5, 64, 64, 3) and one.frames.dtype == np.float32
    assert np.abs(one.frames - many.frames).max() < 1e-4
    assert torch.allclose(one.kp_norm, many.kp_norm, atol=1e-6)
    # relative: the first frame reproduces the source keypoints exactly
    assert torch.allclose(one.kp_norm[0], one.kp_source[0], atol=1e-6)
    # best frame 2: frame 2 is the reference pose; every frame keeps its own index
    best = _tiny_pipeline(batch_size=2).animate_arrays(source, frames, "relative", best_frame=2, return_stages=True)
    assert torch.allclose(best.kp_norm[2], best.kp_source[0], atol=1e-6)
    assert torch.allclose(best.kp_driving, one.kp_driving, atol=1e-6)
    avd = _tiny_pipeline().animate_arrays(source, frames[:2], "avd", return_stages=True)
    assert not torch.allclose(avd.kp_norm, avd.kp_driving)
    with pytest.raises(InputError, match="mode"):
        _tiny_pipeline().animate_arrays(source, frames, "dance")


def test_best_frame_picks_the_driving_frame_posed_like_the_source() -> None:
    from pipelines.animation.examples import _affine_frame, example_photo

    photo = example_photo()
    face = extract(photo, crop_square((175, 76, 265, 166)))
    frames = [_affine_frame(face, t, 256) for t in (0.2, 0.45, 0.7)]
    source = _affine_frame(face, 0.45, 256)
    assert best_frame_index(source, frames) == 1


# --------------------------------------------------------------------------- crop and paste


def test_crop_and_feathered_paste() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    box = (100, 10, 150, 60)  # near the top-right corner: the square leaves the image
    square = crop_square(box)
    left, top, right, bottom = square.box
    assert left <= box[0] and top <= box[1] and right >= box[2] and bottom >= box[3]
    assert square.side == round(1.8 * 50)
    patch = extract(photo, square)
    assert patch.shape == (square.side, square.side, 3)
    assert np.array_equal(paste(photo, patch, square), photo)  # pasting the crop back changes nothing
    mask = feather_mask(64)
    assert mask[0, 0] < 0.01 and mask[32, 32] == pytest.approx(1.0)
    white = np.full_like(patch, 255)
    out = paste(photo, white, square)
    assert np.array_equal(out[:, :left], photo[:, :left])  # outside the square untouched
    assert (out[top + square.side // 2, left + square.side // 2] == 255).all()


def test_faces_of_a_photo_each_move_like_one_face_animated_alone() -> None:
    """The multi-face loop (one driving pass for all faces) gives each face the frames a
    single-face animation of its crop gives, and pastes every face back into the photo."""
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 255, (160, 260, 3), dtype=np.uint8)
    boxes = np.array([[30, 50, 80, 100], [170, 60, 215, 105]])
    driving = [to_uint8_like_skimage(f) for f in _frames(4, size=96)]
    motion = animate_faces(photo, boxes, [1, 0], driving, 10.0, crop_driving=False, pipeline=_tiny_pipeline())
    assert motion.face_numbers == [1, 0] and len(motion) == 4 and motion.fps == 10.0
    driving_inputs = [resize_like_skimage_0183(f, (64, 64)) for f in driving]
    squares = [crop_square(boxes[1]), crop_square(boxes[0])]
    for clip, square in zip(motion.clips, squares, strict=True):
        source = resize_like_skimage_0183(extract(photo, square), (64, 64))
        alone = _tiny_pipeline().animate_arrays(source, driving_inputs, "relative").frames
        assert np.array_equal(clip, to_uint8_like_skimage(alone))
    assert not np.array_equal(motion.clips[0], motion.clips[1])
    frame = motion.frame(3)
    assert np.array_equal(frame, paste(paste(photo, motion.clips[0][3], squares[0]), motion.clips[1][3], squares[1]))
    between = slice(squares[1].left + squares[1].side, squares[0].left)  # no face square there
    assert between.start < between.stop and np.array_equal(frame[:, between], photo[:, between])
    with pytest.raises(InputError, match="no frames"):
        animate_faces(photo, boxes, [0], [], 10.0, pipeline=_tiny_pipeline())


# --------------------------------------------------------------------------- whole photo, video, errors


@pytest.fixture(scope="module")
def example_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from pipelines.animation.examples import example_photo, make_driving_clip
    from pipelines.common.media import save_png

    folder = tmp_path_factory.mktemp("animate")
    photo = save_png(example_photo(), folder / "photo.png")
    clip = make_driving_clip(folder / "drive.mp4", seconds=0.5, fps=10.0, size=200)
    return photo, clip


def test_whole_photo_animation_video_with_audio(example_clip: tuple[Path, Path]) -> None:
    photo_path, clip = example_clip
    from pipelines.common.media import load_image

    photo = load_image(photo_path)
    pipe = _tiny_pipeline()
    out = animate(photo_path, clip, mode="relative", find_best_frame=True, pipeline=pipe, side_by_side=True)
    assert out.faces_found >= 1 and out.face_index == 0 and out.driving_cropped and out.best_frame is not None
    info = probe_video(out.video)
    assert (info.width, info.height, info.fps, info.n_frames) == (512, 512, 10.0, 5)
    assert video_streams(out.video) == {"video": "h264", "audio": "aac"}
    frames, _ = read_video(out.video)
    from pipelines.common import faces

    square = crop_square(faces.detect_faces(photo)[0])
    left, top, right, bottom = square.box
    outside = np.ones(photo.shape[:2], bool)
    outside[max(0, top - 2) : bottom + 2, max(0, left - 2) : right + 2] = False
    # outside the face square the photo is unchanged (up to H.264 noise); inside it moves
    assert np.abs(frames[0].astype(int) - photo.astype(int))[outside].mean() < 3
    assert np.abs(frames[0].astype(int) - photo.astype(int))[~outside].mean() > 3
    sbs = probe_video(out.side_by_side)
    assert (sbs.height, sbs.n_frames) == (512, 5) and sbs.width == 1024 and sbs.has_audio


def test_animate_input_errors(example_clip: tuple[Path, Path], tmp_path: Path) -> None:
    photo_path, clip = example_clip
    pipe = _tiny_pipeline()
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(InputError, match="No face"):
        animate(blank, clip, pipeline=pipe)
    with pytest.raises(InputError, match="Face 9"):
        animate(photo_path, clip, pipeline=pipe, face_index=8)
    with pytest.raises(InputError, match="mode"):
        animate(photo_path, clip, pipeline=pipe, mode="wobble")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError):
        animate(photo_path, bad, pipeline=pipe)
    # without face cropping a face-less picture is animated whole
    out = animate(blank, clip, pipeline=pipe, crop_faces=False, side_by_side=False)
    assert probe_video(out.video).width == 200 and out.side_by_side is None
