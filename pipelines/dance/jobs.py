"""Dance training jobs: start, follow and stop the training of a target, in a separate process.

A training run is a **job whose whole state is on disk** (``<target dir>/job/``), so it survives
the browser closing, the app restarting, and interruptions (it resumes from its last checkpoint)::

    job/config.json             the TrainConfig of the run
    job/status.json             what :class:`~pipelines.dance.trainer.Status` holds (atomic writes)
    job/log.txt                 the job's log
    job/stop                    present = please stop at the next step (checkpoint first)

:func:`launch` is the one way to start a run (a background process, or here and now);
:func:`run_job` is what that process does (find the poses and render the training data if
needed, then train); :func:`read_status` and :func:`request_stop` follow and stop it.

Run a job by hand: ``python -m pipelines.dance.jobs <target dir>`` (what :func:`launch` spawns), or
on N GPUs ``torchrun --standalone --nproc-per-node N -m pipelines.dance.jobs <target dir>``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipelines.common.disk import read_json, write_json
from pipelines.common.errors import InputError
from pipelines.common.jobs import job_process_main, pid_alive
from pipelines.dance import distributed
from pipelines.dance.config import TrainConfig, check_resumable
from pipelines.dance.target import prepare_target_from_video, target_training_data
from pipelines.dance.trainer import Status, Trainer

log = logging.getLogger("nostalgia.dance")

ACTIVE_STATES = ("queued", "starting", "preparing", "training")


class StopRequestedError(Exception):
    """The job's stop file appeared before training started."""


def job_config(target_dir: Path) -> TrainConfig:
    """The TrainConfig the target's job was launched with (``job/config.json``)."""
    return TrainConfig.from_dict(read_json(target_dir / "job" / "config.json"))


def run_job(target_dir: Path) -> Status:
    """Prepare the data if needed and train; every outcome ends up in ``job/status.json``.
    Under torchrun (several processes) rank 0 prepares the data while the others wait, then all
    train together (:mod:`pipelines.dance.distributed`)."""
    target_dir = Path(target_dir)
    job_dir = target_dir / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    config = job_config(target_dir)
    status_path = job_dir / "status.json"

    def preparing(fraction: float, message: str) -> None:
        if (job_dir / "stop").exists():  # a stop is honoured while the data is prepared too
            raise StopRequestedError
        prev = read_json(status_path)
        prev.update(state="preparing", progress=0.0, messages=[message], pid=os.getpid(), updated=time.time())
        write_json(status_path, prev)

    world, device = distributed.setup(config.device)
    try:
        if world.is_main:
            meta = read_json(target_dir / "target.json")
            if not (target_dir / "poses.npz").exists():
                video = target_dir / meta.get("video", "source.mp4")
                prepare_target_from_video(target_dir, video, preparing)
            data = target_training_data(target_dir, config, preparing)
        distributed.barrier(world)
        if not world.is_main:
            data = target_training_data(target_dir, config)  # rank 0 has cached it
        trainer = Trainer(target_dir, config, data, world, device)
        return trainer.run()
    except StopRequestedError:
        prev = read_json(status_path)
        prev.update(state="stopped", messages=["Stopped while preparing the training data."], updated=time.time())
        write_json(status_path, prev)
        return Status(**{k: v for k, v in prev.items() if k in Status.__dataclass_fields__})
    except Exception as exc:  # the job must leave its reason on disk for the UI
        if not world.is_main:
            raise
        prev = read_json(status_path)
        user = isinstance(exc, InputError) or type(exc).__name__ in ("ModelUnavailableError", "OutOfMemoryError")
        prev.update(state="failed", error=str(exc) if user else f"{type(exc).__name__}: {exc}", updated=time.time())
        write_json(status_path, prev)
        (job_dir / "log.txt").open("a").write(traceback.format_exc())
        raise
    finally:
        distributed.teardown(world)


def prepare_launch(target_dir: Path, config: TrainConfig, *, resume: bool = True, nproc: int = 1) -> None:
    """Set a job up to run: a target that is already training is refused, ``resume=False``
    forgets the old run, a checkpoint the new settings cannot continue is refused now (not
    minutes later in the job), a batch that does not split over ``nproc`` processes too; the
    status says "queued" until a process takes it."""
    config.validate()
    distributed.check_batch(config.batch_size, distributed.World(size=nproc))
    target_dir = Path(target_dir)
    job_dir = target_dir / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    current = read_status(target_dir)
    if current.get("running"):
        raise InputError(f"Target {target_dir.name} is already training (step {current.get('step', 0)}).")
    if not resume:
        for name in ("checkpoint.pt", "status.json", "preview.png"):
            (job_dir / name).unlink(missing_ok=True)
    elif (job_dir / "checkpoint.pt").exists() and (job_dir / "config.json").exists():
        check_resumable(job_config(target_dir), config)
    (job_dir / "stop").unlink(missing_ok=True)
    write_json(job_dir / "config.json", asdict(config))
    queued = asdict(Status(budget_s=config.time_budget_min * 60, max_steps=config.max_steps))
    write_json(job_dir / "status.json", {**queued, "updated": time.time()})


