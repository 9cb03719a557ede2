"""Time Machine: the user-facing API (train a person once, then portraits of them in past eras).

::

    person = create_person(["me1.jpg", ..., "me10.jpg"], name="Ada", consent=True)  # photos checked, aligned
    train_person(person, preset="test")        # background job; returns 0 (started) or its queue position
    person_status(person)                      # state, step, loss, preview
    stop_person(person)                        # in any state; train_person(person) resumes
    portraits = generate(person, ["victorian", "viking"], n=2, seed=7)
    delete_person(person)                      # every file of the person

A person is a folder ``$NOSTALGIA_DATA_DIR/time_machine/<id>`` (unguessable id) owned by whoever
created it (:mod:`pipelines.common.jobs`: in public mode nobody else can list, train, generate
from or delete it). The photos are kept only until training finishes; then only the LoRA (a few
MB) and the generated portraits remain, and the whole folder goes after the job TTL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.common import jobs
from pipelines.common.disk import read_json, write_json
from pipelines.common.errors import InputError
from pipelines.common.limits import public_mode
from pipelines.common.progress import ProgressFn
from pipelines.time_machine import photos as photo_prep
from pipelines.time_machine.config import (
    BASE_MODEL_ID,
    CLASS_NOUN,
    CPU_PRESETS,
    INSTANCE_TOKEN,
    MAX_PHOTOS,
    MIN_PHOTOS,
    generate_config,
    train_config,
)
from pipelines.time_machine.eras import get_era
from pipelines.time_machine.training import LORA_FILE, Status

KIND = "tm"
PREPARED_SIZE = 512  # aligned crops are stored at the largest training resolution
ACTIVE = ("queued", "preparing", "training")
CONSENT_TEXT = "These are photos of me, or I have this person's permission to use them."


def persons_dir() -> Path:
    path = jobs.data_dir() / "time_machine"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _slot_key(person_id: str) -> str:
    return f"{KIND}/{person_id}"


def _person_dir(person_id: str | None, owner: str | None) -> Path:
    if not jobs.valid_job_id(person_id):
        raise InputError(f"Unknown person {str(person_id)[:40]!r}; pick one of yours from the list or add a new one.")
    folder = jobs.require_owner(persons_dir() / str(person_id), owner, "person")
    if not (folder / "person.json").exists():
        raise InputError(f"Unknown person {person_id!r}; pick one of yours from the list or add a new one.")
    return folder


def max_persons_per_owner() -> int:
    """``NOSTALGIA_TM_MAX_PERSONS`` (default 3): persons one visitor may keep in public mode."""
    return int(os.environ.get("NOSTALGIA_TM_MAX_PERSONS") or 3)


def cleanup() -> int:
    """Delete persons idle longer than the job TTL (or beyond the disk budget); never a running one."""
    slots = jobs.training_slots()
    active = {k.split("/", 1)[1] for k in slots.active_keys() if k.startswith(f"{KIND}/")}
    return jobs.prune_job_folders(persons_dir(), slots.policy, active=active).removed


# --------------------------------------------------------------------------- persons


@dataclass
class PersonInfo:
    id: str
    name: str
    state: str
    step: int
    trained: bool  # a LoRA exists (final, or the last checkpoint of a stopped job)
    n_photos: int
    created: float

    @property
    def label(self) -> str:
        return f"{self.name} ({self.state}, step {self.step}{', ready' if self.trained else ''})"


def create_person(
    photo_paths: Sequence[str | os.PathLike],
    *,
    name: str,
    consent: bool,
    owner: str = "local",
    names: Sequence[str] | None = None,
    base_model: str = BASE_MODEL_ID,
) -> str:
    """Check, align and de-duplicate the photos and register a new person; returns its id.

    Refuses without consent, with fewer than ``MIN_PHOTOS`` usable photos or more than
    ``MAX_PHOTOS`` uploads (the message names every photo that was not usable and why)."""
    if not consent:
        raise InputError(f"Please confirm: {CONSENT_TEXT}")
    name = jobs.short_name(name, default="")
    if not name:
        raise InputError("Please give the person a name (it labels their portraits).")
    paths = [Path(p) for p in photo_paths or []]
    if len(paths) > MAX_PHOTOS:
        raise InputError(f"{len(paths)} photos uploaded; at most {MAX_PHOTOS} are used. Pick the best {MAX_PHOTOS}.")
    if len(paths) < MIN_PHOTOS:
        raise InputError(f"{len(paths)} photo(s) uploaded; at least {MIN_PHOTOS} photos of the person are needed.")
    cleanup()
    limit = max_persons_per_owner()
    if public_mode() and len(list_persons(owner)) >= limit:
        raise jobs.QuotaError(f"You already have {limit} persons, the most one visitor may keep; delete one first.")
    report = photo_prep.prepare_photos(paths, PREPARED_SIZE, names=names)
    photo_prep.require_enough(report, MIN_PHOTOS)
    from pipelines.common.media import save_png

    person_id = jobs.new_job_id(name)
    folder = persons_dir() / person_id
    (folder / "data").mkdir(parents=True)
    jobs.claim(folder, owner)
    for i, photo in enumerate(report.kept):
        save_png(photo.image, folder / "data" / f"{i:02d}.png")
    write_json(folder / "person.json", {
        "name": name, "token": INSTANCE_TOKEN, "class_noun": CLASS_NOUN,
        "caption": photo_prep.caption(INSTANCE_TOKEN, CLASS_NOUN), "base_model": base_model,
        "n_photos": len(report.kept), "rejected": report.rejected, "created": time.time(),
    })  # fmt: skip
    return person_id


def person_info(folder: Path) -> PersonInfo:
    meta = read_json(folder / "person.json")
    status = person_status_at(folder)
    return PersonInfo(
        id=folder.name, name=meta.get("name", folder.name), state=status.get("state", "none"),
        step=int(status.get("step", 0) or 0), trained=lora_path(folder) is not None,
        n_photos=int(meta.get("n_photos", 0)), created=float(meta.get("created", 0.0)),
    )  # fmt: skip


def list_persons(owner: str = "local") -> list[PersonInfo]:
    """The owner's persons (every person locally), newest first."""
    found = [person_info(f) for f in jobs.owned_folders(persons_dir(), owner) if (f / "person.json").exists()]
    return sorted(found, key=lambda p: p.created, reverse=True)


