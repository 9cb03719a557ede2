"""Colorize tab: DeOldify on a photo (with a render-factor sweep) or on a video.

Layout and events only; the work is :class:`pipelines.colorization.pipeline.Colorizer`.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import numpy as np

from demos.common import (
    cli_name,
    default_first_seconds,
    job,
    job_controls,
    length_control,
    named_like_cli,
    precision_control,
    progress_reporter,
    require,
    run_job,
)
from pipelines.colorization import examples
from pipelines.colorization.config import (
    DEFAULT_RENDER_FACTOR_IMAGE,
    DEFAULT_RENDER_FACTOR_VIDEO,
    RENDER_FACTOR_MAX,
    RENDER_FACTOR_MIN,
    VARIANTS,
)
from pipelines.colorization.pipeline import Colorizer
from pipelines.common.device import gpu
from pipelines.common.errors import InputError
from pipelines.common.media import (
    load_image,
    new_output_path,
    outputs_root,
    probe_video,
    save_png,
)

TITLE = "Colorize"
CHECKPOINTS: list[str] = [c.checkpoint_id for c in VARIANTS.values()]

MODEL_CHOICES = [(f"{c.name.capitalize()}: {c.summary}", c.name) for c in VARIANTS.values()]
SWEEP_CHOICES = list(range(10, RENDER_FACTOR_MAX + 1, 5))
DEFAULT_SWEEP_CHOICE = [15, 25, 35, 45]

RENDER_FACTOR_INFO = (
    "The network sees the photo as a square of render factor x 16 pixels. Higher gives richer colour on "
    "good scans but is slower; lower often suits small or damaged photos. Colour only: the result keeps "
    "the photo's full resolution."
)


# --------------------------------------------------------------------------- offline examples


def example_photos() -> list[Path]:
    """The tab's example photos (made once per machine by :mod:`pipelines.colorization.examples`)."""
    return examples.example_photos(outputs_root() / "examples-colorize")


def example_video() -> Path:
    """The tab's example film (made once per machine by :mod:`pipelines.colorization.examples`)."""
    return examples.example_video(outputs_root() / "examples-colorize")


# --------------------------------------------------------------------------- events


def _render_factor(value: float | int | None, default: int) -> int:
    return default if value is None else round(float(value))


@job
@gpu(duration=120)
def run_colorize(
    photo: str | None,
    model: str,
    render_factor: float,
    post_process: bool,
    precision: str = "auto",
    progress: gr.Progress = gr.Progress(),
) -> tuple[tuple[np.ndarray, np.ndarray], str, str]:
    """``/colorize``: (before, after) for the slider, the full-resolution PNG, and a note."""
    require(photo, "a photo")
    report = progress_reporter(progress)
    report(0.05, "loading the model")
    colorizer = Colorizer.from_pretrained(model, precision=precision or None)
    before = load_image(photo)
    report(0.3, "colorizing")
    start = time.perf_counter()
    rf = _render_factor(render_factor, DEFAULT_RENDER_FACTOR_IMAGE)
    after = colorizer.colorize_arrays([before], rf, bool(post_process))[0]
    seconds = time.perf_counter() - start
    path = save_png(after, new_output_path("", prefix=cli_name(photo, "colorized", ".png")))
    h, w = after.shape[:2]
    note = (
        f"**{model}** at render factor {rf} ({rf * 16}x{rf * 16} px seen by the network), "
        f"{w}x{h} output in {seconds:.1f} s on {colorizer.device.type}."
    )
    return (before, after), str(path), note


@job
@gpu(duration=300)
def run_sweep(
    photo: str | None,
    model: str,
    factors: list[int] | None,
    post_process: bool,
    precision: str = "auto",
    progress: gr.Progress = gr.Progress(),
) -> list[tuple[np.ndarray, str]]:
    """``/colorize_sweep``: the photo at each chosen render factor, captioned."""
    require(photo, "a photo")
    if not factors:
        raise InputError("Tick at least one render factor to sweep.")
    results = Colorizer.from_pretrained(model, precision=precision or None).sweep(
        photo, sorted(int(f) for f in factors), bool(post_process), progress_reporter(progress)
    )
    return [(r.image, f"render factor {r.render_factor}") for r in results]


