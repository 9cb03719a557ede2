"""What one Ray actor runs: units of a batch job (photos, video chunks, stitching), each outcome a small record.

The worker is a plain class (the runner wraps it with ``ray.remote``), built once per actor, so the
networks it loads through the process-wide model cache stay loaded for every later unit. Photos go
through the plain CLI's per-input functions (:data:`pipelines.__main__.TASKS`), hence the same bytes;
with ``batch_size > 1`` restore (quality mode) and colorize put the photos of a batch that share a
working size through the network in one forward pass, then finish each photo on its own. Every result
is written to the output storage by the worker itself (:func:`storage.publish`); nothing but the
outcome records travels back to the driver.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.scale import storage


@dataclass
class Unit:
    """One piece of work. ``item``: a whole input; ``chunk``: frames [start, stop) of a video;
    ``stitch``: the ``parts`` chunks of a video joined into its result."""

    kind: str
    input: str
    index: int = 0
    start: int = 0
    stop: int = 0
    parts: int = 0
    fps: float = 0.0
    attempts: int = 0


@dataclass
class Outcome:
    unit: Unit
    ok: bool
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def frame_batch() -> int:
    """Chunks of a video start at multiples of this: the largest frame batch the video path uses on
    any device (:data:`~pipelines.colorization.pipeline.VIDEO_BATCH_SIZES`), so each chunk's batches
    hold the same frames as the single process's on the same device (same numbers, same frames)."""
    from pipelines.colorization.pipeline import VIDEO_BATCH_SIZES

    return max([1, *VIDEO_BATCH_SIZES.values()])


def parts_folder(output: str, source: str) -> str:
    """Where the chunks of ``source`` wait to be stitched (hidden, under the output)."""
    return storage.join(output, f"{storage.STAGING}/parts-{hashlib.sha1(source.encode()).hexdigest()[:16]}")


def part_name(index: int) -> str:
    return f"{index:05d}.mkv"


def output_names(source: str, args: argparse.Namespace) -> list[str]:
    """File names the command writes for ``source`` (the CLI's own naming)."""
    from pipelines.__main__ import TASKS

    return [p.name for p in TASKS[args.command].outputs(Path(storage.basename(source)), Path("."), args)]


def probe(source: str, output: str) -> tuple[float, int]:
    """(fps, frame count) of a video input, with the CLI's limit checks (runs as a Ray task)."""
    from pipelines.common.media import probe_video

    with storage.staging_dir(output) as stage, storage.local_copy(source, stage) as local:
        info = probe_video(local)
    return info.fps, info.n_frames


def _noop(fraction: float, message: str = "") -> None:
    """Per-input progress is not shown in batch jobs (one bar for the whole job)."""


