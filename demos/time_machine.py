"""Time Machine tab: a person's photos -> portraits of them in past eras.

Layout and events only; the work is :mod:`pipelines.time_machine.pipeline`. Training is a
background job (``/time_machine_train`` returns at once, ``/time_machine_status`` polls it, a timer
too); every person belongs to the browser that added it (:func:`demos.common.owner_of`).
"""

from __future__ import annotations

import zipfile

import gradio as gr
import numpy as np

from demos.common import gpu_event, job, limits_markdown, owner_of, progress_reporter, require
from pipelines.common.device import pick_device
from pipelines.common.media import load_image, new_output_path
from pipelines.time_machine import pipeline
from pipelines.time_machine.config import BASE_MODEL_ID, MAX_PHOTOS, MIN_PHOTOS, PRESETS, generate_config
from pipelines.time_machine.eras import all_eras

TITLE = "Time Machine"
CHECKPOINTS: list[str] = [BASE_MODEL_ID]

PRESET_LABELS = {
    "test": "Test - 256 px, rank 4, 60 steps (what a CPU can finish; a preview of the method)",
    "standard": "Standard - 512 px, rank 16, 800 steps (DreamBooth-LoRA recipe; GPU)",
}
# Measured with bench/bench_time_machine.py on the SD 1.5 architecture (random weights), 2-core
# development machine, as CPU seconds / threads (an idle machine's wall time; it ran at load 23).
# Only measured presets are quoted.
CPU_SECONDS_PER_STEP = {"test": 10.5}
CPU_SECONDS_PER_PORTRAIT = 723.0  # 512 px, 30 sampler steps with guidance


def _person_choices(owner: str) -> list[tuple[str, str]]:
    return [(p.label, p.id) for p in pipeline.list_persons(owner)]


def _status_outputs(person_id: str | None, owner: str) -> tuple[str, np.ndarray | None]:
    if not person_id:
        return "No person selected.", None
    status = pipeline.person_status(person_id, owner)
    lines = [f"**{status['summary']}**"]
    lines += [f"- {m}" for m in status.get("messages") or []]
    lines += [f"- not used: {name} ({reason})" for name, reason in status.get("rejected") or []]
    if status.get("state") == "interrupted":
        lines.append("- The job ended unexpectedly: press Resume to continue from its last checkpoint.")
    if status.get("trained"):
        lines.append("- Ready: pick eras in step 2 and generate portraits.")
    preview = load_image(status["preview"]) if status.get("preview") else None
    return "\n".join(lines), preview


def cpu_note(device: str) -> str:
    """What the tab says about time on this machine."""
    if device == "cuda":
        return "This server has a GPU: both presets are offered; training uses mixed precision."
    estimates = []
    for name, s in CPU_SECONDS_PER_STEP.items():
        if s:
            estimates.append(f"{name}: about {PRESETS[name]['max_steps'] * s / 60:.0f} min")
    figures = f" (measured on a 2-core CPU: {'; '.join(estimates)} per person, about {CPU_SECONDS_PER_PORTRAIT / 60:.0f} min per portrait)" if estimates else ""
    return (
        f"This server runs on **{device}**: the standard preset (800 steps at 512 px) would take many hours per "
        f"person here, so only the small **test** preset is offered{figures}; its portraits show the method, "
        "not a likeness."
    )


# --------------------------------------------------------------------------- events


@job
def run_train(
    photos: list[str] | None,
    name: str,
    consent: bool,
    preset: str,
    minutes: float,
    person_id: str | None,
    resume: bool,
    request: gr.Request,
) -> tuple[str, str, np.ndarray | None, dict]:
    """``/time_machine_train``: add a person from 10-20 photos and start training (returns at
    once with the person id), or with ``resume`` continue the selected person's training."""
    owner = owner_of(request)
    if resume:
        require(person_id, "a person to resume (pick one in the list)")
    else:
        paths = [str(p) for p in photos or []]
        person_id = pipeline.create_person(paths, name=name, consent=bool(consent), owner=owner)
    pipeline.train_person(person_id, preset=preset, minutes=float(minutes), owner=owner)
    summary, preview = _status_outputs(person_id, owner)
    return person_id, summary, preview, gr.update(choices=_person_choices(owner), value=person_id)


@job
def run_status(person_id: str | None, request: gr.Request) -> tuple[str, np.ndarray | None]:
    """``/time_machine_status``: state, step, loss history and the latest preview."""
    return _status_outputs(person_id, owner_of(request))


@job
def run_stop(person_id: str | None, request: gr.Request) -> str:
    """``/time_machine_stop``: stop in any state (queued, preparing, training)."""
    require(person_id, "a person")
    return pipeline.stop_person(person_id, owner_of(request))


@job
def run_delete(person_id: str | None, request: gr.Request) -> tuple[str, dict]:
    """``/time_machine_delete``: every file of the person (LoRA, photos, portraits) is removed."""
    require(person_id, "a person")
    owner = owner_of(request)
    pipeline.delete_person(person_id, owner)
    return "The person and all their files were deleted.", gr.update(choices=_person_choices(owner), value=None)


