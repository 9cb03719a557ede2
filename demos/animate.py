"""Animate tab: a photo brought to life by a driving video (Thin-Plate Spline Motion Model).

Layout and events only; the work is :func:`pipelines.animation.pipeline.animate`.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from demos.common import (
    default_first_seconds,
    face_picker,
    job,
    job_controls,
    length_control,
    named_like_cli,
    precision_control,
    progress_reporter,
    require,
    run_job,
)
from pipelines.animation.config import CONFIGS
from pipelines.animation.examples import example_inputs
from pipelines.animation.pipeline import MAX_OUTPUT_SIDE, MODES, animate
from pipelines.common.device import gpu
from pipelines.common.errors import NostalgiaError
from pipelines.common.faces import FACE_ALIGNMENT_CHECKPOINTS
from pipelines.common.media import outputs_root

TITLE = "Animate"
CHECKPOINTS: list[str] = [cfg.checkpoint_id for cfg in CONFIGS.values()] + list(FACE_ALIGNMENT_CHECKPOINTS)  # best frame

MODEL_CHOICES = [(f"{cfg.label}: {cfg.purpose}", name) for name, cfg in CONFIGS.items()]
MODE_HELP = (
    "**relative**: the photo follows the *changes* of the driving pose from its first (or best) frame, "
    "keeping the photo's own face shape (best for portraits). **standard**: the driving keypoints are used "
    "as they are (the driver's shape leaks in). **avd**: a network re-poses the photo's keypoints "
    "(disentangled identity / pose; good when the driver looks very different)."
)


@job
@gpu(duration=300)
def run_animate(
    photo: str | None,
    driving: str | None,
    model: str,
    mode: str,
    best_frame: bool,
    face_number: float | None,
    side_by_side: bool,
    first_seconds: float | None = None,
    precision: str = "auto",
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str | None, str]:
    """``/animate``: (animation MP4, side-by-side MP4 or None, a note of what was done).
    ``first_seconds``: use only the start of the driving video (0 or None: the whole clip)."""
    require(photo, "a photo")
    require(driving, "a driving video")
    result = animate(
        photo,
        driving,
        model=model or "vox",
        mode=mode or "relative",
        find_best_frame=bool(best_frame),
        face_index=max(0, int(face_number or 1) - 1),
        side_by_side=bool(side_by_side),
        first_seconds=float(first_seconds or 0) or None,
        progress=progress_reporter(progress),
        precision=precision or None,
    )
    parts = [f"**Done in {result.seconds:.1f} s**: {result.n_frames} frames at {result.fps:g} fps, model {result.model}, mode {result.mode}."]
    if result.face_index is not None:
        parts.append(f"Animated face {result.face_index + 1} of {result.faces_found}.")
    if result.best_frame is not None:
        parts.append(f"Best-matching driving frame: {result.best_frame}.")
    parts += result.notes
    video = named_like_cli(result.video, photo, "animated")
    side = named_like_cli(result.side_by_side, photo, "side_by_side") if result.side_by_side else None
    return video, side, " ".join(parts)


def build() -> None:
    gr.Markdown(
        "Bring a photo to life with the *Thin-Plate Spline Motion Model* (Zhao & Zhang, CVPR 2022): the chosen face "
        "is cropped like the training data, moved by the driving video and blended back into the whole photo, "
        "at the driving video's frame rate and with its sound."
    )
    with gr.Row():
        with gr.Column():
            with gr.Row():
                photo = gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"], height=250)
                driving = gr.Video(label="Driving video (upload or record)", sources=["upload", "webcam"], height=250)
            controls = job_controls("Animate")
            precision = precision_control()
            with gr.Row():
                face_number = gr.Number(label="Face number", value=1, precision=0, minimum=1, scale=1, min_width=110)
                first_seconds = length_control("driving video")
            face_picker(photo, face_number, MAX_OUTPUT_SIDE)
            with gr.Accordion("Options", open=False):
                model = gr.Dropdown(MODEL_CHOICES, value="vox", label="Model (what it was trained on)")
                mode = gr.Radio(list(MODES), value="relative", label="Motion transfer mode")
                gr.Markdown(MODE_HELP)
                with gr.Row():
                    best = gr.Checkbox(label="start from the best-matching driving frame (faces)", value=False)
                    sbs = gr.Checkbox(label="side-by-side video", value=True)
        with gr.Column():
            video = gr.Video(label="Animated photo", format="mp4", height=360)
            side = gr.Video(label="Driving | result", format="mp4", height=240)
    try:
        ex_photo, ex_clip = example_inputs(outputs_root() / "examples-animate")
        gr.Examples(
            examples=[[str(ex_photo), str(ex_clip), "vox", "relative", False, 1, True, default_first_seconds()]],
            inputs=[photo, driving, model, mode, best, face_number, sbs, first_seconds, precision],
            label="Example (made offline: scikit-image's astronaut photo, driven by a synthetic moving-face clip with a tone)",
        )
    except (OSError, RuntimeError, NostalgiaError) as exc:  # examples are a convenience, never a reason the tab fails
        gr.Markdown(f"<small>Examples unavailable: {exc}</small>")
    run_job(controls, run_animate, [photo, driving, model, mode, best, face_number, sbs, first_seconds, precision],
            [video, side, controls.status], "animate")  # fmt: skip


def example_paths() -> tuple[Path, Path]:
    """The offline example inputs (for tests and the CLI)."""
    return example_inputs(outputs_root() / "examples-animate")
