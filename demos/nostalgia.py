"""Nostalgia tab (first tab): one click from an old photo to a restored, colorized, animated one, and
Story mode (the photo narrating a short text).

Layout and events only; the work is :class:`pipelines.nostalgia.pipeline.NostalgiaPipeline` and
:func:`pipelines.nostalgia.story.story`. Endpoints: ``/nostalgia`` and ``/story``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from demos.common import (
    cli_name,
    face_picker,
    job,
    job_controls,
    named_like_cli,
    precision_control,
    progress_reporter,
    require,
    run_job,
)
from pipelines.colorization.config import RENDER_FACTOR_MAX, RENDER_FACTOR_MIN
from pipelines.common.device import gpu
from pipelines.common.errors import NostalgiaError
from pipelines.common.media import new_output_path, save_png
from pipelines.nostalgia.config import DRIVING_PRESETS, MOTION_SECONDS_RANGE, NostalgiaOptions, StoryOptions
from pipelines.nostalgia.pipeline import NostalgiaPipeline, NostalgiaResult
from pipelines.nostalgia.story import story

TITLE = "Nostalgia"
CHECKPOINTS: list[str] = NostalgiaPipeline.checkpoints(NostalgiaOptions(scratches="yes", colorize="yes", hr=True))

#: Every default of the tab comes from here (the options' one owner); the UI only lays them out.
DEFAULTS = NostalgiaOptions()
#: The ``/nostalgia`` settings after the photo, in API order: NostalgiaOptions fields
#: (``face_number`` is ``face_index`` + 1, as the user counts).
ONE_CLICK_FIELDS = ("restore", "scratches", "colorize", "animate", "preset", "driving", "face_number", "all_faces",
                    "hr", "enhance_faces", "colorize_model", "render_factor", "motion_seconds", "precision")  # fmt: skip
#: The ``/story`` settings after photo, text, recording and voice (the rest keep their defaults).
STORY_FIELDS = ("restore", "scratches", "colorize", "animate", "all_faces", "render_factor", "motion_seconds",
                "precision")  # fmt: skip

CHOICE_LABELS = [("auto-detect", "auto"), ("yes", "yes"), ("no", "no")]
PRESET_CHOICES = [(label, name) for name, label in DRIVING_PRESETS.items()]
VOICE_CHOICES = [
    ("automatic (your recording, else a neural voice if installed, else espeak-ng)", "auto"),
    ("espeak-ng (offline)", "espeak"),
    ("neural voice (Piper, when installed)", "neural"),
    ("my recording", "recording"),
]
STORY_EXAMPLE_TEXT = "This is my grandmother Anna on her wedding day, in 1921. She danced until morning."


def options_from(values: dict[str, Any]) -> NostalgiaOptions:
    """:class:`NostalgiaOptions` from the tab's values by field name: an empty value takes the
    option's default, each value is cast to its option's type, ``face_number`` counts from 1."""
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        if name == "face_number":
            kwargs["face_index"] = int(value) - 1
            continue
        default = getattr(DEFAULTS, name)
        kwargs[name] = type(default)(value) if default is not None else value
    return NostalgiaOptions.from_kwargs(**kwargs)


def _settings(group: str) -> dict[str, Any]:
    """The option components of one group, built from :data:`DEFAULTS` (inside a layout)."""
    d = DEFAULTS
    widgets: dict[str, Any] = {}
    with gr.Row():
        widgets["restore"] = gr.Checkbox(label="restore", value=d.restore)
        widgets["scratches"] = gr.Radio(CHOICE_LABELS, value=d.scratches, label="repair scratches")
        widgets["colorize"] = gr.Radio(CHOICE_LABELS, value=d.colorize, label="colorize")
    if group == "one-click":
        with gr.Row():
            widgets["preset"] = gr.Dropdown(PRESET_CHOICES, value=d.preset, label="Driving motion (preset)")
            widgets["motion_seconds"] = gr.Slider(
                MOTION_SECONDS_RANGE[0], MOTION_SECONDS_RANGE[1], value=d.motion_seconds, step=0.1,
                label="Motion length (s): the preset's, or the first seconds of your video",
            )  # fmt: skip
        widgets["driving"] = gr.Video(label="...or your own driving video (optional)", sources=["upload", "webcam"],
                                      height=180)  # fmt: skip
        with gr.Row():
            widgets["hr"] = gr.Checkbox(label="high resolution restoration", value=d.hr)
            widgets["enhance_faces"] = gr.Checkbox(label="enhance faces", value=d.enhance_faces)
            widgets["colorize_model"] = gr.Radio(["artistic", "stable"], value=d.colorize_model, label="DeOldify model")
    else:
        widgets["motion_seconds"] = gr.Slider(MOTION_SECONDS_RANGE[0], MOTION_SECONDS_RANGE[1], value=d.motion_seconds,
                                              step=0.1, label="Motion loop length (s)")  # fmt: skip
    widgets["render_factor"] = gr.Slider(RENDER_FACTOR_MIN, RENDER_FACTOR_MAX, value=d.render_factor, step=1,
                                         label="Render factor (colour detail)")  # fmt: skip
    widgets["precision"] = precision_control()
    return widgets


def _panel(result: NostalgiaResult, step: str, value: Any, label: str) -> dict:
    """An output panel: the step's result, or its label saying the step was skipped and why."""
    skipped = next((s for s in result.steps if s.name == step and not s.ran), None)
    return gr.update(value=value, label=f"{label}: skipped, {skipped.reason}" if skipped else label)