def lora_path(folder: Path) -> Path | None:
    """The final LoRA, else the last checkpoint's (a stopped job can already generate)."""
    for candidate in (folder / "lora" / LORA_FILE, folder / "job" / "lora" / LORA_FILE):
        if candidate.exists():
            return candidate
    return None


def delete_person(person_id: str, owner: str = "local", timeout_s: float = 30.0) -> None:
    """Stop the person's job if any, then remove every file of the person."""
    folder = _person_dir(person_id, owner)
    slots = jobs.training_slots()
    (folder / "job").mkdir(exist_ok=True)
    (folder / "job" / "stop").touch()
    slots.cancel(_slot_key(person_id))
    deadline = time.time() + timeout_s
    while slots.state(_slot_key(person_id)) == "running" and time.time() < deadline:
        time.sleep(0.2)
    pid = read_json(folder / "job" / "status.json").get("pid")
    if slots.state(_slot_key(person_id)) == "running" and pid:
        with contextlib.suppress(OSError):
            os.killpg(int(pid), 9)
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():  # a file written while removing: once more
        shutil.rmtree(folder)


# --------------------------------------------------------------------------- training jobs


def allowed_presets(device_type: str | None = None) -> tuple[str, ...]:
    """On a CPU only the small test preset (the standard one would take hours per person)."""
    from pipelines.common.device import pick_device
    from pipelines.time_machine.config import PRESETS

    device_type = device_type or pick_device().type
    return tuple(PRESETS) if device_type == "cuda" else CPU_PRESETS


