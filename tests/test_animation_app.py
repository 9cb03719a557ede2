"""The Animate tab end to end through gradio_client: a real whole photo driven by a real video
(with audio), fixture vox weights, output H.264 + AAC at the driving fps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.common.media import load_image, probe_video, read_video, video_streams

pytestmark = pytest.mark.slow  # runs the pipelines end to end (the running app, fixture weights)


@pytest.fixture(scope="module")
def client(app_client, ensure_fixtures) -> Iterator[object]:
    from pipelines.common.device import MODELS

    for key in MODELS.loaded():
        if key.startswith("tpsmm/vox:"):
            MODELS.unload(key)  # load from the app's own (fixture) weights cache
    ensure_fixtures(["tpsmm/vox"])
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CPU is oversubscribed; see tests/test_animation.py
    yield app_client
    torch.set_num_threads(previous)


def _file(value: object) -> str:
    if isinstance(value, dict):
        return _file(value.get("path") or value.get("video") or value.get("value"))
    return str(value)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from pipelines.animation.examples import example_photo, make_driving_clip
    from pipelines.common.media import save_png

    folder = tmp_path_factory.mktemp("animate-app")
    return save_png(example_photo(), folder / "photo.png"), make_driving_clip(folder / "drive.mp4", seconds=0.3, fps=10.0, size=200)


def test_animate_endpoint_whole_photo_with_audio(client, inputs: tuple[Path, Path]) -> None:
    from gradio_client import handle_file

    photo, clip = inputs
    video, side, note = client.predict(
        handle_file(str(photo)), handle_file(str(clip)), "vox", "relative", False, 1, True, api_name="/animate"
    )
    out = _file(video)
    info = probe_video(out)
    assert (info.width, info.height, info.n_frames) == (512, 512, 3) and abs(info.fps - 10) < 1e-3
    assert video_streams(out) == {"video": "h264", "audio": "aac"}
    frames, _ = read_video(out)
    source = load_image(photo)
    diff = np.abs(frames[0].astype(int) - source.astype(int)).mean(axis=2)
    assert diff[:, 400:].mean() < 3  # the right side of the photo (no face there) is kept
    assert diff[60:200, 150:300].mean() > 3  # the face region is generated
    sbs = probe_video(_file(side))
    assert (sbs.width, sbs.height, sbs.n_frames) == (1024, 512, 3) and sbs.has_audio
    assert "face 1 of" in note and "3 frames at 10 fps" in note


def test_animate_endpoint_reports_missing_face(client, inputs: tuple[Path, Path], tmp_path: Path) -> None:
    from gradio_client import handle_file

    from pipelines.common.media import save_png

    _, clip = inputs
    blank = save_png(np.full((120, 120, 3), 90, np.uint8), tmp_path / "blank.png")
    with pytest.raises(Exception, match="No face"):
        client.predict(handle_file(str(blank)), handle_file(str(clip)), "vox", "relative", False, 1, False, api_name="/animate")