def _downloads(result: NostalgiaResult, photo: str) -> tuple[list[str], str | None]:
    """Every intermediate as a file to download, named like the command line's results
    (``NAME.restored.png``, ``NAME.colorized.png``, ``NAME.animated.mp4``); and the video's path."""
    files = []
    for kind, image in (("restored", result.restored), ("colorized", result.colorized)):
        if image is not None:
            files.append(str(save_png(image, new_output_path("", prefix=cli_name(photo, kind, ".png")))))
    video = named_like_cli(result.video, photo, "animated") if result.video is not None else None
    return files + ([video] if video else []), video


@job
@gpu(duration=300)
def run_nostalgia(
    photo: str | None,
    restore: bool,
    scratches: str,
    colorize: str,
    animate: bool,
    preset: str,
    driving: str | None,
    face_number: float | None,
    all_faces: bool,
    hr: bool,
    enhance_faces: bool,
    colorize_model: str,
    render_factor: float,
    motion_seconds: float,
    precision: str = "auto",
    progress: gr.Progress = gr.Progress(),
) -> tuple[Any, Any, Any, list[tuple[np.ndarray, str]], list[str], str]:
    """``/nostalgia``: (restored, colorized, animated MP4, numbered faces, files to download, notes);
    a skipped step leaves its panel empty and says why in its label."""
    require(photo, "an old photo")
    settings = locals()
    options = options_from({name: settings[name] for name in ONE_CLICK_FIELDS})
    result = NostalgiaPipeline(options)(photo, options, progress=progress_reporter(progress))
    files, video = _downloads(result, photo)
    return (
        _panel(result, "Restore", result.restored, "Restored"),
        _panel(result, "Colorize", result.colorized, "Colorized"),
        _panel(result, "Animate", video, "Animated photo"),
        result.face_thumbnails(),
        files,
        result.notes,
    )


@job
@gpu(duration=300)
def run_story(
    photo: str | None,
    text: str,
    recording: str | None,
    voice: str,
    restore: bool,
    scratches: str,
    colorize: str,
    animate: bool,
    all_faces: bool,
    render_factor: float,
    motion_seconds: float,
    precision: str = "auto",
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str]:
    """``/story``: (narrated MP4, notes)."""
    require(photo, "an old photo")
    if not (text or "").strip() and not recording:
        raise gr.Error("Write the story's text (or record it) first.")
    settings = locals()
    options = options_from({name: settings[name] for name in STORY_FIELDS})
    result = story(photo, text or "", recording or None, options=options,
                   story_options=StoryOptions(voice=voice or "auto"), progress=progress_reporter(progress))  # fmt: skip
    return named_like_cli(result.video, photo, "story"), result.notes


