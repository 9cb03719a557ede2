"""The driver of a batch job on Ray: plan the units, keep every worker busy, retry what a lost worker
was doing, record each finished input in the manifest, and end with the CLI's summary and exit status.

Workers are Ray actors (one per GPU, or CPU workers) that the cluster restarts when their process dies
(``max_restarts``); the units a dead worker had in hand go back to the queue, at most
:data:`MAX_ATTEMPTS` times each (an input that kills its worker every time is reported as failed, not
retried forever). Each worker has at most :data:`IN_FLIGHT` calls queued, so a slow worker never
hoards the work and only small outcome records ever reach the driver.

Why actors and not Ray Data: the job needs a resumable manifest keyed by input, grouping of photos by
working size, video chunks that must be stitched in order, and per-input error reports; with a plain
actor pool each of these is a few lines here, and Ray still does the scheduling, placement on GPUs,
restarts and data movement.
"""

from __future__ import annotations

import argparse
import collections
import math
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

from pipelines.scale import options as scale_options
from pipelines.scale import storage
from pipelines.scale.worker import Outcome, Unit, Worker, frame_batch, output_names, parts_folder, probe

MAX_ATTEMPTS = 3
IN_FLIGHT = 2
MAX_RESTARTS = 4
WORKER_PREFIX = "nostalgia-worker"
MIN_CHUNK_FRAMES = 64
RESTART_WAIT_S = 1.0  # pause before sending work again to a worker that is restarting
MAX_RESTART_WAIT_S = 900.0  # a worker that stays unavailable this long is given up


def _import_ray():
    try:
        import ray
    except ImportError:
        return None
    return ray


