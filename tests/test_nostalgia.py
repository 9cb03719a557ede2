"""The one-click chain and Story mode below the UI: the pure decisions (colour, scratches), options,
captions, camera, narration, the lazy public API, and the chain / story on a real old photo with
fixture weights (small settings: the CPU is shared)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from pipelines.common.errors import InputError
from pipelines.nostalgia import analysis
from pipelines.nostalgia.config import NostalgiaOptions, StoryOptions
from pipelines.nostalgia.motion import choose_faces, ping_pong
from pipelines.nostalgia.story import (
    caption_at,
    ken_burns_window,
    load_font,
    narrate,
    plan_captions,
    recording_to_wav,
    wav_seconds,
)

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- colour decision


def _toned(rgb: np.ndarray, tint: tuple[float, float, float], offset: float, seed: int) -> np.ndarray:
    """A monochrome print: luma times a tint plus an offset, with grain equal in the three channels."""
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grain = np.random.default_rng(seed).normal(0, 8, luma.shape)[..., None]
    out = offset + 0.7 * luma[..., None] * np.array(tint) + grain
    return np.clip(out, 0, 255).astype(np.uint8)


def _faded(rgb: np.ndarray, keep: float) -> np.ndarray:
    gray = rgb.astype(np.float64).mean(axis=2, keepdims=True)
    return np.clip(keep * rgb + (1 - keep) * gray, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_colour_photos_are_not_colorized(name: str) -> None:
    photo = getattr(skimage.data, name)()
    assert not analysis.needs_colorization(photo)
    assert analysis.color_stats(photo).residual_chroma > 2 * analysis.DEFAULT_COLOR_THRESHOLD * 0.9


def test_gray_toned_and_faded_photos_are_colorized() -> None:
    astronaut = skimage.data.astronaut()
    gray = np.repeat(skimage.data.camera()[..., None], 3, axis=2)
    sepia = _toned(astronaut, (1.07, 0.95, 0.78), 40.0, seed=1)
    cyanotype = _toned(astronaut, (0.75, 0.9, 1.15), 10.0, seed=2)
    for photo in (gray, sepia, cyanotype, _faded(astronaut, 0.15)):
        assert analysis.needs_colorization(photo)
    assert analysis.color_stats(gray).residual_chroma == 0.0
    # a sepia print has plenty of chroma overall, but none beyond what its brightness explains
    stats = analysis.color_stats(sepia)
    assert stats.chroma > 15 and stats.residual_chroma < 5


def test_colour_measure_shrinks_with_fading_and_ignores_grain() -> None:
    photo = skimage.data.astronaut()
    measures = [analysis.color_stats(_faded(photo, k)).residual_chroma for k in (1.0, 0.6, 0.3, 0.1)]
    assert measures == sorted(measures, reverse=True)
    grain = np.random.default_rng(0).normal(0, 10, photo.shape[:2])[..., None]
    noisy = np.clip(photo + grain, 0, 255).astype(np.uint8)
    assert abs(analysis.color_stats(noisy).residual_chroma - measures[0]) < 0.1 * measures[0]


def test_colour_measure_refuses_non_images() -> None:
    with pytest.raises(ValueError, match="image"):
        analysis.color_stats(np.zeros((4, 4, 2), np.uint8))


def test_scratch_decision_uses_the_marked_share() -> None:
    mask = np.zeros((100, 100), np.uint8)
    assert analysis.scratch_fraction(None) == 0.0 and not analysis.has_scratches(None)
    mask[0, :30] = 255  # 0.3 % marked: stray detections
    assert analysis.scratch_fraction(mask) == pytest.approx(0.003)
    assert not analysis.has_scratches(mask)
    mask[50, :] = 255  # a scratch across the photo: 1.3 %
    assert analysis.has_scratches(mask)
    assert not analysis.has_scratches(mask, threshold=0.02)


# --------------------------------------------------------------------------- options and helpers


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scratches": "maybe"}, "scratches must be one of"),
        ({"colorize": "sometimes"}, "colorize must be one of"),
        ({"preset": "moonwalk"}, "Unknown driving preset"),
        ({"motion_seconds": 0.0}, "motion_seconds"),
        ({"face_index": -1}, "face number"),
        ({"max_side": 10}, "max_side"),
    ],
)
def test_options_refuse_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        NostalgiaOptions(**changes).validated()


def test_options_from_keywords_name_unknown_options() -> None:
    assert NostalgiaOptions.from_kwargs(all_faces=True).all_faces
    with pytest.raises(InputError, match=r"Unknown option.*colour"):
        NostalgiaOptions.from_kwargs(colour="yes")
    with pytest.raises(InputError, match="voice"):
        StoryOptions(voice="robot").validated()


def test_ping_pong_loops_without_jumps() -> None:
    seq = [ping_pong(i, 4) for i in range(12)]
    assert seq == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert all(abs(a - b) == 1 for a, b in itertools.pairwise(seq))
    assert [ping_pong(i, 1) for i in range(3)] == [0, 0, 0]


def test_face_choice() -> None:
    assert choose_faces(3, 1, False) == [1]
    assert choose_faces(3, 0, True) == [0, 1, 2]
    with pytest.raises(InputError, match="No face"):
        choose_faces(0, 0, True)
    with pytest.raises(InputError, match="Face 3 was requested but the photo has 2"):
        choose_faces(2, 2, False)


def test_captions_cover_the_narration_in_reading_order() -> None:
    font = load_font(20)
    text = "This is my grandmother Anna. She was born in Krakow in nineteen hundred, the youngest of seven children! Hello."
    caps = plan_captions(text, 9.0, font, 300)
    assert caps[0].start == 0.0 and caps[-1].end == pytest.approx(9.0)
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(caps))
    assert all(1 <= len(c.lines) <= 2 and all(font.getlength(line) <= 300 for line in c.lines) for c in caps)
    assert " ".join(" ".join(c.lines) for c in caps).split() == text.split()
    longest = max(caps, key=lambda c: sum(map(len, c.lines)))
    shortest = min(caps, key=lambda c: sum(map(len, c.lines)))
    assert longest.end - longest.start > shortest.end - shortest.start
    assert caption_at(caps, 0.0) is caps[0] and caption_at(caps, 8.99) is caps[-1]
    assert plan_captions("   ", 3.0, font, 300) == []


def test_pan_and_zoom_window() -> None:
    assert ken_burns_window(0.0, (400, 300), 1.2, (350, 50)) == (0.0, 0.0, 400.0, 300.0)
    left, top, right, bottom = ken_burns_window(1.0, (400, 300), 1.25, (350, 50))
    assert (right - left, bottom - top) == pytest.approx((320.0, 240.0))
    assert left == pytest.approx(80.0) and top == pytest.approx(0.0)  # towards the focus, inside the photo
    mid = ken_burns_window(0.5, (400, 300), 1.25, (200, 150))
    assert mid[0] > 0 and mid[2] < 400 and (mid[0] + mid[2]) / 2 == pytest.approx(200)


# --------------------------------------------------------------------------- narration


def test_espeak_narration_duration_from_the_wav_header(tmp_path: Path) -> None:
    short = narrate("Hello.", None, StoryOptions(), tmp_path)
    (tmp_path / "long").mkdir()
    long = narrate("Hello. This is a much longer story about my family.", None, StoryOptions(), tmp_path / "long")
    assert short.voice.startswith("espeak-ng") and 0.3 < short.seconds < long.seconds < 10
    with wave.open(str(long.wav)) as w:
        assert long.seconds == pytest.approx(w.getnframes() / w.getframerate())
    slow = narrate(
        "Hello. This is a much longer story about my family.", None, StoryOptions(words_per_minute=100), tmp_path
    )
    assert slow.seconds > long.seconds


def test_recording_is_converted_and_bad_recordings_refused(tmp_path: Path) -> None:
    from pipelines.animation.examples import write_tone

    tone = write_tone(tmp_path / "tone.wav", 1.5, rate=22050)
    narration = narrate("", tone, StoryOptions(), tmp_path)
    assert narration.voice == "your recording" and narration.seconds == pytest.approx(1.5, abs=0.01)
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(b"not audio at all" * 50)
    with pytest.raises(InputError, match="not a readable audio"):
        recording_to_wav(bad, tmp_path / "out.wav")
    with pytest.raises(InputError, match="text"):
        narrate("  ", None, StoryOptions(), tmp_path)
    with pytest.raises(InputError, match="no recording"):
        narrate("Hi", None, StoryOptions(voice="recording"), tmp_path)
    with pytest.raises(InputError, match="WAV"):
        wav_seconds(bad)


# --------------------------------------------------------------------------- API


def test_public_api_is_lazy_and_complete() -> None:
    code = (
        "import sys, pipelines\n"
        "assert 'torch' not in sys.modules, 'import pipelines must not import torch'\n"
        "from pipelines import restore, colorize, colorize_video, animate, transfer, train_target, list_targets, story\n"
        "from pipelines import nostalgia, NostalgiaOptions, InputError\n"
        "import pipelines.nostalgia.pipeline\n"
        "from pipelines import nostalgia as again\n"
        "assert again is nostalgia and callable(nostalgia) and callable(story) and callable(restore)\n"
        "assert set(pipelines.__all__) <= set(dir(pipelines))\n"
        "try:\n    pipelines.nope\nexcept AttributeError as e:\n    print('ok', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "nope" in out.stdout


# --------------------------------------------------------------------------- the chain on a real photo


@pytest.fixture(scope="module")
def couple(reference_dir: Path) -> Path:
    """A real scratched old photo of two people (400x256)."""
    return reference_dir / "bopbtl" / "data" / "scratch_d.png"


@pytest.mark.slow
def test_auto_scratch_decision_follows_the_detector(ensure_fixtures, couple: Path) -> None:
    from pipelines.common.media import load_image
    from pipelines.nostalgia.pipeline import NostalgiaPipeline
    from pipelines.restoration.pipeline import RestorationPipeline

    ensure_fixtures(RestorationPipeline.checkpoints(with_scratch=True, hr=False, enhance_faces=False))
    small = load_image(couple)[::3, ::3]  # 134x86: the decision, not the quality, is under test
    pipe = NostalgiaPipeline()
    share = analysis.scratch_fraction(pipe.detect_scratches(small))
    for threshold in (share + 0.01, max(0.0, share - 0.01)):
        options = NostalgiaOptions(enhance_faces=False, colorize="no", animate=False, scratch_threshold=threshold)
        result = pipe(small, options)
        restore_step = result.steps[0]
        scratch_mode = threshold < share
        assert restore_step.ran and ("scratch repair on" in restore_step.reason) == scratch_mode, restore_step
        assert (result.scratch_mask is not None) == scratch_mode
        assert result.restored is not None and result.image is result.restored
        assert [s.name for s in result.steps] == ["Restore", "Colorize", "Animate"]
        assert not result.steps[2].ran and "2 faces found" in result.steps[2].reason


@pytest.mark.slow
def test_story_animates_all_faces_over_the_narration(ensure_fixtures, couple: Path) -> None:
    from pipelines.common.media import load_image, probe_video, read_video, video_streams
    from pipelines.nostalgia.story import story

    ensure_fixtures(["tpsmm/vox"])
    options = NostalgiaOptions(restore=False, colorize="no", all_faces=True, motion_seconds=0.2, motion_fps=10)
    result = story(couple, "Anna and Jan, nineteen twenty one.", options=options, story_options=StoryOptions(fps=10))
    assert result.camera == "animated faces" and result.chain.motion is not None
    assert result.chain.motion.face_numbers == [0, 1] and len(result.chain.motion) == 2
    info = probe_video(result.video)
    assert video_streams(result.video) == {"video": "h264", "audio": "aac"}
    assert abs(info.duration - result.narration_seconds) < 0.2
    frames, _ = read_video(result.video)
    photo = load_image(couple)
    boxes = result.chain.face_boxes
    assert len(boxes) == 2
    for left, top, right, bottom in boxes:  # both faces are generated (fixture weights: not the photo)
        face_diff = np.abs(frames[0][top:bottom, left:right].astype(int) - photo[top:bottom, left:right]).mean()
        assert face_diff > 5
        assert right < 280  # the crops (1.8x the boxes) stay left of x = 310
    kept = np.abs(frames[0][:150, 310:].astype(int) - photo[:150, 310:]).mean()  # away from faces and captions
    assert kept < 6
    assert result.steps[0].name == "Narration"


@pytest.mark.slow
def test_chain_animates_faces_through_the_animation_pipeline_loop(
    ensure_fixtures, couple: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain's animation step is the animation pipeline's multi-face loop: it runs through
    ``iter_photo_animation`` and gives the frames a direct ``animate_faces`` call gives."""
    from pipelines.animation import pipeline as animation
    from pipelines.common.media import read_video
    from pipelines.nostalgia.motion import preset_driving_video
    from pipelines.nostalgia.pipeline import NostalgiaPipeline

    ensure_fixtures(["tpsmm/vox"])
    calls: list[int] = []
    loop = animation.iter_photo_animation

    def counted(pipe, placement, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(placement.squares))
        yield from loop(pipe, placement, *args, **kwargs)

    monkeypatch.setattr(animation, "iter_photo_animation", counted)
    options = NostalgiaOptions(restore=False, colorize="no", all_faces=True, motion_seconds=0.2, motion_fps=10,
                               precision="exact")  # fmt: skip
    result = NostalgiaPipeline()(couple, options, write_video=False)
    assert calls == [2] and result.motion is not None and result.motion.face_numbers == [0, 1]
    driving, info = read_video(preset_driving_video(options.preset, 0.2, 10))
    direct = animation.animate_faces(result.image, result.face_boxes, [0, 1], driving, info.fps, precision="exact")
    assert len(result.motion) == len(direct) == 2
    for chained, alone in zip(result.motion.clips, direct.clips, strict=True):
        assert np.array_equal(chained, alone)
    assert np.array_equal(result.motion.frame(1), direct.frame(1))


def test_colour_decision_on_real_old_photos(reference_dir: Path) -> None:
    from pipelines.common.media import load_image

    data = reference_dir / "bopbtl" / "data"
    assert not analysis.needs_colorization(load_image(data / "a.png"))  # a faded but colour print
    assert analysis.needs_colorization(load_image(data / "scratch_a.png"))  # sepia
    assert analysis.needs_colorization(load_image(data / "scratch_d.png"))  # sepia
