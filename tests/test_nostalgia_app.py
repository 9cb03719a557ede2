"""The Nostalgia tab end to end through gradio_client, with fixture weights, on a real old photo with
two faces: ``/nostalgia`` (restored + colorized stills, the whole photo animated) and ``/story``
(an H.264/AAC MP4 as long as its narration)."""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.common.media import load_image, probe_video, read_video, save_png, video_streams

pytestmark = pytest.mark.slow  # runs the pipelines end to end (the running app, fixture weights)


@pytest.fixture(scope="module")
def client(app_client, ensure_fixtures) -> Iterator[object]:
    from pipelines.common.device import MODELS
    from pipelines.nostalgia.config import NostalgiaOptions
    from pipelines.nostalgia.pipeline import NostalgiaPipeline

    ids = NostalgiaPipeline.checkpoints(NostalgiaOptions(scratches="no", colorize="yes"))
    for key in MODELS.loaded():
        if key.split(":")[0] in ids:
            MODELS.unload(key)  # load from the app's own (fixture) weights cache
    ensure_fixtures(ids)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CPU is oversubscribed
    yield app_client
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def couple(reference_dir: Path) -> Path:
    return reference_dir / "bopbtl" / "data" / "scratch_d.png"


def _file(value: object) -> str:
    if isinstance(value, dict):
        return _file(value.get("path") or value.get("video") or value.get("value"))
    return str(value)


def _espeak_seconds(text: str, folder: Path) -> float:
    """The narration's length measured independently: espeak-ng at the story's defaults."""
    wav = folder / "expected.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(wav), text], check=True, timeout=60)
    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


def test_nostalgia_endpoint_restores_colorizes_and_animates_the_chosen_face(client, couple: Path) -> None:
    from gradio_client import handle_file

    restored, colorized, video, found, files, notes = client.predict(
        handle_file(str(couple)), True, "no", "yes", True, "nod", None, 2, False, False, True, "artistic", 7, 0.2,
        "exact", api_name="/nostalgia",
    )  # fmt: skip
    photo = load_image(couple)
    restored_img, colorized_img = load_image(_file(restored)), load_image(_file(colorized))
    assert restored_img.shape == colorized_img.shape == photo.shape
    assert np.abs(restored_img.astype(int) - photo).mean() > 5  # the restoration ran (fixture weights)
    assert np.abs(colorized_img.astype(int) - restored_img).mean() > 1  # so did the colorization
    out = _file(video)
    info = probe_video(out)
    assert video_streams(out) == {"video": "h264"}  # the preset motion is silent
    assert (info.width, info.height, info.n_frames) == (400, 256, 5) and abs(info.fps - 25) < 1e-3
    frames, _ = read_video(out)
    # face 2 (the woman, left) moves; the right edge of the photo, far from her crop, is the still
    assert np.abs(frames[0][100:180, 110:190].astype(int) - colorized_img[100:180, 110:190]).mean() > 5
    assert np.abs(frames[0][:, 320:].astype(int) - colorized_img[:, 320:]).mean() < 4
    assert len(found) == 2 and [Path(_file(f)).suffix for f in files] == [".png", ".png", ".mp4"]
    assert "face 2 of 2 animated" in notes and "Colorize" in notes and "scratch repair off" in notes


def test_nostalgia_endpoint_refuses_a_photo_without_faces(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    blank = save_png(np.full((120, 160, 3), 120, np.uint8), tmp_path / "wall.png")
    with pytest.raises(Exception, match="No face was found"):
        client.predict(handle_file(str(blank)), False, "no", "no", True, "nod", None, 1, False, False, True,
                       "artistic", 7, 0.2, api_name="/nostalgia")  # fmt: skip


def test_story_endpoint_matches_the_narration(client, couple: Path, tmp_path: Path) -> None:
    from gradio_client import handle_file

    text = "This is Anna and Jan. They married in Krakow, in nineteen twenty one."
    video, notes = client.predict(
        handle_file(str(couple)), text, None, "espeak", False, "no", "no", False, True, 7, 0.2, api_name="/story"
    )
    out = _file(video)
    info = probe_video(out)
    assert video_streams(out) == {"video": "h264", "audio": "aac"} and info.has_audio
    expected = _espeak_seconds(text, tmp_path)
    assert abs(info.duration - expected) < 0.2, (info.duration, expected)
    assert "pan and zoom" in notes and "espeak-ng" in notes
    frames, _ = read_video(out)
    first, last = frames[0].astype(int), frames[-1].astype(int)
    assert np.abs(first[:150] - last[:150]).mean() > 3  # the camera moved (zoom towards the faces)
    bottom = first[-60:].mean()
    assert bottom < load_image(couple)[-60:].mean()  # the caption band darkens the bottom


def test_story_endpoint_uses_the_recording(client, couple: Path, tmp_path: Path) -> None:
    from gradio_client import handle_file

    from pipelines.animation.examples import write_tone

    tone = write_tone(tmp_path / "voice.wav", 1.6)
    video, notes = client.predict(
        handle_file(str(couple)), "", handle_file(str(tone)), "auto", False, "no", "no", False, True, 7, 0.2,
        api_name="/story",
    )  # fmt: skip
    info = probe_video(_file(video))
    assert info.has_audio and abs(info.duration - 1.6) < 0.2
    assert "your recording" in notes


def test_dropping_a_photo_previews_its_whole_numbered_faces(couple: Path) -> None:
    from demos.common import find_faces
    from pipelines.common import faces
    from pipelines.common.media import load_image
    from pipelines.nostalgia.config import NostalgiaOptions

    previews, overview, update, boxes = find_faces(str(couple), NostalgiaOptions().max_side)
    assert [caption for _, caption in previews] == ["Face 1", "Face 2"]
    assert update["maximum"] == 2 and update["value"] == 1
    assert all(thumb.shape == (faces.THUMBNAIL_SIDE, faces.THUMBNAIL_SIDE, 3) for thumb, _ in previews)
    assert overview.shape[2] == 3 and max(overview.shape[:2]) <= 640 and len(boxes) == 2
    # the thumbnail holds the whole face: the detected box plus a margin on every side
    image = load_image(couple)
    for box in faces.detect_faces(image):
        left, top, side = faces.face_frame(box)
        l_, t_, r_, b_ = box
        margin = faces.THUMBNAIL_MARGIN * max(r_ - l_, b_ - t_) - 1  # rounding to whole pixels
        assert left <= l_ - margin and top <= t_ - margin
        assert left + side >= r_ + margin and top + side >= b_ + margin
    # a click on the overview inside a face's frame chooses that face
    (l0, t0, r0, b0), (l1, t1, r1, b1) = boxes
    assert faces.face_at(boxes, (l1 + r1) / 2, (t1 + b1) / 2) == 1
    assert faces.face_at(boxes, (l0 + r0) / 2, (t0 + b0) / 2) == 0
    assert find_faces(None, 1280)[0] == []