def _connect(ray, address: str) -> bool:
    """Join ``address`` or start a local instance; True when this call started Ray (and must stop it)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
    if address == scale_options.LOCAL:
        ray.init(**kwargs)
    else:
        ray.init(address=address, **kwargs)
    return True


def _plan_workers(ray, args: argparse.Namespace, n_units: int) -> tuple[int, float, int]:
    """(workers, GPUs per worker, photos per batch) from the flags and the cluster's resources."""
    resources = ray.cluster_resources()
    gpus = args.gpus_per_worker if args.gpus_per_worker is not None else (1.0 if resources.get("GPU", 0) else 0.0)
    if args.workers:
        workers = args.workers
    elif gpus:
        workers = max(1, int(resources.get("GPU", 0) // gpus))
    else:
        workers = max(1, int(resources.get("CPU", 1) // args.cpus_per_worker))
    batch = args.batch_size or (8 if gpus else 1)
    return max(1, min(workers, n_units)), gpus, batch


class Job:
    """State of one run: pending units, what each worker holds, and the per-input bookkeeping."""

    def __init__(self, ray, args: argparse.Namespace, output: str, stream: TextIO):
        self.ray, self.args, self.output, self.stream = ray, args, output, stream
        self.manifest = storage.Manifest(output, args.command)
        self.failures: list[tuple[str, str]] = []
        self.done = 0
        self.pending: collections.deque[list[Unit]] = collections.deque()
        self.video_left: dict[str, int] = {}  # chunks still to finish per video input
        self.started: dict[str, float] = {}  # first dispatch time per input (seconds of a video = all its chunks)
        self.lost_inputs: set[str] = set()  # videos already failed (their other chunks are dropped)
        self.bar = None

    # ---- records

    def finish(self, source: str, ok: bool, outputs: list[str], seconds: float, error: str | None, attempts: int) -> None:
        status = "done" if ok else "failed"
        self.manifest.append({"input": source, "output": outputs, "status": status, "seconds": round(seconds, 3),
                              "error": error, "attempts": attempts})  # fmt: skip
        if ok:
            self.done += 1
        else:
            self.failures.append((source, error or "failed"))
            self.write(f"FAILED {source}: {error}")

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")

    def tick(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    # ---- outcomes

    def take(self, outcome: Outcome) -> None:
        unit = outcome.unit
        if unit.kind == "item":
            self.finish(unit.input, outcome.ok, outcome.outputs, outcome.seconds, outcome.error, unit.attempts + 1)
            self.tick()
            return
        if unit.input in self.lost_inputs:
            self.tick()
            return
        if not outcome.ok:
            self.fail_video(unit.input, outcome.error or "failed", unit.attempts + 1)
            self.tick()
            return
        if unit.kind == "chunk":
            self.tick()
            self.video_left[unit.input] -= 1
            if self.video_left[unit.input] == 0:
                self.pending.appendleft([Unit("stitch", unit.input, parts=unit.parts, fps=unit.fps)])
            return
        seconds = time.perf_counter() - self.started.get(unit.input, time.perf_counter())
        self.finish(unit.input, True, outcome.outputs, seconds, None, unit.attempts + 1)
        storage.remove(parts_folder(self.output, unit.input))
        self.tick()

    def fail_video(self, source: str, error: str, attempts: int) -> None:
        self.lost_inputs.add(source)
        self.finish(source, False, [], time.perf_counter() - self.started.get(source, time.perf_counter()), error,
                    attempts)  # fmt: skip
        storage.remove(parts_folder(self.output, source))
        dropped = 0
        for batch in list(self.pending):
            if batch[0].input == source:
                self.pending.remove(batch)
                dropped += len(batch)
        self.tick(dropped)

    def lost(self, units: list[Unit], why: str) -> None:
        """A worker died holding ``units``: each goes back to the queue, or fails after MAX_ATTEMPTS."""
        retry = []
        for unit in units:
            unit.attempts += 1
            if unit.kind != "item" and unit.input in self.lost_inputs:
                self.tick()
            elif unit.attempts < MAX_ATTEMPTS:
                retry.append(unit)
            else:
                error = f"its worker died {unit.attempts} times while processing it (out of memory?): {why}"
                if unit.kind == "item":
                    self.finish(unit.input, False, [], 0.0, error, unit.attempts)
                    self.tick()
                else:
                    self.fail_video(unit.input, error, unit.attempts)
                    self.tick()
        if retry:
            self.write(f"A worker was lost ({why}); retrying {len(retry)} item(s).")
            self.pending.appendleft(retry)


def _plan(job: Job, args: argparse.Namespace, task_extensions: set[str]) -> tuple[list[str], list[str], int]:
    """Inputs to process, files skipped, inputs already done; failures found before any work are recorded."""
    inputs, skipped = storage.list_inputs(args.inputs, task_extensions, args.recursive)
    previous = {} if args.overwrite else job.manifest.load()
    present = storage.listing(job.output)  # one listing, not one request per result (object stores)
    todo: list[str] = []
    claimed: dict[str, str] = {}
    already = 0
    for source in inputs:
        names = output_names(source, args)
        record = previous.get(source)
        done_outputs = (record or {}).get("output") or []
        if record and record.get("status") == "done" and all(storage.basename(o) in present for o in done_outputs):
            already += 1
            continue
        if record and record.get("status") == "failed" and not args.retry_failed:
            job.failures.append((source, f"{record.get('error')} (failed before; --retry-failed tries again)"))
            continue
        clash = [n for n in names if n in claimed]
        if clash:
            job.finish(source, False, [], 0.0,
                       f"{clash[0]} is also the output of {storage.basename(claimed[clash[0]])}; rename one input", 0)  # fmt: skip
            continue
        claimed.update({n: source for n in names})
        existing = [n for n in names if n in present]
        if existing and not args.overwrite:
            job.finish(source, False, [], 0.0,
                       f"{', '.join(existing)} already exist(s) in {job.output}; use --overwrite", 0)  # fmt: skip
            continue
        todo.append(source)
    return todo, skipped, already


def _units(ray, job: Job, todo: list[str], workers: int, batch: int) -> int:
    """Fill the queue: photos in batches, each video as chunks (probed on the cluster first). Returns the
    number of units (the progress bar's total)."""
    from pipelines.__main__ import VIDEO_EXTENSIONS

    videos = [s for s in todo if job.args.command == "colorize" and Path(s).suffix.lower() in VIDEO_EXTENSIONS]
    photos = [s for s in todo if s not in set(videos)]
    for i in range(0, len(photos), batch):
        job.pending.append([Unit("item", s) for s in photos[i : i + batch]])
    total = len(photos)
    if not videos:
        return total
    probe_task = ray.remote(num_cpus=0)(probe)
    refs = {s: probe_task.remote(s, job.output) for s in videos}
    step = frame_batch()
    for source, ref in refs.items():
        try:
            fps, n_frames = ray.get(ref)
        except Exception as exc:
            job.finish(source, False, [], 0.0, _cause(exc), 1)
            continue
        size = job.args.chunk_frames or max(MIN_CHUNK_FRAMES, math.ceil(n_frames / (2 * workers)))
        size = max(step, size // step * step)  # chunks start on the single-process batch boundaries
        parts = math.ceil(n_frames / size)
        job.video_left[source] = parts
        storage.remove(parts_folder(job.output, source))
        for index in range(parts):
            start = index * size
            job.pending.append([Unit("chunk", source, index, start, min(start + size, n_frames), parts, fps)])
        total += parts + 1
    return total


def _cause(exc: BaseException) -> str:
    """The user-facing message of an error raised in a Ray task (Ray wraps it)."""
    from pipelines.__main__ import describe_failure

    inner = getattr(exc, "cause", None)
    return describe_failure(inner if isinstance(inner, BaseException) else exc)


class _Pool:
    """The workers' health as the driver sees it. After any failed call a worker gets no work until it
    answers a ping (Ray refuses calls while it restarts the actor), so only the calls a worker really
    held when it died count as attempts."""

    def __init__(self, ray, actors: list):
        self.ray, self.actors = ray, actors
        n = len(actors)
        self.load, self.ready, self.alive = [0] * n, [True] * n, [True] * n
        self.losses, self.waits = [0] * n, [0] * n
        self.next_ping = [0.0] * n
        self.pings: dict[Any, int] = {}

    def idle(self, w: int) -> bool:
        return self.alive[w] and self.ready[w] and self.load[w] < IN_FLIGHT

    def failed(self, w: int, died: bool) -> None:
        self.ready[w] = False
        if died:
            self.losses[w] += 1
            self.alive[w] = self.losses[w] <= MAX_RESTARTS  # past its restarts the actor is gone for good

    def send_pings(self) -> None:
        now = time.monotonic()
        for w in range(len(self.actors)):
            if self.alive[w] and not self.ready[w] and w not in self.pings.values() and now >= self.next_ping[w]:
                self.pings[self.actors[w].pid.remote()] = w

    def answer(self, ref: Any) -> None:
        w = self.pings.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayError:
            self.waits[w] += 1
            self.alive[w] = self.alive[w] and self.waits[w] * RESTART_WAIT_S < MAX_RESTART_WAIT_S
            self.next_ping[w] = time.monotonic() + RESTART_WAIT_S
            return
        self.ready[w], self.waits[w] = True, 0


def _dispatch(ray, job: Job, actors: list, total: int) -> None:
    """Keep every ready worker busy until the queue is empty and nothing is in flight."""
    from tqdm import tqdm

    pool = _Pool(ray, actors)
    in_flight: dict[Any, tuple[int, list[Unit]]] = {}
    job.bar = tqdm(total=total, unit="item", file=job.stream, disable=job.args.quiet, dynamic_ncols=True,
                   mininterval=0.5 if job.stream.isatty() else 10.0, desc=job.args.command)  # fmt: skip
    try:
        while job.pending or in_flight:
            for w in range(len(actors)):
                while pool.idle(w) and job.pending:
                    units = job.pending.popleft()
                    for unit in units:
                        job.started.setdefault(unit.input, time.perf_counter())
                    in_flight[actors[w].run.remote(units)] = (w, units)
                    pool.load[w] += 1
            pool.send_pings()
            if not in_flight and not any(pool.alive):
                for units in list(job.pending):
                    for unit in units:
                        job.finish(unit.input, False, [], 0.0, "no worker could be started on the cluster", 0)
                job.pending.clear()
                break
            refs = list(in_flight) + list(pool.pings)
            if not refs:
                time.sleep(RESTART_WAIT_S)  # every live worker waits for its next ping
                continue
            ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in pool.pings:
                    pool.answer(ref)
                    continue
                w, units = in_flight.pop(ref)
                pool.load[w] -= 1
                try:
                    outcomes = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # died, or restarting (the call may have run)
                    pool.failed(w, died=not isinstance(exc, getattr(ray.exceptions, "ActorUnavailableError", ())))
                    job.lost(units, f"{type(exc).__name__} on worker {w}")
                    continue
                except ray.exceptions.RayError as exc:
                    pool.failed(w, died=False)
                    job.lost(units, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                    continue
                for outcome in outcomes:
                    job.take(outcome)
    finally:
        job.bar.close()
        job.bar = None


def run_on_ray(args: argparse.Namespace, stream: TextIO) -> int:
    """The ``--ray`` mode of ``python -m pipelines``; returns the CLI's exit status."""
    from pipelines.__main__ import TASKS, fixture_warning

    problem = scale_options.validate(args)
    if problem:
        stream.write(f"usage error: {problem}\n")
        return 2
    ray = _import_ray()
    if ray is None:
        stream.write("Ray is not installed: pip install -r requirements-scale.txt.\n")
        return 2
    task = TASKS[args.command]
    output = storage.normalise(args.output)
    storage.makedirs(output)
    job = Job(ray, args, output, stream)
    started_at = time.perf_counter()
    todo, skipped, already = _plan(job, args, task.extensions)
    if not todo and not already and not job.failures:
        stream.write("No input files found (check the paths and the file types the command takes).\n")
        job.manifest.close()
        return 1
    if todo and (warning := fixture_warning(args)):
        stream.write(warning + "\n")
    actors: list = []
    started_ray = False
    try:
        if todo:
            started_ray = _connect(ray, args.ray)
            n_workers, gpus, batch = _plan_workers(ray, args, len(todo))
            total = _units(ray, job, todo, n_workers, batch)
            device = args.device or (None if gpus else "cpu")
            remote = ray.remote(Worker)
            tag = uuid.uuid4().hex[:8]
            actors = [
                remote.options(num_cpus=args.cpus_per_worker, num_gpus=gpus, max_restarts=MAX_RESTARTS,
                               max_task_retries=0, name=f"{WORKER_PREFIX}-{tag}-{i}").remote(args, output, device, batch,
                                                                   max(1, int(args.cpus_per_worker)))
                for i in range(n_workers)
            ]  # fmt: skip
            job.write(f"{args.command}: {len(todo)} input(s) on {n_workers} worker(s) "
                      f"({f'{gpus:g} GPU' if gpus else 'CPU'} each, batches of {batch})"
                      + (f"; {already} already done" if already else ""))  # fmt: skip
            _dispatch(ray, job, actors, total)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        job.manifest.close()
        storage.remove(storage.join(output, storage.STAGING))  # parts of unfinished videos are redone anyway
        if started_ray:
            ray.shutdown()
    planned = set(todo)
    n_inputs = len(todo) + already + sum(1 for s, _ in job.failures if s not in planned)
    stream.write(f"\n{args.command}: {job.done + already} of {n_inputs} input(s) done in "
                 f"{time.perf_counter() - started_at:.1f} s ({already} skipped, done before), results in {output}\n")  # fmt: skip
    if skipped:
        names = ", ".join(storage.basename(s) for s in skipped[:10])
        stream.write(f"Skipped {len(skipped)} file(s) that {args.command} does not take: "
                     f"{names}{' ...' if len(skipped) > 10 else ''}\n")  # fmt: skip
    if job.failures:
        stream.write(f"{len(job.failures)} input(s) FAILED:\n")
        for source, why in job.failures:
            stream.write(f"  {source}: {why}\n")
        return 1
    return 0
