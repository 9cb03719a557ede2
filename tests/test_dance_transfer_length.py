"""Dance transfer's length control: only the first N seconds of the source are used (poses
searched, frames generated, sound cut), as in Animate and Colorize video; 0 is the whole clip.
The pipeline, the tab's endpoint and the command line all honour it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.common.disk import write_json
from pipelines.common.media import probe_video
from pipelines.dance import pipeline
from pipelines.dance import target as target_module
from pipelines.dance.networks import GeneratorConfig
from pipelines.dance.target import prepare_target_from_arrays

SIZE = (64, 32)  # a tiny generator at a tiny size: only the frame count is under test


@pytest.fixture()
def tiny_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A target named ``tiny`` with an untrained (seeded) small generator, in a private data dir."""
    from safetensors.torch import save_file

    monkeypatch.setenv("NOSTALGIA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NOSTALGIA_OUTPUT_DIR", str(tmp_path / "out"))
    frames, poses, fps = pipeline.sample_target_arrays(seconds=1.0)
    path = prepare_target_from_arrays(pipeline.data_dir() / "tiny", frames[:6], poses[:6], name="tiny", fps=fps, source="test")
    config = GeneratorConfig("global", 6, 3, 4, 2, 1)
    torch.manual_seed(0)
    (path / "model").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in config.build().state_dict().items()}, str(path / "model" / "net_G.safetensors"))
    write_json(path / "model" / "generator.json", {"generator": config.to_dict(), "face_generator": None,
                                                   "width": SIZE[0], "height": SIZE[1], "face_box": 0})  # fmt: skip
    return "tiny"


@pytest.fixture()
def source_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[int]]:
    """A 2 s source (12 frames at 6 fps); pose search is replaced by the sample's poses and counts
    the frames it is given (no OpenPose weights in tests)."""
    from pipelines.dance.sample import make_sample_target, write_sample_video

    frames, raw_poses = make_sample_target(seconds=2.0, fps=6)
    video = write_sample_video(frames[:12], tmp_path / "source.mp4", 6.0)
    searched: list[int] = []

    def counting_detect(chunk, progress=None, hands=None):
        start = sum(searched)
        searched.append(len(chunk))
        return raw_poses[start : start + len(chunk)]

    monkeypatch.setattr(target_module, "detect_poses", counting_detect)
    return video, searched


def test_transfer_uses_only_the_first_seconds_of_an_uploaded_video(tiny_target, source_video) -> None:
    video, searched = source_video
    result = pipeline.transfer(tiny_target, video, first_seconds=1.0)
    assert sum(searched) == 6, "poses are searched in the first second only"
    assert result.n_frames == 6 and probe_video(result.path).n_frames == 6
    assert any("first 1.0 s" in note and "6 of 12 frames" in note for note in result.notes), result.notes


def test_transfer_of_the_whole_clip_when_zero(tiny_target, source_video) -> None:
    video, searched = source_video
    result = pipeline.transfer(tiny_target, video, first_seconds=0)
    assert sum(searched) == 12 and probe_video(result.path).n_frames == 12
    assert not any("first" in note for note in result.notes)


def test_transfer_of_the_sample_motion_is_cut_too(tiny_target) -> None:
    _, poses, fps = pipeline.sample_motion_arrays()
    result = pipeline.transfer(tiny_target, sample_motion=True, first_seconds=1.0)
    assert len(poses) > fps and result.n_frames == round(fps) == probe_video(result.path).n_frames


def test_dance_transfer_endpoint_honours_the_length(app_client, tiny_target) -> None:
    """``/dance_transfer``'s length parameter (after normalize, before precision), as the tab's slider sends it."""
    n_motion = len(pipeline.sample_motion_arrays()[0])
    video, _, note = app_client.predict(tiny_target, None, True, False, True, 1, "auto", api_name="/dance_transfer")
    assert probe_video(video).n_frames == round(pipeline.SAMPLE_FPS) and f"{round(pipeline.SAMPLE_FPS)} frames" in note
    video, _, note = app_client.predict(tiny_target, None, True, False, True, 0, "auto", api_name="/dance_transfer")
    assert probe_video(video).n_frames == n_motion, note


def test_dance_command_takes_first_seconds(tiny_target, source_video, tmp_path: Path) -> None:
    from pipelines.__main__ import main

    video, searched = source_video
    assert main(["dance", str(video), "--target", tiny_target, "--first-seconds", "0.5", "--output", str(tmp_path / "o"), "--quiet"]) == 0
    written = tmp_path / "o" / "source.dance.mp4"
    assert probe_video(written).n_frames == 3 and sum(searched) == 3
    assert probe_video(written).fps == pytest.approx(6.0)
