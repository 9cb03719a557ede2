"""Restore tab: "Bringing Old Photos Back to Life" on one photo, with every intermediate shown.

Layout and events only; the work is :func:`pipelines.restoration.pipeline.restore`.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from demos.common import (
    job,
    job_controls,
    precision_control,
    progress_reporter,
    require,
    run_job,
)
from pipelines.common.device import gpu
from pipelines.common.media import outputs_root
from pipelines.restoration import examples
from pipelines.restoration.pipeline import RestorationPipeline, RestoreResult, restore

TITLE = "Restore"
CHECKPOINTS: list[str] = RestorationPipeline.checkpoints(with_scratch=True, hr=True, enhance_faces=True)


def example_photos() -> list[Path]:
    """The tab's offline examples (made once per machine by :mod:`pipelines.restoration.examples`)."""
    return examples.example_photos(outputs_root() / "examples-restore")


def gallery_items(result: RestoreResult) -> list[tuple[np.ndarray, str]]:
    """Intermediates with captions: scratch mask, global restoration, each face before/after."""
    items: list[tuple[np.ndarray, str]] = []
    if result.scratch_mask is not None:
        items.append((result.scratch_mask, "Scratch mask (white = repaired)"))
    items.append((result.global_restored, "Global restoration (stage 1)"))
    for face in result.faces:
        items.append((face.before, f"Face {face.index} aligned, before"))
        items.append((face.after, f"Face {face.index} enhanced"))
    return items


def _before_image(result: RestoreResult) -> np.ndarray:
    """The input at the output's size, so the slider compares like with like."""
    h, w = result.image.shape[:2]
    if result.input.shape[:2] == (h, w):
        return result.input
    return np.asarray(Image.fromarray(result.input).resize((w, h), Image.BICUBIC))


@job
@gpu(duration=180)
def run_restore(
    photo: str | None,
    with_scratch: bool,
    hr: bool,
    enhance_faces: bool,
    precision: str = "auto",
    progress: gr.Progress = gr.Progress(),
) -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[np.ndarray, str]], str]:
    """``/restore``: (before, after) for the slider, the intermediates, and a note of what was done."""
    require(photo, "a photo")
    result = restore(
        photo,
        with_scratch=bool(with_scratch),
        hr=bool(hr),
        enhance_faces=bool(enhance_faces),
        progress=progress_reporter(progress),
        precision=precision or None,
    )
    seconds = result.timings.get("total", 0.0)
    note = f"**Done in {seconds:.1f} s.** {result.notes}"
    return (_before_image(result), result.image), gallery_items(result), note


def build() -> None:
    gr.Markdown(
        "Restore an old photo with *Bringing Old Photos Back to Life* (Wan et al., CVPR 2020): global "
        "restoration of noise, blur and fading, optional scratch repair, and face enhancement. "
        "Tick **has scratches** for torn or scratched prints, **high resolution** for large scans "
        "(512-pixel faces and patch attention)."
    )
    with gr.Row():
        with gr.Column():
            photo = gr.Image(label="Old photo", type="filepath", sources=["upload", "clipboard"], height=330)
            controls = job_controls("Restore")
            precision = precision_control()
            with gr.Row():
                with_scratch = gr.Checkbox(label="has scratches", value=False)
                hr = gr.Checkbox(label="high resolution", value=False)
                enhance_faces = gr.Checkbox(label="enhance faces", value=True)
        with gr.Column():
            slider = gr.ImageSlider(label="Before / after", type="numpy", format="png", height=420)
    gallery = gr.Gallery(label="Intermediate results", format="png", columns=4, height="auto")
    gr.Examples(
        examples=[
            [str(p), scratched, False, True] for p, scratched in zip(example_photos(), (False, True, True), strict=True)
        ],
        inputs=[photo, with_scratch, hr, enhance_faces, precision],
        label="Examples (generated offline from scikit-image photos, aged and scratched procedurally)",
    )
    run_job(controls, run_restore, [photo, with_scratch, hr, enhance_faces, precision], [slider, gallery, controls.status], "restore")
