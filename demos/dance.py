"""Dance tab (Everybody Dance Now): 1. train a target person, 2. make them dance a source's motion.

Layout and events only; the work is :mod:`pipelines.dance.pipeline`. Training runs as a separate
background process whose state is on disk, so ``/dance_train`` returns at once with the target id
and ``/dance_status`` reports progress (polled every few seconds while the selected target's job
is queued or running); closing the browser does not stop it, and a trained target stays in the
list for later transfers. The list holds the caller's own targets (in public mode a visitor never
sees another's; see :mod:`pipelines.common.jobs`), filled when the page loads; every button
answers, Stop included when there is nothing to stop.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from demos.common import (
    gpu_event,
    job,
    job_controls,
    length_control,
    owner_of,
    precision_control,
    progress_reporter,
    require,
    run_job,
)
from pipelines.common.device import gpu, pick_device
from pipelines.common.errors import InputError
from pipelines.common.faces import FACE_ALIGNMENT_CHECKPOINTS
from pipelines.common.media import load_image
from pipelines.dance import pipeline
from pipelines.dance.hands import CHECKPOINT_ID as HAND_CHECKPOINT
from pipelines.dance.jobs import ACTIVE_STATES

TITLE = "Dance"
# body poses, hands when asked, face points (face-alignment when present)
CHECKPOINTS: list[str] = ["edn/openpose_body", HAND_CHECKPOINT, *FACE_ALIGNMENT_CHECKPOINTS]

PRESET_CHOICES = [
    ("Tiny - 128x64, minutes on a CPU (a preview of the method)", "tiny"),
    ("Fast - 256x128, ngf 32 (GPU: minutes; CPU: an hour or more)", "fast"),
    ("Paper - 512x256, ngf 64, 9 blocks: the paper's global stage (GPU)", "paper"),
    ("Paper, local stage - 1024x512 LocalEnhancer: continue a target trained with 'Paper' (GPU)", "paper-local"),
]


def _target_choices(owner: str) -> list[tuple[str, str]]:
    return [(t.label, t.id) for t in pipeline.list_targets(owner)]


def _status_outputs(target_id: str | None, owner: str) -> tuple[str, np.ndarray | None]:
    if not target_id:
        return "No target selected: pick one of yours from the list, or start training a new one.", None
    status = pipeline.training_status(target_id, owner)
    lines = [f"**{status['name']}** · `{target_id}`: {status['summary']}"]
    lines += [f"- {m}" for m in status.get("messages") or []]
    if status.get("state") == "interrupted":
        lines.append("- The training process stopped unexpectedly; start training again to resume from the last checkpoint.")
    # the preview is read here (not served by path): the data dir may lie outside Gradio's allowed paths
    preview = load_image(status["preview"]) if status.get("preview") else None
    return "\n".join(lines), preview


HAND_COST = (
    "OpenPose's hand network searches 4 scales per hand: about 11.5 s per hand per frame on a CPU "
    "(a 10 s clip at 25 fps: about 1.5 hours), a fraction of a second on a GPU."
)
HAND_COST_SHORT = "Slow on a CPU: about 11.5 s per hand per frame (fast on a GPU)."


def _hands_wanted(checked: bool) -> bool | None:
    """The hand checkbox as the pipeline's ``hands``: unticked, never; ticked, on a GPU when the
    hand network is installed (else a note says why not), on a CPU always (the cost is stated)."""
    if not checked:
        return False
    return None if pick_device().type == "cuda" else True


def _labels_outputs(target_id: str | None, owner: str) -> tuple[np.ndarray | None, str]:
    """The selected target's label preview (body, face, hands as its labels draw them) and its line."""
    if not target_id:
        return None, ""
    try:
        image, line = pipeline.label_preview(target_id, owner)
    except InputError:
        return None, ""
    return image, f"<small>**Above: the target's labels**, what its generator follows. {line}</small>"


def _is_active(target_id: str | None, owner: str) -> bool:
    if not target_id:
        return False
    try:
        return pipeline.training_status(target_id, owner).get("state") in ACTIVE_STATES
    except InputError:
        return False


# --------------------------------------------------------------------------- events


@job
def run_train(
    video: str | None,
    use_sample: bool,
    name: str,
    preset: str,
    minutes: float,
    continue_training: bool,
    target_id: str | None,
    restart: bool,
    request: gr.Request,
    find_hands: bool = False,
) -> tuple[str, str, np.ndarray | None, dict]:
    """``/dance_train``: start training in the background and return the target id at once.
    ``continue_training`` trains the selected ``target_id`` again (resuming from its checkpoint
    unless ``restart``); otherwise a new target of the caller's, named as typed, from the video
    or from a copy of the sample dancer. It waits in line when every training slot is taken.
    ``find_hands``: put the video's hands in the labels (see ``HAND_COST``; the sample dancer's
    labels always have them)."""
    owner = owner_of(request)
    typed = (name or "").strip() or None
    if continue_training:
        require(target_id, "a target to continue")
        target_id = pipeline.train_target(target_id=target_id, preset=preset, minutes=float(minutes),
                                          resume=not restart, owner=owner)  # fmt: skip
    elif use_sample:
        target_id = pipeline.train_target(sample=True, name=typed, preset=preset, minutes=float(minutes), owner=owner)
    else:
        require(video, "a video of the target person (or tick 'use the sample dancer')")
        target_id = pipeline.train_target(video, name=typed, preset=preset, minutes=float(minutes), owner=owner,
                                          hands=_hands_wanted(bool(find_hands)))  # fmt: skip
    summary, preview = _status_outputs(target_id, owner)
    return target_id, summary, preview, gr.update(choices=_target_choices(owner), value=target_id)