class Worker:
    """Built once per actor; :meth:`run` takes a list of units and returns their outcomes."""

    def __init__(self, args: argparse.Namespace, output: str, device: str | None, batch_size: int, threads: int = 1):
        import torch

        from pipelines.__main__ import TASKS

        if device:
            os.environ["NOSTALGIA_DEVICE"] = device
        # CPU float reductions depend on the thread count: the plain CLI gives the same bytes with as many threads
        torch.set_num_threads(max(1, threads))
        self.args, self.output, self.batch_size = args, output, batch_size
        self.task = TASKS[args.command]

    def pid(self) -> int:
        return os.getpid()

    def run(self, units: list[Unit]) -> list[Outcome]:
        kind = units[0].kind
        if kind == "chunk":
            return [self._timed(u, self._chunk) for u in units]
        if kind == "stitch":
            return [self._timed(u, self._stitch) for u in units]
        batchable = self.args.command == "colorize" or (self.args.command == "restore" and not self.args.scratch)
        if self.batch_size > 1 and len(units) > 1 and batchable:
            return self._batch(units)
        return [self._timed(u, self._item) for u in units]

    # ---- one unit

    def _timed(self, unit: Unit, fn) -> Outcome:
        from pipelines.__main__ import describe_failure

        start = time.perf_counter()
        try:
            outputs = fn(unit)
            return Outcome(unit, True, outputs, time.perf_counter() - start)
        except Exception as exc:
            return Outcome(unit, False, [], time.perf_counter() - start, describe_failure(exc))

    def _item(self, unit: Unit) -> list[str]:
        """One input through the CLI's own function, written to a staging folder, then published."""
        from pipelines.common.errors import NostalgiaError

        with storage.staging_dir(self.output) as stage:
            (stage / "in").mkdir()
            with storage.local_copy(unit.input, stage / "in") as src:
                if not src.exists():
                    raise NostalgiaError(f"{unit.input}: file not found")
                (stage / "out").mkdir()
                written = self.task.run(src, stage / "out", self.args, _noop)
                return [storage.publish(Path(p), self.output) for p in written]

    def _chunk(self, unit: Unit) -> list[str]:
        """Frames [start, stop) of a video colorized exactly as the single-process path does, kept losslessly."""
        from pipelines.__main__ import colorize_settings
        from pipelines.colorization.pipeline import Colorizer
        from pipelines.common.media import iter_frames, write_lossless_video

        with storage.staging_dir(self.output) as stage:
            (stage / "in").mkdir()
            with storage.local_copy(unit.input, stage / "in") as src:
                model, factor, post_process = colorize_settings(src, self.args)
                colorizer = Colorizer.from_pretrained(model)
                frames = itertools.islice(iter_frames(src), unit.start, unit.stop)
                colored = colorizer.colorize_frames(frames, factor, post_process)  # the device's own batch size
                part = write_lossless_video(colored, stage / part_name(unit.index), unit.fps)
            return [storage.publish(part, parts_folder(self.output, unit.input))]

    def _stitch(self, unit: Unit) -> list[str]:
        """The chunks in order, encoded as the single-process path encodes, with the source's audio."""
        from pipelines.common.media import iter_frames, write_video

        folder = parts_folder(self.output, unit.input)
        name = output_names(unit.input, self.args)[0]
        with storage.staging_dir(self.output) as stage:
            (stage / "in").mkdir()
            with storage.local_copy(unit.input, stage / "in") as src:

                def frames():
                    for i in range(unit.parts):
                        with storage.local_copy(storage.join(folder, part_name(i)), stage / "in") as part:
                            yield from iter_frames(part)

                target = write_video(frames(), stage / name, unit.fps, audio_from=src)
                return [storage.publish(target, self.output)]

    # ---- a batch of photos

    def _batch(self, units: list[Unit]) -> list[Outcome]:
        """Load every photo (a bad one fails alone), one forward pass per working size, then finish each."""
        from pipelines.__main__ import colorize_settings, describe_failure
        from pipelines.common.media import load_image, save_png

        start = time.perf_counter()
        outcomes: dict[int, Outcome] = {}
        loaded: list[tuple[int, object, object]] = []  # (position, photo, network input)
        restorer = None
        if self.args.command == "restore":
            from pipelines.restoration.pipeline import RestorationPipeline

            restorer = RestorationPipeline()
        with storage.staging_dir(self.output) as stage:
            (stage / "in").mkdir()
            for i, unit in enumerate(units):
                try:
                    with storage.local_copy(unit.input, stage / "in") as src:
                        photo = load_image(src, name="photo" if restorer else None)
                    loaded.append((i, photo, restorer.global_input(photo, False)[0] if restorer else photo))
                except Exception as exc:
                    outcomes[i] = Outcome(unit, False, [], 0.0, describe_failure(exc))
            if not loaded:
                return [outcomes[i] for i in range(len(units))]
            try:
                if restorer is not None:
                    stage1 = restorer.restore_global_many([x for _, _, x in loaded])
                else:
                    from pipelines.colorization.pipeline import Colorizer

                    model, factor, post_process = colorize_settings(Path(units[0].input), self.args)
                    colored = Colorizer.from_pretrained(model).colorize_arrays([p for _, p, _ in loaded], factor,
                                                                              post_process)  # fmt: skip
            except Exception:
                # the batch as a whole failed (e.g. out of memory): each photo on its own says why
                return [outcomes.get(i) or self._timed(u, self._item) for i, u in enumerate(units)]
            shared = (time.perf_counter() - start) / len(loaded)
            for n, (i, photo, _) in enumerate(loaded):
                t = time.perf_counter()
                try:
                    if restorer is not None:
                        args = self.args
                        image = restorer(photo, False, args.hr, not args.no_faces, restored_global=stage1[n]).image
                    else:
                        image = colored[n]
                    target = save_png(image, stage / output_names(units[i].input, self.args)[0])
                    outcomes[i] = Outcome(units[i], True, [storage.publish(target, self.output)],
                                          shared + time.perf_counter() - t)  # fmt: skip
                except Exception as exc:
                    outcomes[i] = Outcome(units[i], False, [], shared + time.perf_counter() - t, describe_failure(exc))
        return [outcomes[i] for i in range(len(units))]
