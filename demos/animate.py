"""Animate tab: a photo brought to life by a driving video (Thin-Plate Spline Motion Model).

Layout and events only; the work is :func:`pipelines.animation.pipeline.animate`.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from demos.common import gpu_event, job, limits_markdown, named_like_cli, progress_reporter, require
from pipelines.animation.config import CONFIGS
from pipelines.animation.crop import crop_square, extract
from pipelines.animation.examples import example_inputs
from pipelines.animation.pipeline import MODES, animate
from pipelines.common.device import gpu
from pipelines.common.errors import NostalgiaError
from pipelines.common.media import load_image, outputs_root

TITLE = "Animate"
CHECKPOINTS: list[str] = [cfg.checkpoint_id for cfg in CONFIGS.values()]

MODEL_CHOICES = [(f"{cfg.label}: {cfg.purpose}", name) for name, cfg in CONFIGS.items()]
MODE_HELP = (
    "**relative**: the photo follows the *changes* of the driving pose from its first (or best) frame, "
    "keeping the photo's own face shape (best for portraits). **standard**: the driving keypoints are used "
    "as they are (the driver's shape leaks in). **avd**: a network re-poses the photo's keypoints "
    "(disentangled identity / pose; good when the driver looks very different)."
)


def detected_faces(photo: str | None) -> tuple[list[tuple[np.ndarray, str]], dict]:
    """Preview crops of the faces found (largest first) and the face-number limits."""
    if not photo:
        return [], gr.update(maximum=None, value=1)
    from pipelines.common import faces

    try:
        image = load_image(photo)
    except NostalgiaError as exc:
        raise gr.Error(str(exc)) from exc
    boxes = faces.detect_faces(image)
    previews = [(extract(image, crop_square(box)), f"Face {i + 1}") for i, box in enumerate(boxes)]
    return previews, gr.update(maximum=max(1, len(boxes)), value=1)


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
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str | None, str]:
    """``/animate``: (animation MP4, side-by-side MP4 or None, a note of what was done)."""
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
        progress=progress_reporter(progress),
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
        "Bring a photo to life with the *Thin-Plate Spline Motion Model* (Zhao & Zhang, CVPR 2022). For portraits "
        "the face is found, cropped like the training data, animated by the driving video and blended back into "
        "the whole photo; the result keeps the driving video's frame rate and sound."
    )
    with gr.Row():
        with gr.Column():
            photo = gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"], height=320)
            faces_preview = gr.Gallery(label="Faces found (largest first)", columns=6, height=120, format="png")
            driving = gr.Video(label="Driving video (upload or record)", sources=["upload", "webcam"], height=320)
            model = gr.Dropdown(MODEL_CHOICES, value="vox", label="Model (what it was trained on)")
            mode = gr.Radio(list(MODES), value="relative", label="Motion transfer mode", info="see below")
            with gr.Row():
                best = gr.Checkbox(label="start from the best-matching driving frame (faces)", value=False)
                face_number = gr.Number(label="Face number", value=1, precision=0, minimum=1)
                sbs = gr.Checkbox(label="side-by-side video", value=True)
            button = gr.Button("Animate", variant="primary")
            gr.Markdown(MODE_HELP)
            gr.Markdown(limits_markdown())
        with gr.Column():
            video = gr.Video(label="Animated photo", format="mp4", height=360)
            side = gr.Video(label="Driving | result", format="mp4", height=240)
            note = gr.Markdown()
    photo.change(detected_faces, inputs=photo, outputs=[faces_preview, face_number], api_name=False, queue=False)
    try:
        ex_photo, ex_clip = example_inputs(outputs_root() / "examples-animate")
        gr.Examples(
            examples=[[str(ex_photo), str(ex_clip), "vox", "relative", False, 1, True]],
            inputs=[photo, driving, model, mode, best, face_number, sbs],
            label="Example (made offline: scikit-image's astronaut photo, driven by a synthetic moving-face clip with a tone)",
        )
    except (OSError, RuntimeError, NostalgiaError) as exc:  # examples are a convenience, never a reason the tab fails
        gr.Markdown(f"<small>Examples unavailable: {exc}</small>")
    button.click(
        run_animate,
        inputs=[photo, driving, model, mode, best, face_number, sbs],
        outputs=[video, side, note],
        **gpu_event("animate"),
    )


def example_paths() -> tuple[Path, Path]:
    """The offline example inputs (for tests and the CLI)."""
    return example_inputs(outputs_root() / "examples-animate")