def train_person(
    person_id: str,
    *,
    preset: str = "test",
    minutes: float | None = None,
    owner: str = "local",
    restart: bool = False,
    background: bool = True,
    **overrides: Any,
) -> int:
    """Start (or resume, from the last checkpoint) a person's training; returns 0 when it started,
    else its place in the machine-wide training queue. ``background=False`` trains here."""
    folder = _person_dir(person_id, owner)
    if preset not in allowed_presets(overrides.get("device")):
        raise InputError(f"The {preset!r} preset needs a GPU; on this machine use: {', '.join(allowed_presets())}.")
    config = train_config(preset, time_budget_min=minutes, **overrides)
    current = person_status_at(folder)
    if current.get("state") in ACTIVE and current.get("running"):
        raise InputError(f"{read_json(folder / 'person.json').get('name')} is already training (step {current.get('step', 0)}).")
    if (folder / "lora" / LORA_FILE).exists():
        raise InputError("This person is fully trained (the photos were deleted); generate portraits, or add the person again.")
    if not any((folder / "data").glob("*.png")):
        raise InputError("This person's photos are gone; add the person again to train.")
    job = folder / "job"
    job.mkdir(exist_ok=True)
    if restart:
        for name in ("adapters.safetensors", "state.pt", "status.json", "preview.png"):
            (job / name).unlink(missing_ok=True)
        shutil.rmtree(job / "lora", ignore_errors=True)
    (job / "stop").unlink(missing_ok=True)
    write_json(job / "config.json", config.to_dict())
    previous = read_json(job / "status.json")
    write_json(job / "status.json", {**previous, **{k: v for k, v in Status(max_steps=config.max_steps,
               budget_s=config.time_budget_min * 60).__dict__.items() if k not in ("eval_loss", "messages")},
               "state": "queued", "updated": time.time()})  # fmt: skip
    jobs.touch(folder)
    if not background:
        from pipelines.time_machine.training import run_job

        run_job(folder)
        return 0
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}

    def start() -> subprocess.Popen:
        with open(job / "log.txt", "a") as logfile:
            return subprocess.Popen([sys.executable, "-m", "pipelines.time_machine.training", str(folder)], cwd=root,
                                    env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def started(pid: int) -> None:
        write_json(job / "status.json", {**read_json(job / "status.json"), "pid": pid, "updated": time.time()})

    return jobs.training_slots().submit(_slot_key(person_id), owner, start, wall_s=config.time_budget_min * 60 + 600,
                                        on_start=started)  # fmt: skip


def person_status_at(folder: Path) -> dict[str, Any]:
    status = read_json(folder / "job" / "status.json")
    if not status:
        return {"state": "new", "running": False}
    slot = jobs.training_slots().state(_slot_key(folder.name))
    status["running"] = slot == "running"
    if status.get("state") == "queued" and slot == "queued":
        status["queue_position"] = jobs.training_slots().position(_slot_key(folder.name))
    elif status.get("state") in ACTIVE and slot is None and time.time() - float(status.get("updated", 0)) > 10:
        status["state"] = "interrupted"  # its process ended without saying so (killed, app restarted)
    return status


def person_status(person_id: str, owner: str = "local") -> dict[str, Any]:
    """The job's status plus ``summary`` (one line for the UI), ``preview`` (path or None) and
    ``trained`` (a LoRA to generate with exists)."""
    folder = _person_dir(person_id, owner)
    status = person_status_at(folder)
    meta = read_json(folder / "person.json")
    state = status.get("state", "new")
    parts = [f"{meta.get('name', person_id)}: {state}"]
    if status.get("queue_position"):
        parts.append(f"waiting, place {status['queue_position']} in the training queue")
    if status.get("max_steps"):
        parts.append(f"step {status.get('step', 0)}/{status['max_steps']}")
        parts.append(f"{float(status.get('elapsed_s', 0)) / 60:.1f}/{float(status.get('budget_s', 0)) / 60:.0f} min")
    if status.get("steps_per_s"):
        parts.append(f"{status['steps_per_s']:.2f} steps/s")
    history = status.get("eval_loss") or []
    if history:
        parts.append(f"loss {history[0][1]:.4f} -> {history[-1][1]:.4f}")
    if status.get("error"):
        parts.append(f"error: {status['error']}")
    preview = folder / "job" / "preview.png"
    status.update(summary=" | ".join(parts), preview=str(preview) if preview.exists() else None,
                  trained=lora_path(folder) is not None, name=meta.get("name"), n_photos=meta.get("n_photos"),
                  rejected=meta.get("rejected") or [])  # fmt: skip
    return status


def stop_person(person_id: str, owner: str = "local") -> str:
    """Stop in any state: a queued job leaves the queue, a running one checkpoints and ends
    (train again to resume). Returns what happened, for the UI."""
    folder = _person_dir(person_id, owner)
    job = folder / "job"
    job.mkdir(exist_ok=True)
    (job / "stop").touch()
    outcome = jobs.training_slots().cancel(_slot_key(person_id))
    status = read_json(job / "status.json")
    if outcome == "terminating":
        return "Stopping: the job saves a checkpoint and ends (train again to resume)."
    if status.get("state") in ACTIVE:
        write_json(job / "status.json", {**status, "state": "stopped", "updated": time.time()})
        return "Stopped before it started." if outcome == "dequeued" else "Stopped."
    return f"Nothing to stop (the job is {status.get('state', 'not started')})."


# --------------------------------------------------------------------------- generation


class TimeMachinePipeline:
    """Stable Diffusion built once from the base model folder; ``__call__`` loads one person's
    LoRA, renders the eras and unloads it again (so persons never mix)."""

    def __init__(self, model_dir: Path, device: str | None = None):
        import torch
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

        from pipelines.common.device import pick_device

        self.device = pick_device(device)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        pipe = StableDiffusionPipeline.from_pretrained(model_dir, torch_dtype=dtype, safety_checker=None,
                                                       feature_extractor=None, requires_safety_checker=False)  # fmt: skip
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        self.resolution = int(pipe.unet.config.sample_size) * pipe.vae_scale_factor
        self.lock = threading.Lock()

    def __call__(self, lora: Path, subject: str, era_ids: Sequence[str], n: int, seed: int, steps: int,
                 guidance: float, progress: ProgressFn | None = None) -> list[tuple[str, Any]]:  # fmt: skip
        import torch

        results: list[tuple[str, Any]] = []
        with self.lock:
            self.pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="person")
            try:
                for k, era_id in enumerate(era_ids):
                    era = get_era(era_id)
                    if progress:
                        progress(k / len(era_ids), f"{era.label}: {n} portrait(s)")
                    generator = torch.Generator("cpu").manual_seed(seed + k)
                    out = self.pipe(era.prompt_for(subject), negative_prompt=era.negative or None,
                                    num_images_per_prompt=n, num_inference_steps=steps, guidance_scale=guidance,
                                    height=self.resolution, width=self.resolution, generator=generator,
                                    output_type="np")  # fmt: skip
                    results += [(era_id, img) for img in out.images]
            finally:
                self.pipe.unload_lora_weights()
        return results