@job
def run_generate(
    person_id: str | None,
    eras: list[str] | None,
    n: float,
    seed: float,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),
) -> tuple[list[tuple[np.ndarray, str]], str, str]:
    """``/time_machine_generate``: ``n`` portraits per chosen era (gallery + a zip of all)."""
    require(person_id, "a trained person (step 1)")
    portraits = pipeline.generate(person_id, eras or [], n=int(n), seed=int(seed), owner=owner_of(request),
                                  progress=progress_reporter(progress))  # fmt: skip
    archive = new_output_path(".zip", prefix="portraits")
    with zipfile.ZipFile(archive, "w") as zf:
        for p in portraits:
            zf.write(p.path, p.path.name)
    gallery = [(load_image(p.path), p.label) for p in portraits]
    note = f"{len(portraits)} portrait(s), seed {int(seed)}."
    return gallery, str(archive), note


def _refresh(current: str | None, request: gr.Request) -> dict:
    choices = _person_choices(owner_of(request))
    ids = [c[1] for c in choices]
    return gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None))


# --------------------------------------------------------------------------- layout


def build() -> None:
    device = pick_device().type
    presets = pipeline.allowed_presets(device)
    eras = all_eras()
    limits = generate_config()
    gr.Markdown(
        "Portraits of a person in past eras. Give 10-20 photos of **one** person: a small LoRA adapter is "
        "trained on them (DreamBooth-style fine-tuning of Stable Diffusion 1.5, `time_machine/sd15` in the "
        "Models tab, CreativeML OpenRAIL-M), then each era is a prompt. Photos must show one face each; "
        "they are aligned, de-duplicated, and deleted once training ends (only the adapter is kept, and the "
        "person is removed after the retention time or when you delete them). " + cpu_note(device)
    )
    with gr.Row():
        person = gr.Dropdown([], label="Person", info="Your persons (trained or training).", scale=4,
                             allow_custom_value=True)  # API clients name their person by id; the pipeline checks it
        refresh = gr.Button("Refresh list", size="sm", scale=1)
        delete = gr.Button("Delete this person", variant="stop", size="sm", scale=1)
    with gr.Tab("1. Train"), gr.Row():
        with gr.Column():
            photos = gr.File(label=f"{MIN_PHOTOS}-{MAX_PHOTOS} photos of the person (one face each)",
                             file_count="multiple", file_types=["image"], type="filepath", height=180)  # fmt: skip
            name = gr.Textbox(label="Name", placeholder="e.g. Grandma Ada")
            consent = gr.Checkbox(value=False, label=pipeline.CONSENT_TEXT)
            preset = gr.Radio([(PRESET_LABELS.get(p, p), p) for p in presets], value=presets[0], label="Preset")
            minutes = gr.Slider(1, 120, value=30, step=1, label="Time budget (minutes)",
                                info="Training stops at the budget; Resume continues from the checkpoint.")  # fmt: skip
            with gr.Row():
                train_button = gr.Button("Add person and train", variant="primary")
                resume_button = gr.Button("Resume training")
                stop_button = gr.Button("Stop", variant="stop")
                status_button = gr.Button("Refresh status")
            gr.Markdown(limits_markdown())
        with gr.Column():
            job_id = gr.Textbox(label="Person id", interactive=False)
            status = gr.Markdown("Add a person, or pick one of yours.")
            preview = gr.Image(label="Preview (the caption, current adapter)", type="numpy", format="png", height=240)
    with gr.Tab("2. Portraits"), gr.Row():
        with gr.Column():
            era_box = gr.CheckboxGroup([(e.label, e.id) for e in eras.values()], value=["victorian", "viking"],
                                       label=f"Eras (up to {limits.max_eras})")  # fmt: skip
            n = gr.Slider(1, limits.max_images_per_era, value=2, step=1, label="Portraits per era")
            seed = gr.Number(value=0, precision=0, label="Seed")
            generate_button = gr.Button("Generate portraits", variant="primary")
        with gr.Column():
            gallery = gr.Gallery(label="Portraits", columns=4, height=360, elem_id="tm-gallery")
            download = gr.File(label="Download all (zip)")
            note = gr.Markdown()
    timer = gr.Timer(5.0)

    train_outputs = [job_id, status, preview, person]
    add_flag, resume_flag = gr.Checkbox(value=False, visible=False), gr.Checkbox(value=True, visible=False)
    train_button.click(run_train, inputs=[photos, name, consent, preset, minutes, person, add_flag],
                       outputs=train_outputs, api_name="time_machine_train", concurrency_id="tm-train")  # fmt: skip
    resume_button.click(run_train, inputs=[photos, name, consent, preset, minutes, person, resume_flag],
                        outputs=train_outputs, api_name=False, concurrency_id="tm-train")  # fmt: skip
    status_button.click(run_status, inputs=[person], outputs=[status, preview], api_name="time_machine_status",
                        queue=False)  # fmt: skip
    person.change(run_status, inputs=[person], outputs=[status, preview], api_name=False, queue=False)
    timer.tick(run_status, inputs=[person], outputs=[status, preview], api_name=False, queue=False,
               show_progress="hidden")  # fmt: skip
    stop_button.click(run_stop, inputs=[person], outputs=[status], api_name="time_machine_stop", queue=False)
    delete.click(run_delete, inputs=[person], outputs=[status, person], api_name="time_machine_delete",
                 queue=False)  # fmt: skip
    refresh.click(_refresh, inputs=[person], outputs=[person], api_name=False, queue=False)
    generate_button.click(run_generate, inputs=[person, era_box, n, seed], outputs=[gallery, download, note],
                          **gpu_event("time_machine_generate"))  # fmt: skip

