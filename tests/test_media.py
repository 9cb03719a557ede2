"""Media I/O: every odd image a user may upload, and the video round trip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.common import media
from pipelines.common.errors import InputError


def _gradient(w: int = 64, h: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], -1).astype(np.uint8)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path: Path) -> None:
    im = Image.fromarray(_gradient(64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=95)
    arr = media.load_image(path)
    assert arr.shape == (64, 48, 3) and arr.dtype == np.uint8


def test_sixteen_bit_png_is_scaled_to_eight_bit(tmp_path: Path) -> None:
    data = (np.linspace(0, 65535, 32 * 16).reshape(16, 32)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(data).save(path)
    arr = media.load_image(path)
    assert arr.shape == (16, 32, 3)
    assert arr[0, 0, 0] == 0 and arr[-1, -1, 0] == 255
    assert np.all(arr[..., 0] == arr[..., 1])


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(path, quality=95)
    arr = media.load_image(path)
    assert arr.shape == (48, 64, 3)
    assert np.abs(arr.astype(int) - _gradient().astype(int)).mean() < 8


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    arr = media.load_image(path)
    assert tuple(arr[0, 0]) == (200, 0, 0) and tuple(arr[7, 7]) == (255, 255, 255)


def test_grayscale_and_palette(tmp_path: Path) -> None:
    Image.fromarray(_gradient()[..., 0]).save(tmp_path / "g.png")
    Image.fromarray(_gradient()).convert("P").save(tmp_path / "p.png")
    assert media.load_image(tmp_path / "g.png").shape == (48, 64, 3)
    assert media.load_image(tmp_path / "p.png").shape == (48, 64, 3)


def test_truncated_and_fake_and_empty_files_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(_gradient(256, 256)).save(good, quality=95)
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:2000])
    (tmp_path / "text.jpg").write_text("this is not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="damaged or truncated"):
        media.load_image(tmp_path / "cut.jpg")
    with pytest.raises(InputError, match="not a readable image"):
        media.load_image(tmp_path / "text.jpg")
    with pytest.raises(InputError, match="empty"):
        media.load_image(tmp_path / "empty.png")


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (6000, 5000)).save(path)  # 30 MP of zeros compresses to a few KB
    with pytest.raises(InputError, match="exceeds the limit"):
        media.load_image(path, max_pixels=24_000_000)


def _make_clip(path: Path, seconds: float, with_audio: bool, size: str = "64x48") -> Path:
    cmd = [
        media.ffmpeg_exe(),
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={size}:rate=10:duration={seconds}",
    ]
    if with_audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    return path


def test_video_round_trip_keeps_fps_frames_and_audio(tmp_path: Path) -> None:
    src = _make_clip(tmp_path / "src.mp4", 1.0, with_audio=True)
    frames, info = media.read_video(src)
    assert info.fps == pytest.approx(10.0) and len(frames) == 10 and info.has_audio
    out = media.write_video([255 - f[:47, :63] for f in frames], tmp_path / "out.mp4", info.fps, audio_from=src)
    streams = media.video_streams(out)
    assert streams["video"] == "h264" and streams["audio"] == "aac"
    frames2, info2 = media.read_video(out)
    assert len(frames2) == 10 and frames2[0].shape == (48, 64, 3)  # odd size padded to even
    assert info2.fps == pytest.approx(10.0)
    assert np.abs(frames2[3][:47, :63].astype(int) - (255 - frames[3][:47, :63]).astype(int)).mean() < 6


def test_too_long_video_is_refused(tmp_path: Path) -> None:
    src = _make_clip(tmp_path / "long.mp4", 3.0, with_audio=False)
    with pytest.raises(InputError, match="limit is 2 s"):
        media.probe_video(src, max_seconds=2)


def test_not_a_video_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.mp4").write_text("nope")
    with pytest.raises(InputError, match="not a readable video"):
        media.probe_video(tmp_path / "x.mp4")


def test_audio_shorter_or_longer_than_the_video_never_drops_frames(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(10)]  # 1.0 s at 10 fps
    for seconds in (0.3, 3.0):
        tone = tmp_path / f"tone{seconds}.m4a"
        cmd = [media.ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", f"sine=duration={seconds}", str(tone)]
        subprocess.run(cmd, check=True)
        out = media.write_video(frames, tmp_path / f"out{seconds}.mp4", 10.0, audio_from=tone)
        got, info = media.read_video(out)
        assert len(got) == 10 and info.has_audio
        assert info.duration == pytest.approx(1.0, abs=0.15)


def test_read_video_refuses_what_would_not_fit_in_memory(tmp_path, monkeypatch) -> None:
    """The one reader that holds every frame refuses, before decoding, a video past its memory bound."""
    import dataclasses

    frames = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(10)]
    path = media.write_video(frames, tmp_path / "ten.mp4", 10)
    monkeypatch.setattr(media, "LIMITS", dataclasses.replace(media.LIMITS, max_in_memory_mb=0.02))
    with pytest.raises(media.InputError, match=r"10 frames of 32x32 need 0.0307 MB in memory for this step; the limit is 0.02 MB"):
        media.read_video(path)


def test_read_video_takes_only_the_first_seconds_when_asked(tmp_path: Path) -> None:
    frames = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(20)]
    clip = media.write_video(frames, tmp_path / "clip.mp4", fps=10)
    assert media.frames_in_first(None, 10) is None and media.frames_in_first(0, 10) is None
    assert media.frames_in_first(0.5, 10) == 5 and media.frames_in_first(0.01, 10) == 1
    first, info = media.read_video(clip, first_seconds=0.5)
    assert len(first) == info.n_frames == 5 and abs(info.duration - 2.0) < 0.15  # the whole clip's duration
    assert abs(int(first[-1].mean()) - 40) <= 3  # frames 0..4, in order
    whole, _ = media.read_video(clip, first_seconds=0)
    assert len(whole) == 20
