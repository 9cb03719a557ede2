"""The command line (``python -m pipelines``): a folder with a good photo, a corrupt file, a video and a
stray text file; failures reported at the end, non-zero exit, no overwriting without --overwrite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.__main__ import build_parser, collect_inputs, main
from pipelines.common.media import load_image, probe_video, write_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-in")
    photo = load_image(reference_dir / "bopbtl" / "data" / "scratch_d.png")
    shutil.copyfile(reference_dir / "bopbtl" / "data" / "scratch_d.png", path / "couple.png")
    (path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))  # a JPEG header, then garbage
    write_video([photo[:128, :192], photo[128:, 200:392]], path / "clip.mp4", fps=5)
    (path / "notes.txt").write_text("not a photo")
    return path


@pytest.mark.slow
def test_folder_run_reports_the_corrupt_file_and_exits_non_zero(
    folder: Path, tmp_path: Path, ensure_fixtures, capsys
) -> None:
    ensure_fixtures(["deoldify/artistic"])
    out = tmp_path / "out"
    code = main(["colorize", str(folder), "-o", str(out), "--model", "artistic", "--render-factor", "7"])
    err = capsys.readouterr().err
    assert code == 1, err
    summary = err.split("input(s) FAILED:")[-1]
    assert "broken.jpg" in summary and "couple.png" not in summary and "clip.mp4" not in summary
    assert "2 of 3 input(s) done" in err and "Skipped 1 file(s)" in err and "notes.txt" in err
    still = load_image(out / "couple.colorized.png")
    assert still.shape == (256, 400, 3)
    info = probe_video(out / "clip.colorized.mp4")
    assert (info.width, info.height, info.n_frames) == (192, 128, 2)
    assert sorted(p.name for p in out.iterdir()) == ["clip.colorized.mp4", "couple.colorized.png"]

    # a second run never replaces results without --overwrite (and spends no work on them)
    before = (out / "couple.colorized.png").read_bytes()
    shutil.copyfile(folder / "couple.png", tmp_path / "couple.png")
    code = main(["colorize", str(tmp_path / "couple.png"), "-o", str(out), "--quiet"])
    assert code == 1 and (out / "couple.colorized.png").read_bytes() == before


@pytest.mark.slow
def test_overwrite_replaces_and_succeeds(folder: Path, tmp_path: Path, ensure_fixtures, capsys) -> None:
    ensure_fixtures(["deoldify/artistic"])
    out = tmp_path / "out"
    out.mkdir()
    target = out / "couple.colorized.png"
    target.write_bytes(b"old")
    args = ["colorize", str(folder / "couple.png"), "-o", str(out), "--model", "artistic", "--render-factor", "7"]
    assert main(args) == 1
    assert "already exist" in capsys.readouterr().err and target.read_bytes() == b"old"
    assert main([*args, "--overwrite"]) == 0
    assert load_image(target).shape == (256, 400, 3)


def test_inputs_from_folders_and_missing_files(folder: Path, tmp_path: Path) -> None:
    from pipelines.__main__ import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    photos, skipped = collect_inputs([folder], IMAGE_EXTENSIONS, False)
    assert [p.name for p in photos] == ["broken.jpg", "couple.png"]
    assert sorted(p.name for p in skipped) == ["clip.mp4", "notes.txt"]
    videos, _ = collect_inputs([folder, folder / "clip.mp4"], VIDEO_EXTENSIONS, False)
    assert [p.name for p in videos] == ["clip.mp4"]  # listed once
    assert main(["restore", str(tmp_path / "nothing.png"), "-o", str(tmp_path / "o"), "--quiet"]) == 1


def test_help_lists_every_command_and_usage_errors_exit_2() -> None:
    parser = build_parser()
    text = parser.format_help()
    for command in ("restore", "colorize", "animate", "dance", "nostalgia", "story"):
        assert command in text
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["restore", "x.png"])  # -o is required
    assert info.value.code == 2
    proc = subprocess.run([sys.executable, "-m", "pipelines", "nostalgia", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "--all-faces" in proc.stdout and "--overwrite" in proc.stdout
    assert proc.stdout.startswith("usage: python -m pipelines nostalgia")  # the command the README shows


def test_one_line_warning_when_a_weight_in_use_is_a_fixture(ensure_fixtures, tmp_path: Path, capsys) -> None:
    ensure_fixtures(["deoldify/artistic"])
    args = ["colorize", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o"), "--model", "artistic", "--quiet"]
    assert main(args) == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if "fixture" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: fixture weights in use, outputs are not real")
    assert "deoldify/artistic" in warnings[0]


def test_no_fixture_warning_when_no_weight_is_a_fixture(weights_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["colorize", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o"), "--quiet"]) == 1
    assert "warning: fixture weights" not in capsys.readouterr().err


@pytest.mark.slow
def test_nostalgia_command_writes_the_still(tmp_path: Path) -> None:
    photo = tmp_path / "plain.png"
    from pipelines.common.media import save_png

    save_png(np.full((64, 96, 3), 90, np.uint8), photo)
    out = tmp_path / "out"
    assert main(["nostalgia", str(photo), "-o", str(out), "--no-restore", "--colorize", "no", "--no-animate"]) == 0
    assert (load_image(out / "plain.png") == 90).all()
    assert main(["nostalgia", str(photo), "-o", str(out), "--no-restore", "--colorize", "no", "--no-animate"]) == 1


@pytest.mark.slow
def test_story_command_writes_a_narrated_video(tmp_path: Path) -> None:
    from pipelines.common.media import save_png, video_streams

    photo = save_png(np.full((96, 128, 3), 100, np.uint8), tmp_path / "wall.png")
    out = tmp_path / "out"
    args = ["story", str(photo), "-o", str(out), "--text", "A plain wall.", "--no-restore", "--colorize", "no",
            "--no-animate", "--quiet"]  # fmt: skip
    assert main(args) == 0
    video = out / "wall.story.mp4"
    assert video_streams(video) == {"video": "h264", "audio": "aac"} and probe_video(video).duration > 0.3


def test_parser_takes_model_names_and_defaults_from_the_configs() -> None:
    """One owner for each default: the parser reads NostalgiaOptions, StoryOptions and the model tables."""
    import inspect

    from pipelines.__main__ import build_parser
    from pipelines.animation.config import CONFIGS
    from pipelines.animation.pipeline import MODES
    from pipelines.colorization.config import VARIANTS
    from pipelines.common.precision import MODES as PRECISION_MODES
    from pipelines.dance.pipeline import train_target
    from pipelines.nostalgia.config import NostalgiaOptions, StoryOptions

    parser = build_parser()
    chain, story = NostalgiaOptions(), StoryOptions()
    args = parser.parse_args(["story", "x.png", "-o", "out"])
    assert (args.scratches, args.colorize, args.max_side) == (chain.scratches, chain.colorize, chain.max_side)
    assert (args.model, args.render_factor, args.preset) == (chain.colorize_model, chain.render_factor, chain.preset)
    assert (args.motion_seconds, args.motion_fps, args.face) == (chain.motion_seconds, chain.motion_fps, chain.face_index + 1)
    assert (args.voice, args.language) == (story.voice, story.language)
    animate = parser.parse_args(["animate", "x.png", "-o", "out"])
    assert (animate.model, animate.mode) == (chain.animation_model, chain.animation_mode)
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["animate"]._actions}
    assert tuple(actions["model"].choices) == tuple(CONFIGS) and tuple(actions["mode"].choices) == tuple(MODES)
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["colorize"]._actions}
    assert tuple(actions["model"].choices) == tuple(VARIANTS)
    assert tuple(actions["precision"].choices) == PRECISION_MODES
    train = parser.parse_args(["dance-train", "--sample"])
    signature = inspect.signature(train_target).parameters
    assert (train.preset, train.minutes) == (signature["preset"].default, signature["minutes"].default)