@job
def run_status(target_id: str | None, request: gr.Request) -> tuple[str, np.ndarray | None]:
    """``/dance_status``: the training job's state, held-out L1 history and latest preview."""
    return _status_outputs(target_id, owner_of(request))


@job
def run_stop(target_id: str | None, request: gr.Request) -> str:
    """``/dance_stop``: stop the selected target's training in whatever state it is, and say what happened."""
    owner = owner_of(request)
    require(target_id, "a target")
    outcome = pipeline.stop_training(target_id, owner)
    status = pipeline.training_status(target_id, owner)
    if outcome == "dequeued":
        return f"**{status['name']}** · `{target_id}`: removed from the queue before it started."
    if outcome == "stopping":
        return f"Stop requested for **{target_id}**: it saves a checkpoint and stops at its next step."
    return f"**{status['name']}** · `{target_id}` is not training ({status['summary']}); nothing to stop."


@job
@gpu(duration=600)
def run_transfer(
    target_id: str | None,
    video: str | None,
    use_sample_motion: bool,
    side_by_side: bool,
    normalize: bool,
    request: gr.Request,
    first_seconds: float | None = None,
    precision: str = "auto",
    find_hands: bool = False,
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str, str]:
    """``/dance_transfer``: the target performing the source's motion (MP4 with the source's audio).
    ``first_seconds``: use only the start of the source (0 or None: the whole clip); ``find_hands``:
    search the source's hands when the target's labels have them (see ``HAND_COST``)."""
    require(target_id, "a trained target (step 1)")
    if not use_sample_motion and not video:
        raise InputError("Upload the dancing source video, or tick 'use the sample motion'.")
    result = pipeline.transfer(
        target_id, None if use_sample_motion else video, sample_motion=bool(use_sample_motion),
        side_by_side=bool(side_by_side), normalize=bool(normalize), progress=progress_reporter(progress), precision=precision or None,
        owner=owner_of(request), first_seconds=float(first_seconds or 0) or None, hands=_hands_wanted(bool(find_hands)),
    )  # fmt: skip
    note = f"{result.n_frames} frames at {result.fps:g} fps" + "".join(f"\n- {n}" for n in result.notes)
    return str(result.path), str(result.path), note


@job
def _refresh_targets(current: str | None, request: gr.Request) -> tuple[dict, dict]:
    """The caller's targets (fresh labels), the current one kept; polling on while one trains."""
    owner = owner_of(request)
    choices = _target_choices(owner)
    ids = [c[1] for c in choices]
    value = current if current in ids else (ids[0] if ids else None)
    return gr.update(choices=choices, value=value), gr.Timer(active=_is_active(value, owner))


@job
def _poll(target_id: str | None, request: gr.Request) -> tuple[str, np.ndarray | None, dict, dict, np.ndarray | None, str]:
    """While a job runs: its status, preview, the list's labels and the target's label preview
    (a video target's poses are found by the job), every few seconds; the timer turns itself off
    when the job ends."""
    owner = owner_of(request)
    summary, preview = _status_outputs(target_id, owner)
    choices = _target_choices(owner)
    active = _is_active(target_id, owner)
    return (summary, preview, gr.update(choices=choices, value=target_id), gr.Timer(active=active),
            *_labels_outputs(target_id, owner))  # fmt: skip


@job
def _labels(target_id: str | None, request: gr.Request) -> tuple[np.ndarray | None, str]:
    return _labels_outputs(target_id, owner_of(request))


def _watch(target_id: str | None, request: gr.Request) -> dict:
    return gr.Timer(active=_is_active(target_id, owner_of(request)))


# --------------------------------------------------------------------------- layout