def _example_photos() -> list[Path]:
    from demos.restore import example_photos

    return example_photos()


def _examples(inputs: list[Any], rows: list[list[Any]], label: str) -> None:
    try:
        gr.Examples(examples=rows, inputs=inputs, label=label)
    except (OSError, RuntimeError, NostalgiaError) as exc:  # a convenience, never a reason the tab fails
        gr.Markdown(f"<small>Examples unavailable: {exc}</small>")


def build() -> None:
    gr.Markdown(
        "Drop an old family photo: it is **restored** (scratches repaired when detected), **colorized** when it "
        "is grayscale, toned or faded, and the chosen face is **animated**, on the whole photo. **Story** turns the "
        "photo and a short text (or your own recording) into a narrated, captioned video."
    )
    with gr.Tabs():
        with gr.Tab("One click"):
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(label="Old photo", type="filepath", sources=["upload", "clipboard"], height=300)
                    controls = job_controls("Bring it back to life")
                    with gr.Row(equal_height=True):
                        face_number = gr.Number(label="Face number", value=DEFAULTS.face_index + 1, precision=0,
                                                minimum=1, min_width=110)  # fmt: skip
                        animate = gr.Checkbox(label="animate faces", value=DEFAULTS.animate)
                        all_faces = gr.Checkbox(label="animate all faces", value=DEFAULTS.all_faces)
                    picker = face_picker(photo, face_number, DEFAULTS.max_side)
                    with gr.Accordion("Steps and options", open=False):
                        widgets = _settings("one-click")
                with gr.Column():
                    video = gr.Video(label="Animated photo", format="mp4", height=300)
                    with gr.Row():
                        restored = gr.Image(label="Restored", type="numpy", format="png", height=220)
                        colorized = gr.Image(label="Colorized", type="numpy", format="png", height=220)
                    files = gr.File(label="Download every result", file_count="multiple")
            widgets.update(face_number=face_number, animate=animate, all_faces=all_faces)
            _examples([photo], [[str(p)] for p in _example_photos()[:2]],
                      "Examples (made offline from scikit-image photos, aged procedurally)")  # fmt: skip
            run_job(controls, run_nostalgia, [photo, *(widgets[name] for name in ONE_CLICK_FIELDS)],
                    [restored, colorized, video, picker.gallery, files, controls.status], "nostalgia")  # fmt: skip

        with gr.Tab("Story"):
            with gr.Row():
                with gr.Column():
                    with gr.Row():
                        s_photo = gr.Image(label="Old photo", type="filepath", sources=["upload", "clipboard"],
                                           height=240)  # fmt: skip
                        s_text = gr.Textbox(label="The story (shown as captions and narrated)", lines=7,
                                            placeholder=STORY_EXAMPLE_TEXT)  # fmt: skip
                    s_controls = job_controls("Tell the story")
                    with gr.Row():
                        s_voice = gr.Dropdown(VOICE_CHOICES, value="auto", label="Voice")
                        s_animate = gr.Checkbox(label="animate faces (else a slow pan and zoom)", value=DEFAULTS.animate)
                        s_all_faces = gr.Checkbox(label="all faces", value=True)
                    s_recording = gr.Audio(label="Your own narration (optional)", sources=["upload", "microphone"],
                                           type="filepath")  # fmt: skip
                    with gr.Accordion("Steps and options", open=False):
                        s_widgets = _settings("story")
                with gr.Column():
                    s_video = gr.Video(label="Story", format="mp4", height=400)
            s_widgets.update(animate=s_animate, all_faces=s_all_faces)
            _examples([s_photo, s_text], [[str(p), STORY_EXAMPLE_TEXT] for p in _example_photos()[:1]],
                      "Example (an aged scikit-image portrait and a short text; narrated offline by espeak-ng)")  # fmt: skip
            run_job(s_controls, run_story, [s_photo, s_text, s_recording, s_voice, *(s_widgets[n] for n in STORY_FIELDS)],
                    [s_video, s_controls.status], "story")  # fmt: skip
