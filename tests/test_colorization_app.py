"""The Colorize tab end to end through gradio_client, with fixture weights."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.common.media import ffmpeg_exe, probe_video, video_streams, write_video

pytestmark = pytest.mark.slow  # runs the pipelines end to end (the running app, fixture weights)


@pytest.fixture(scope="module")
def client(app_client, ensure_fixtures):
    from pipelines.common.device import MODELS

    MODELS.unload("deoldify/artistic:generator@cpu")  # load from the app's own (fixture) weights cache
    ensure_fixtures(["deoldify/artistic"])
    return app_client


def _gray_photo(path: Path, h: int = 60, w: int = 90) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    Image.fromarray((128 + 100 * np.sin(xx / 6.0) * np.cos(yy / 9.0)).astype(np.uint8)).save(path)
    return path


def _file(value: object) -> str:
    """A file path out of whatever gradio_client returns for a file-like output."""
    if isinstance(value, dict):
        value = value.get("path") or value.get("video") or value.get("value")
        return _file(value)
    return str(value)


def test_colorize_endpoint(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    photo = _gray_photo(tmp_path / "gray.png")
    pair, download, note = client.predict(
        handle_file(str(photo)), "artistic", 7, True, api_name="/colorize"
    )
    before, after = (np.asarray(Image.open(_file(p)).convert("RGB")) for p in pair)
    full = np.asarray(Image.open(_file(download)))
    assert before.shape == after.shape == full.shape == (60, 90, 3)
    assert np.array_equal(after, full)
    assert Path(_file(download)).suffix == ".png"
    assert np.abs(after.astype(int) - before.astype(int)).max() > 0  # colour was added
    assert "render factor 7" in note


def test_sweep_endpoint(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    photo = _gray_photo(tmp_path / "gray.png", 40, 40)
    items = client.predict(handle_file(str(photo)), "artistic", [15, 10], False, api_name="/colorize_sweep")
    captions = [item["caption"] for item in items]
    assert captions == ["render factor 10", "render factor 15"]


def test_colorize_without_photo_is_a_clear_error(client) -> None:
    with pytest.raises(Exception, match="photo"):
        client.predict(None, "artistic", 7, True, api_name="/colorize")


def test_video_endpoint_keeps_audio(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    frames = [np.full((48, 64, 3), 40 + 20 * i, np.uint8) for i in range(5)]
    silent = write_video(frames, tmp_path / "silent.mp4", 10)
    src = tmp_path / "in.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i", "sine=frequency=300:duration=3",
         "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(src)],
        check=True,
    )  # fmt: skip
    video, note = client.predict(
        handle_file(str(src)), "artistic", 7, True, 0.5, api_name="/colorize_video"
    )
    out = _file(video)
    info = probe_video(out)
    assert info.n_frames == 5 and abs(info.fps - 10) < 1e-3
    assert video_streams(out) == {"video": "h264", "audio": "aac"}
    assert "smoothing 0.50" in note