def _pipeline(base_model: str) -> TimeMachinePipeline:
    from pipelines.common.device import MODELS
    from weights.store import model_dir

    folder = model_dir(base_model)
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    return MODELS.get(f"time_machine:{base_model}:{stamp}", lambda: TimeMachinePipeline(folder))


@dataclass
class Portrait:
    era: str
    label: str
    path: Path


def generate(
    person_id: str,
    era_ids: Sequence[str],
    *,
    n: int = 2,
    seed: int = 0,
    owner: str = "local",
    progress: ProgressFn | None = None,
) -> list[Portrait]:
    """``n`` portraits of the person per era (PNG files in the person's folder), seeds
    ``seed``, ``seed + 1``, ... per era."""
    import numpy as np

    from pipelines.common.media import save_png

    folder = _person_dir(person_id, owner)
    limits = generate_config()
    era_ids = list(dict.fromkeys(era_ids or []))
    if not era_ids:
        raise InputError("Pick at least one era.")
    if len(era_ids) > limits.max_eras:
        raise InputError(f"{len(era_ids)} eras picked; at most {limits.max_eras} per request.")
    eras = [get_era(e) for e in era_ids]
    if not 1 <= int(n) <= limits.max_images_per_era:
        raise InputError(f"Portraits per era must be between 1 and {limits.max_images_per_era} (got {n}).")
    lora = lora_path(folder)
    if lora is None:
        raise InputError("This person has no trained LoRA yet: train first (a stopped job can generate from its last checkpoint).")
    meta = read_json(folder / "person.json")
    jobs.touch(folder)
    subject = f"{meta.get('token', INSTANCE_TOKEN)} {meta.get('class_noun', CLASS_NOUN)}"
    images = _pipeline(meta.get("base_model", BASE_MODEL_ID))(lora, subject, era_ids, int(n), int(seed), limits.steps,
                                                              7.5, progress)  # fmt: skip
    out_dir = folder / "portraits"
    out_dir.mkdir(exist_ok=True)
    labels = {e.id: e.label for e in eras}
    portraits, counters = [], dict.fromkeys(era_ids, 0)
    for era_id, image in images:
        path = out_dir / f"{era_id}-seed{int(seed)}-{counters[era_id]}.png"
        counters[era_id] += 1
        save_png((np.clip(image, 0, 1) * 255).round().astype(np.uint8), path)
        portraits.append(Portrait(era_id, labels[era_id], path))
    return portraits
