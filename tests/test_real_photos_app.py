"""The tabs on REAL old photos and a REAL driving video (the reference data of the original
repositories), end to end through gradio_client with fixture weights.

Fixture weights make the pictures meaningless, so these tests check what the pipeline guarantees
whatever the weights: it runs on real inputs, keeps sizes, fps and audio, shows every stage, and
leaves the parts of the photo it must not touch untouched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.common import media

pytestmark = pytest.mark.slow  # runs the pipelines end to end (the running app, fixture weights)


def _path(item: object) -> str:
    if isinstance(item, dict):
        return _path(item.get("path") or item.get("video") or item.get("value"))
    return str(item)


@pytest.fixture(scope="module")
def photos(reference_dir: Path) -> dict[str, Path]:
    data = reference_dir / "bopbtl" / "data"
    return {name: data / f"{name}.png" for name in ("a", "scratch_a", "scratch_d")}


def test_restore_real_old_photos(app_client, ensure_fixtures, photos: dict[str, Path]) -> None:
    from gradio_client import handle_file

    from pipelines.restoration.pipeline import RestorationPipeline

    ensure_fixtures(RestorationPipeline.checkpoints(with_scratch=True, hr=False, enhance_faces=True))
    for name, scratched in (("a", False), ("scratch_a", True)):
        size = Image.open(photos[name]).size
        slider, gallery, note = app_client.predict(
            handle_file(str(photos[name])), scratched, False, True, api_name="/restore"
        )
        before, after = (_path(item) for item in slider)
        # Stage 1 rounds each side to a multiple of 4, as the original does (298x450 -> 296x448).
        assert Image.open(before).size == Image.open(after).size
        assert all(abs(a - b) <= 2 for a, b in zip(Image.open(after).size, size, strict=True))
        assert not np.array_equal(np.asarray(Image.open(before)), np.asarray(Image.open(after)))
        captions = [item.get("caption") for item in gallery]
        assert "Global restoration (stage 1)" in captions
        assert ("Scratch mask (white = repaired)" in captions) == scratched
        assert "Done in" in note


def test_animate_real_photo_by_real_driving_video(
    app_client, ensure_fixtures, photos: dict[str, Path], reference_dir: Path, tmp_path: Path
) -> None:
    from gradio_client import handle_file

    ensure_fixtures(["tpsmm/vox"])
    driving = reference_dir / "tpsmm" / "data" / "driving.mp4"  # a real talking head, with audio
    clip = tmp_path / "driving_6_frames.mp4"
    cmd = [media.ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(driving), "-frames:v", "6", "-t", "0.24",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)]  # fmt: skip
    subprocess.run(cmd, check=True)
    video, side, note = app_client.predict(
        handle_file(str(photos["scratch_d"])),
        handle_file(str(clip)),
        "vox",
        "relative",
        False,
        1,
        True,
        api_name="/animate",
    )
    out = _path(video)
    info = media.probe_video(out)
    photo = media.load_image(photos["scratch_d"])
    assert abs(info.fps - 25.0) < 1e-3 and info.n_frames == 6
    assert (info.width, info.height) == (photo.shape[1] + photo.shape[1] % 2, photo.shape[0] + photo.shape[0] % 2)
    assert media.video_streams(out) == {"video": "h264", "audio": "aac"}
    frames, _ = media.read_video(out)
    diff = np.abs(frames[-1][: photo.shape[0], : photo.shape[1]].astype(int) - photo.astype(int)).mean(axis=2)
    assert diff.max() > 20  # the chosen face moves
    assert np.median(diff) < 4  # the rest of the whole photo, the other face too, stays the photo (up to H.264)
    assert media.probe_video(_path(side)).has_audio
    assert "6 frames at 25 fps" in note