def job_command(target_dir: Path, nproc: int = 1) -> tuple[list[str], Path, dict[str, str]]:
    """The job's command line (``nproc`` > 1: under torchrun, one process per GPU), its working
    folder and environment."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    if nproc > 1:
        return distributed.torchrun_command(nproc, "pipelines.dance.jobs", str(target_dir)), root, env
    return [sys.executable, "-m", "pipelines.dance.jobs", str(target_dir)], root, env


def spawn(target_dir: Path, nproc: int = 1) -> subprocess.Popen:
    """The training process of a prepared job, in its own session (its own process group: a
    stop or a wall-time kill reaches its children too; closing the browser does not)."""
    command, root, env = job_command(target_dir, nproc)
    with open(Path(target_dir) / "job" / "log.txt", "a") as logfile:
        return subprocess.Popen(command, cwd=root, env=env, stdout=logfile, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _update_status(target_dir: Path, **changes: Any) -> None:
    path = Path(target_dir) / "job" / "status.json"
    status = read_json(path)
    status.update(changes, updated=time.time())
    write_json(path, status)


def record_pid(target_dir: Path, pid: int) -> None:
    """The job's process started: its pid makes the status "running" (see :func:`read_status`)."""
    _update_status(target_dir, pid=pid, state="starting", messages=[])


def set_queued(target_dir: Path, position: int) -> None:
    _update_status(target_dir, state="queued", messages=[f"Waiting for a training slot ({position} in line)."])


def mark_stopped(target_dir: Path, message: str) -> None:
    _update_status(target_dir, state="stopped", messages=[message])


def launch(target_dir: Path, config: TrainConfig, *, resume: bool = True, background: bool = True, nproc: int = 1) -> int:
    """Start training a target now; returns the pid of the process that trains (the app goes
    through the machine-wide training slots instead: :func:`pipelines.dance.pipeline.train_target`).

    ``background=True`` starts a separate process and returns at once; ``background=False``
    trains in this process and returns when the run ends (its errors are raised). Either way
    the job is set up by :func:`prepare_launch`. ``nproc`` > 1 trains with that many processes
    (one per GPU) under torchrun; ``config.batch_size`` is then the global batch, split evenly."""
    prepare_launch(target_dir, config, resume=resume, nproc=nproc)
    if not background and nproc > 1:  # here and now, but the processes are torchrun's
        command, root, env = job_command(target_dir, nproc)
        if subprocess.run(command, cwd=root, env=env).returncode != 0:
            error = read_status(target_dir).get("error") or "see job/log.txt"
            raise InputError(f"Training failed: {error}")
        return os.getpid()
    if not background:
        record_pid(target_dir, os.getpid())
        run_job(target_dir)
        return os.getpid()
    proc = spawn(target_dir, nproc)
    record_pid(target_dir, proc.pid)
    return proc.pid


def request_stop(target_dir: Path) -> None:
    """Ask a running job to checkpoint and stop at its next step."""
    (Path(target_dir) / "job" / "stop").touch()


def read_status(target_dir: Path) -> dict[str, Any]:
    """``job/status.json`` plus ``running`` (its process is alive); a job whose process died
    while training is reported ``interrupted`` (it resumes from its last checkpoint)."""
    status = read_json(Path(target_dir) / "job" / "status.json")
    if not status:
        return {"state": "none", "running": False}
    active = status.get("state") in ACTIVE_STATES
    alive = pid_alive(status.get("pid"))
    status["running"] = bool(active and alive)
    if active and not alive and status.get("pid") and time.time() - float(status.get("updated", 0)) > 5:
        status["state"] = "interrupted"
    return status


def main(argv: list[str] | None = None) -> int:
    def run(target_dir: Path) -> None:
        status = run_job(target_dir)
        log.info("finished: %s at step %d", status.state, status.step)

    return job_process_main(argv, prog="python -m pipelines.dance.jobs", description="Run one EDN training job.",
                            folder="target_dir", run=run)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