@job
@gpu(duration=600)
def run_video(
    video: str | None,
    model: str,
    render_factor: float,
    post_process: bool,
    smoothing: float,
    first_seconds: float | None = None,
    precision: str = "auto",
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str]:
    """``/colorize_video``: the colorized MP4 (source fps and audio) and a note. ``first_seconds``:
    only the start of the video (0 or None: the whole clip)."""
    require(video, "a video")
    probe_video(video)  # every limit checked before the model loads or a frame is decoded
    report = progress_reporter(progress)
    colorizer = Colorizer.from_pretrained(model, precision=precision or None)
    rf = _render_factor(render_factor, DEFAULT_RENDER_FACTOR_VIDEO)
    start = time.perf_counter()
    first = float(first_seconds or 0) or None
    out = colorizer.colorize_video(
        video, None, rf, bool(post_process), smoothing=float(smoothing or 0.0), first_seconds=first, progress=report
    )
    note = f"**{model}** at render factor {rf}, temporal smoothing {float(smoothing or 0):.2f}; done in {time.perf_counter() - start:.1f} s."
    if first:
        note += f" Only the first {first:g} s (set the length to 0 for the whole clip)."
    return named_like_cli(out, video, "colorized"), note


# --------------------------------------------------------------------------- layout


def _model_radio(default: str) -> gr.Radio:
    return gr.Radio(MODEL_CHOICES, value=default, label="Model", info="One network each; the same photo can look quite different.")


def _post_process_box(what: str) -> gr.Checkbox:
    return gr.Checkbox(
        value=True,
        label=f"Keep the {what}'s own detail (post-process)",
        info="Use only the network's colour and the original's full-resolution brightness, as DeOldify does.",
    )


def build() -> None:
    gr.Markdown(
        "Colorize black-and-white photos and film with **DeOldify** (Jason Antic; NoGAN-trained U-Net with "
        "self-attention). Try **Sweep** to compare render factors side by side."
    )
    with gr.Tabs():
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(
                        label="Black-and-white photo", type="filepath", sources=["upload", "webcam", "clipboard"],
                        height=300,
                    )  # fmt: skip
                    controls = job_controls("Colorize")
                    precision = precision_control()
                    model = _model_radio("artistic")
                    with gr.Accordion("Options and render-factor sweep", open=False):
                        render_factor = gr.Slider(
                            RENDER_FACTOR_MIN, RENDER_FACTOR_MAX, value=DEFAULT_RENDER_FACTOR_IMAGE, step=1,
                            label="Render factor", info=RENDER_FACTOR_INFO,
                        )  # fmt: skip
                        post_process = _post_process_box("photo")
                        sweep_factors = gr.CheckboxGroup(
                            SWEEP_CHOICES, value=DEFAULT_SWEEP_CHOICE, label="Render factors for the sweep"
                        )
                        sweep_button = gr.Button("Sweep")
                with gr.Column():
                    slider = gr.ImageSlider(label="Before / after", type="numpy", format="png", height=420)
                    download = gr.File(label="Full-resolution PNG")
            gallery = gr.Gallery(label="Render-factor sweep", format="png", columns=4, height="auto")
            gr.Examples(
                examples=[[str(p), "artistic", DEFAULT_RENDER_FACTOR_IMAGE, True] for p in example_photos()],
                inputs=[photo, model, render_factor, post_process, precision],
                label="Examples (gray photos shipped with scikit-image)",
            )
            run_job(controls, run_colorize, [photo, model, render_factor, post_process, precision],
                    [slider, download, controls.status], "colorize")  # fmt: skip
            run_job(controls, run_sweep, [photo, model, sweep_factors, post_process, precision], [gallery], "colorize_sweep",
                    button=sweep_button)  # fmt: skip
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label="Black-and-white video", sources=["upload"], height=300)
                    video_controls = job_controls("Colorize video")
                    video_precision = precision_control()
                    with gr.Row():
                        first_seconds = length_control("video")
                    video_model = _model_radio("video")
                    with gr.Accordion("Options", open=False):
                        video_rf = gr.Slider(
                            RENDER_FACTOR_MIN, RENDER_FACTOR_MAX, value=DEFAULT_RENDER_FACTOR_VIDEO, step=1,
                            label="Render factor", info="DeOldify's video default is 21; every frame is colorized.",
                        )  # fmt: skip
                        video_post = _post_process_box("film")
                        smoothing = gr.Slider(
                            0.0, 0.9, value=0.5, step=0.05, label="Temporal colour smoothing",
                            info="Blends each frame's colour with the previous frames' to reduce flicker (0 = off, "
                            "as the original). Resets at scene cuts; brightness is never changed.",
                        )  # fmt: skip
                with gr.Column():
                    video_out = gr.Video(label="Colorized (source fps and audio kept)", height=360)
            gr.Examples(
                examples=[[str(example_video()), "video", DEFAULT_RENDER_FACTOR_VIDEO, True, 0.5, default_first_seconds()]],
                inputs=[video, video_model, video_rf, video_post, smoothing, first_seconds, video_precision],
                label="Example (generated offline: a pan across a scikit-image photo, with a tone as audio)",
            )
            run_job(video_controls, run_video, [video, video_model, video_rf, video_post, smoothing, first_seconds, video_precision],
                    [video_out, video_controls.status], "colorize_video")  # fmt: skip