def build() -> None:
    device = pick_device().type
    gr.Markdown(
        "Make a person dance with **Everybody Dance Now** (Chan et al., ICCV 2019): a pix2pixHD generator "
        "learns *stick figure -> this person* from one video of them, then renders them following another "
        "dancer's poses, frame by frame with temporal feedback and a face GAN. No pretrained dancer exists: "
        f"each target is trained here (this server runs on **{device}**). Poses come from OpenPose "
        "(`edn/openpose_body`, hands from `edn/openpose_hand`, in the Models tab) and the labels draw the body, "
        "the face and, when asked (slow on a CPU), the hands; the sample dancer and sample motion need no weights."
    )
    with gr.Row():
        # filled when the page loads, with the visitor's own targets: the page config carries none
        # (any id is accepted here: the pipeline answers an unknown or foreign one, and an API
        # client can name its own targets without loading the page)
        target = gr.Dropdown([], label="Target person", info="Your trained (or training) targets, reusable.", scale=4,
                             allow_custom_value=True)  # fmt: skip
        refresh = gr.Button("Refresh list", size="sm", scale=1)
    with gr.Tab("1. Target"):
        with gr.Row():
            with gr.Column():
                target_video = gr.Video(label="Video of the target person (whole body, plain background)", sources=["upload"], height=150)
                with gr.Row(equal_height=True):
                    use_sample = gr.Checkbox(value=False, label="Use the sample dancer instead (procedural, offline)")
                    hands = gr.Checkbox(value=device == "cuda", label="Find the hands too", info=HAND_COST_SHORT)
                    name = gr.Textbox(label="Name", placeholder="e.g. grandpa")
                with gr.Row():
                    train_button = gr.Button("Start training", variant="primary", scale=3)
                    status_button = gr.Button("Refresh status", scale=1)
                    stop_button = gr.Button("Stop", variant="stop", scale=1)
                with gr.Accordion("Training options", open=False):
                    preset = gr.Radio(PRESET_CHOICES, value="tiny" if device == "cpu" else "fast", label="Model size")
                    minutes = gr.Slider(1, 240, value=10 if device == "cpu" else 30, step=1, label="Time budget (minutes)",
                                        info="Training stops at the budget; start again to continue from the checkpoint.")  # fmt: skip
                    continue_box = gr.Checkbox(value=False, label="Continue training the selected target")
                    restart = gr.Checkbox(value=False, label="Restart from scratch (discard its checkpoint)")
                    gr.Markdown(f"<small>Hands: {HAND_COST} Without them the labels draw the body and the face.</small>")
            with gr.Column():
                job_id = gr.Textbox(label="Job (target id)", interactive=False)
                status = gr.Markdown("Pick a target or start training.")
                preview = gr.Image(label="Held-out preview: label | generated | real", type="numpy", format="png", height=260)
                # no label tag on the image: it would cover the heads; the line under it says what it is
                labels = gr.Image(label="Labels of the target", show_label=False, type="numpy", format="png",
                                  height=200, elem_classes=["dance-labels"])  # fmt: skip
                labels_note = gr.Markdown()
        gr.Examples(
            examples=[[True, "sample", "tiny", 1]],
            inputs=[use_sample, name, preset, minutes],
            label="Example: the procedural sample dancer (offline), the tiny model, one minute of training",
        )
        timer = gr.Timer(5.0, active=False)  # on while the selected target's job is queued or running
    with gr.Tab("2. Motion"):
        with gr.Row():
            with gr.Column():
                source_video = gr.Video(label="Dancing source video", sources=["upload"], height=150)
                use_motion = gr.Checkbox(value=False, label="Use the sample motion instead")
                transfer_controls = job_controls("Make the target dance")
                precision = precision_control()
                with gr.Row():
                    first_seconds = length_control("source video")
                with gr.Accordion("Options", open=False):
                    side = gr.Checkbox(value=True, label="Side by side: source | stick figure | result")
                    normalize = gr.Checkbox(value=True, label="Normalise the source's poses to the target (position, size)")
                    source_hands = gr.Checkbox(value=device == "cuda", label="Find the source's hands (for targets whose labels have hands)",
                                               info=HAND_COST_SHORT)  # fmt: skip
            with gr.Column():
                result_video = gr.Video(label="Result (source fps and audio)", height=300)
                download = gr.File(label="Download MP4")
        gr.Examples(examples=[[True]], inputs=[use_motion], label="Example: the procedural sample motion (offline)")

    started = train_button.click(
        run_train,
        inputs=[target_video, use_sample, name, preset, minutes, continue_box, target, restart, hands],
        outputs=[job_id, status, preview, target],
        **gpu_event("dance_train"),
    )
    started.success(_watch, inputs=[target], outputs=[timer], api_name=False, queue=False)
    started.success(_labels, inputs=[target], outputs=[labels, labels_note], api_name=False, queue=False)
    status_button.click(run_status, inputs=[target], outputs=[status, preview], **gpu_event("dance_status"))
    target.change(run_status, inputs=[target], outputs=[status, preview], api_name=False, queue=False)
    target.change(_watch, inputs=[target], outputs=[timer], api_name=False, queue=False)
    target.change(_labels, inputs=[target], outputs=[labels, labels_note], api_name=False, queue=False)
    timer.tick(_poll, inputs=[target], outputs=[status, preview, target, timer, labels, labels_note], api_name=False, queue=False,
               show_progress="hidden")  # fmt: skip
    stop_button.click(run_stop, inputs=[target], outputs=[status], api_name="dance_stop", queue=False)
    refresh.click(_refresh_targets, inputs=[target], outputs=[target, timer], api_name=False, queue=False)
    from gradio.context import Context

    if Context.root_block is not None:  # the visitor's own targets, as soon as the page opens
        Context.root_block.load(_refresh_targets, inputs=[target], outputs=[target, timer], api_name=False, queue=False)
    run_job(transfer_controls, run_transfer, [target, source_video, use_motion, side, normalize, first_seconds, precision, source_hands],
            [result_video, download, transfer_controls.status], "dance_transfer")  # fmt: skip
