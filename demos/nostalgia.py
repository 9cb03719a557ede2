"""Nostalgia tab (first tab): one click from an old photo to a restored, colorized, animated one, and
Story mode (the photo narrating a short text).

Layout and events only; the work is :class:`pipelines.nostalgia.pipeline.NostalgiaPipeline` and
:func:`pipelines.nostalgia.story.story`. Endpoints: ``/nostalgia`` and ``/story``.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from demos.common import cli_name, gpu_event, job, limits_markdown, named_like_cli, progress_reporter, require
from pipelines.common.device import gpu
from pipelines.common.errors import NostalgiaError
from pipelines.common.media import load_image, new_output_path, save_png
from pipelines.nostalgia.config import DEFAULT_PRESET, DRIVING_PRESETS, NostalgiaOptions, StoryOptions
from pipelines.nostalgia.pipeline import NostalgiaPipeline, NostalgiaResult
from pipelines.nostalgia.story import story

TITLE = "Nostalgia"
CHECKPOINTS: list[str] = NostalgiaPipeline.checkpoints(NostalgiaOptions(scratches="yes", colorize="yes", hr=True))

CHOICE_LABELS = [("auto-detect", "auto"), ("yes", "yes"), ("no", "no")]
PRESET_CHOICES = [(label, name) for name, label in DRIVING_PRESETS.items()]
VOICE_CHOICES = [
    ("automatic (your recording, else a neural voice if installed, else espeak-ng)", "auto"),
    ("espeak-ng (offline)", "espeak"),
    ("neural voice (Piper, when installed)", "neural"),
    ("my recording", "recording"),
]


def detected_faces(photo: str | None) -> tuple[list[tuple[np.ndarray, str]], dict]:
    """Numbered face previews (largest first) and the face-number limits, when a photo is dropped."""
    if not photo:
        return [], gr.update(maximum=None, value=1)
    from pipelines.animation.crop import fit
    from pipelines.common import faces

    try:
        image = fit(load_image(photo), NostalgiaOptions().max_side)
    except NostalgiaError as exc:
        raise gr.Error(str(exc)) from exc
    boxes = faces.detect_faces(image)
    result = NostalgiaResult(image, None, None, image, boxes)
    return result.face_thumbnails(), gr.update(maximum=max(1, len(boxes)), value=1)


def _options(
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
) -> NostalgiaOptions:
    return NostalgiaOptions(
        restore=bool(restore), scratches=scratches or "auto", colorize=colorize or "auto", animate=bool(animate),
        preset=preset or DEFAULT_PRESET, driving=driving or None, face_index=max(0, int(face_number or 1) - 1),
        all_faces=bool(all_faces), hr=bool(hr), enhance_faces=bool(enhance_faces),
        colorize_model=colorize_model or "artistic", render_factor=int(render_factor or 35),
        motion_seconds=float(motion_seconds or 3.0),
    ).validated()  # fmt: skip


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
    progress: gr.Progress = gr.Progress(),
) -> tuple[np.ndarray | None, np.ndarray | None, str | None, list[tuple[np.ndarray, str]], list[str], str]:
    """``/nostalgia``: (restored, colorized, animated MP4, numbered faces, files to download, notes)."""
    require(photo, "an old photo")
    options = _options(restore, scratches, colorize, animate, preset, driving, face_number, all_faces, hr,
                       enhance_faces, colorize_model, render_factor, motion_seconds)  # fmt: skip
    result = NostalgiaPipeline(options)(photo, options, progress=progress_reporter(progress))
    files, video = _downloads(result, photo)
    return result.restored, result.colorized, video, result.face_thumbnails(), files, result.notes


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
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str]:
    """``/story``: (narrated MP4, notes)."""
    require(photo, "an old photo")
    if not (text or "").strip() and not recording:
        raise gr.Error("Write the story's text (or record it) first.")
    options = _options(restore, scratches, colorize, animate, DEFAULT_PRESET, None, 1, all_faces, False, True,
                       "artistic", render_factor, motion_seconds)  # fmt: skip
    result = story(photo, text or "", recording or None, options=options,
                   story_options=StoryOptions(voice=voice or "auto"), progress=progress_reporter(progress))  # fmt: skip
    return named_like_cli(result.video, photo, "story"), result.notes


def _example_photos() -> list[Path]:
    from demos.restore import example_photos

    return example_photos()


def build() -> None:
    gr.Markdown(
        "Drop an old family photo: it is **restored** (scratches repaired when detected), **colorized** when it "
        "is grayscale, toned or faded, and each chosen face is **animated**, on the whole photo. Every step can be "
        "switched off and every intermediate is shown and downloadable. **Story** turns the photo and a short "
        "text (or your own recording) into a narrated, captioned video."
    )
    with gr.Tabs():
        with gr.Tab("One click"):
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(label="Old photo", type="filepath", sources=["upload", "clipboard"], height=320)
                    faces_preview = gr.Gallery(label="Faces found (largest first)", columns=6, height=120, format="png")
                    with gr.Row():
                        restore = gr.Checkbox(label="restore", value=True)
                        scratches = gr.Radio(CHOICE_LABELS, value="auto", label="repair scratches")
                    with gr.Row():
                        colorize = gr.Radio(CHOICE_LABELS, value="auto", label="colorize")
                        animate = gr.Checkbox(label="animate faces", value=True)
                    with gr.Row():
                        face_number = gr.Number(label="Face number", value=1, precision=0, minimum=1)
                        all_faces = gr.Checkbox(label="animate all faces", value=False)
                    preset = gr.Dropdown(PRESET_CHOICES, value=DEFAULT_PRESET, label="Driving motion (preset)")
                    driving = gr.Video(
                        label="...or your own driving video (optional)", sources=["upload", "webcam"], height=200
                    )
                    with gr.Accordion("More options", open=False):
                        with gr.Row():
                            hr = gr.Checkbox(label="high resolution restoration", value=False)
                            enhance_faces = gr.Checkbox(label="enhance faces", value=True)
                        colorize_model = gr.Radio(["artistic", "stable"], value="artistic", label="DeOldify model")
                        render_factor = gr.Slider(7, 45, value=35, step=1, label="Render factor (colour detail)")
                        motion_seconds = gr.Slider(0.2, 10, value=3, step=0.1, label="Preset motion length (s)")
                    button = gr.Button("Bring it back to life", variant="primary")
                    gr.Markdown(limits_markdown())
                with gr.Column():
                    video = gr.Video(label="Animated photo", format="mp4", height=360)
                    with gr.Row():
                        restored = gr.Image(label="Restored", type="numpy", format="png", height=240)
                        colorized = gr.Image(label="Colorized", type="numpy", format="png", height=240)
                    found = gr.Gallery(label="Faces (numbered)", columns=6, height=120, format="png")
                    files = gr.File(label="Download every result", file_count="multiple")
                    note = gr.Markdown()
            photo.change(
                detected_faces, inputs=photo, outputs=[faces_preview, face_number], api_name=False, queue=False
            )
            try:
                gr.Examples(
                    examples=[[str(p)] for p in _example_photos()[:2]],
                    inputs=[photo],
                    label="Examples (made offline from scikit-image photos, aged procedurally)",
                )
            except (OSError, RuntimeError, NostalgiaError) as exc:  # a convenience, never a reason the tab fails
                gr.Markdown(f"<small>Examples unavailable: {exc}</small>")
            button.click(
                run_nostalgia,
                inputs=[photo, restore, scratches, colorize, animate, preset, driving, face_number, all_faces, hr,
                        enhance_faces, colorize_model, render_factor, motion_seconds],
                outputs=[restored, colorized, video, found, files, note],
                **gpu_event("nostalgia"),
            )  # fmt: skip

        with gr.Tab("Story"):
            with gr.Row():
                with gr.Column():
                    s_photo = gr.Image(label="Old photo", type="filepath", sources=["upload", "clipboard"], height=300)
                    s_text = gr.Textbox(label="The story (shown as captions and narrated)", lines=4,
                                        placeholder="This is my grandmother Anna on her wedding day, in 1921.")  # fmt: skip
                    s_recording = gr.Audio(label="Your own narration (optional)", sources=["upload", "microphone"],
                                           type="filepath")  # fmt: skip
                    s_voice = gr.Dropdown(VOICE_CHOICES, value="auto", label="Voice")
                    with gr.Row():
                        s_restore = gr.Checkbox(label="restore", value=True)
                        s_scratches = gr.Radio(CHOICE_LABELS, value="auto", label="repair scratches")
                    with gr.Row():
                        s_colorize = gr.Radio(CHOICE_LABELS, value="auto", label="colorize")
                        s_animate = gr.Checkbox(label="animate faces (else a slow pan and zoom)", value=True)
                        s_all_faces = gr.Checkbox(label="all faces", value=True)
                    with gr.Accordion("More options", open=False):
                        s_render_factor = gr.Slider(7, 45, value=35, step=1, label="Render factor (colour detail)")
                        s_motion_seconds = gr.Slider(0.2, 10, value=3, step=0.1, label="Motion loop length (s)")
                    s_button = gr.Button("Tell the story", variant="primary")
                with gr.Column():
                    s_video = gr.Video(label="Story", format="mp4", height=400)
                    s_note = gr.Markdown()
            s_button.click(
                run_story,
                inputs=[s_photo, s_text, s_recording, s_voice, s_restore, s_scratches, s_colorize, s_animate,
                        s_all_faces, s_render_factor, s_motion_seconds],
                outputs=[s_video, s_note],
                **gpu_event("story"),
            )  # fmt: skip
