"""Command line: ``python -m pipelines COMMAND INPUT... -o OUTDIR [options]``.

Commands: ``restore``, ``colorize``, ``animate``, ``dance``, ``nostalgia`` and ``story``, plus
``dance-train`` (train a Dance target from one video, on one or several GPUs). Inputs are
files or folders (a folder contributes the files the command can take: photos, and for ``colorize``
and ``dance`` videos; ``--recursive`` walks sub-folders). Each input is processed on its own: a bad
file is reported and the run goes on; the summary at the end lists every failure and the exit status
is 1 when any input failed (2 for a usage error). Existing results are never replaced without
``--overwrite``: an input whose outputs exist fails before any work is spent on it. When any
checkpoint the command will use is a fixture (``python -m weights fixture``), one warning line says
so first: the results are then not real.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pipelines.common.progress import ProgressFn

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on a terminal (redrawn in place), plain lines when piped (one per
    new step message, so logs stay short)."""

    def __init__(self, stream: TextIO, index: int, total: int, name: str, quiet: bool = False):
        self.stream, self.prefix, self.quiet = stream, f"[{index}/{total}] {name}", quiet
        self.tty = stream.isatty()
        self.last_message = None

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.quiet:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.tty:
            filled = int(fraction * 24)
            line = f"\r{self.prefix} [{'#' * filled}{'.' * (24 - filled)}] {fraction * 100:3.0f}% {message}"
            self.stream.write(line[:160].ljust(100))
            self.stream.flush()
        elif (key := re.sub(r"\d+", "#", message.split(":")[0])) != self.last_message:
            self.last_message = key
            self.stream.write(f"{self.prefix} {fraction * 100:3.0f}% {message}\n")
            self.stream.flush()

    def end(self, text: str) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\r" + " " * 110 + "\r")
        self.stream.write(f"{self.prefix}: {text}\n")
        self.stream.flush()


# --------------------------------------------------------------------------- tasks


@dataclass
class Task:
    """One command: which files it takes from folders, what it writes for an input, how it runs."""

    name: str
    help: str
    extensions: set[str]
    outputs: Callable[[Path, Path, argparse.Namespace], list[Path]]
    run: Callable[[Path, Path, argparse.Namespace, ProgressFn], list[Path]]
    checkpoints: Callable[[argparse.Namespace], list[str]]  # registry ids the command may load


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _restore_outputs(src: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    return [out / f"{src.stem}.restored.png"]


def _restore(src: Path, out: Path, args: argparse.Namespace, progress: ProgressFn) -> list[Path]:
    from pipelines.common.media import save_png
    from pipelines.restoration.pipeline import restore

    result = restore(src, with_scratch=args.scratch, hr=args.hr, enhance_faces=not args.no_faces, progress=progress)
    return [save_png(result.image, _restore_outputs(src, out, args)[0])]


def _colorize_outputs(src: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    return [out / f"{src.stem}.colorized{'.mp4' if _is_video(src) else '.png'}"]


def colorize_settings(src: Path, args: argparse.Namespace) -> tuple[str, int, bool]:
    """(model, render factor, post-process) of ``colorize`` for ``src``, a photo or a video (the Ray mode uses it too)."""
    if _is_video(src):
        return args.model or "video", args.render_factor or 21, not args.no_post_process
    return args.model or "artistic", args.render_factor or 35, not args.no_post_process


def _colorize(src: Path, out: Path, args: argparse.Namespace, progress: ProgressFn) -> list[Path]:
    from pipelines.colorization.pipeline import colorize, colorize_video
    from pipelines.common.media import save_png

    target = _colorize_outputs(src, out, args)[0]
    model, factor, post_process = colorize_settings(src, args)
    if _is_video(src):
        colorize_video(src, model, factor, post_process, output=target, first_seconds=args.first_seconds or None,
                       progress=progress)  # fmt: skip
        return [target]
    progress(0.1, "colorizing")
    image = colorize(src, model, factor, post_process)
    return [save_png(image, target)]


def _driving(args: argparse.Namespace) -> Path:
    if args.driving:
        return Path(args.driving)
    from pipelines.nostalgia.motion import preset_driving_video

    return preset_driving_video(args.preset, args.motion_seconds, args.motion_fps)


def _animate_outputs(src: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    paths = [out / f"{src.stem}.animated.mp4"]
    return paths + ([out / f"{src.stem}.side_by_side.mp4"] if args.side_by_side else [])


def _animate(src: Path, out: Path, args: argparse.Namespace, progress: ProgressFn) -> list[Path]:
    from pipelines.animation.pipeline import animate

    result = animate(src, _driving(args), args.model, args.mode, args.best_frame, face_index=args.face - 1,
                     side_by_side=args.side_by_side, first_seconds=args.first_seconds or None, progress=progress)  # fmt: skip
    planned = _animate_outputs(src, out, args)
    written = [Path(shutil.copyfile(result.video, planned[0]))]
    if result.side_by_side is not None and args.side_by_side:
        written.append(Path(shutil.copyfile(result.side_by_side, planned[1])))
    return written


def _dance_outputs(src: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    return [out / f"{src.stem}.dance.mp4"]


def _dance(src: Path, out: Path, args: argparse.Namespace, progress: ProgressFn) -> list[Path]:
    from pipelines.dance.pipeline import transfer

    result = transfer(args.target, src, side_by_side=args.side_by_side, normalize=not args.no_normalize,
                      first_seconds=args.first_seconds or None, progress=progress)  # fmt: skip
    return [Path(shutil.copyfile(result.path, _dance_outputs(src, out, args)[0]))]


def _nostalgia_options(args: argparse.Namespace) -> Any:
    from pipelines.nostalgia.config import NostalgiaOptions

    return NostalgiaOptions(
        restore=not args.no_restore, scratches=args.scratches, hr=args.hr, enhance_faces=not args.no_faces,
        colorize=args.colorize, colorize_model=args.model, render_factor=args.render_factor,
        animate=not args.no_animate, driving=args.driving, preset=args.preset, motion_seconds=args.motion_seconds,
        motion_fps=args.motion_fps, face_index=args.face - 1, all_faces=args.all_faces, max_side=args.max_side,
    ).validated()  # fmt: skip


def _nostalgia_outputs(src: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    names = [f"{src.stem}.restored.png", f"{src.stem}.colorized.png", f"{src.stem}.animated.mp4", f"{src.stem}.png"]
    return [out / n for n in names]


def _nostalgia(src: Path, out: Path, args: argparse.Namespace, progress: ProgressFn) -> list[Path]:
    from pipelines.nostalgia.pipeline import NostalgiaPipeline

    options = _nostalgia_options(args)
    result = NostalgiaPipeline(options)(src, options, progress=progress)
    return result.save(out, src.stem, overwrite=args.overwrite)


def _story_outputs(src: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    return [out / f"{src.stem}.story.mp4"]


def _story(src: Path, out: Path, args: argparse.Namespace, progress: ProgressFn) -> list[Path]:
    from pipelines.nostalgia.config import StoryOptions
    from pipelines.nostalgia.story import story

    text = Path(args.text_file).read_text(encoding="utf-8") if args.text_file else (args.text or "")
    sopts = StoryOptions(voice=args.voice, language=args.language, captions=not args.no_captions)
    result = story(src, text, args.recording, options=_nostalgia_options(args), story_options=sopts, progress=progress)
    return [Path(shutil.copyfile(result.video, _story_outputs(src, out, args)[0]))]


def _restore_checkpoints(args: argparse.Namespace) -> list[str]:
    from pipelines.restoration.pipeline import RestorationPipeline

    return RestorationPipeline.checkpoints(args.scratch, args.hr, not args.no_faces)


def _colorize_checkpoints(args: argparse.Namespace) -> list[str]:
    from pipelines.colorization.config import VARIANTS

    names = [args.model] if args.model else ["artistic", "video"]  # photos / videos by default
    return [VARIANTS[n].checkpoint_id for n in names]


def _animate_checkpoints(args: argparse.Namespace) -> list[str]:
    from pipelines.animation.config import get_config
    from pipelines.common.faces import FACE_ALIGNMENT_CHECKPOINTS

    return [get_config(args.model).checkpoint_id, *(FACE_ALIGNMENT_CHECKPOINTS if args.best_frame else ())]


def _dance_checkpoints(args: argparse.Namespace) -> list[str]:
    from pipelines.common.faces import FACE_ALIGNMENT_CHECKPOINTS

    return ["edn/openpose_body", *FACE_ALIGNMENT_CHECKPOINTS]  # face points: face-alignment when present


def _nostalgia_checkpoints(args: argparse.Namespace) -> list[str]:
    from pipelines.nostalgia.pipeline import NostalgiaPipeline

    return NostalgiaPipeline.checkpoints(_nostalgia_options(args))


TASKS: dict[str, Task] = {
    "restore": Task("restore", "restore old photos (Bringing Old Photos Back to Life)", IMAGE_EXTENSIONS,
                    _restore_outputs, _restore, _restore_checkpoints),
    "colorize": Task("colorize", "colorize photos and videos (DeOldify)", IMAGE_EXTENSIONS | VIDEO_EXTENSIONS,
                     _colorize_outputs, _colorize, _colorize_checkpoints),
    "animate": Task("animate", "animate a face in photos by a driving video (TPSMM)", IMAGE_EXTENSIONS,
                    _animate_outputs, _animate, _animate_checkpoints),
    "dance": Task("dance", "make a trained target dance like each input video (Everybody Dance Now)",
                  VIDEO_EXTENSIONS, _dance_outputs, _dance, _dance_checkpoints),
    "nostalgia": Task("nostalgia", "one click: restore, colorize and animate the faces of photos", IMAGE_EXTENSIONS,
                      _nostalgia_outputs, _nostalgia, _nostalgia_checkpoints),
    "story": Task("story", "a narrated, captioned video of each photo telling a text", IMAGE_EXTENSIONS,
                  _story_outputs, _story, _nostalgia_checkpoints),
}  # fmt: skip


# --------------------------------------------------------------------------- arguments


def _add_nostalgia_options(p: argparse.ArgumentParser) -> None:
    from pipelines.nostalgia.config import CHOICES, NostalgiaOptions

    opts = NostalgiaOptions()
    p.add_argument("--no-restore", action="store_true", help="skip the restoration step")
    p.add_argument("--scratches", choices=CHOICES, default=opts.scratches, help="scratch repair")
    p.add_argument("--colorize", choices=CHOICES, default=opts.colorize, help="colorization")
    p.add_argument("--no-animate", action="store_true", help="skip the animation step")
    p.add_argument("--all-faces", action="store_true", help="animate every face in one video")
    p.add_argument("--max-side", type=int, default=opts.max_side, help="long side the chain works at (pixels)")


def _path_or_url(text: str) -> Path | str:
    """A local path, or a URL kept as text (``Path`` would fold its ``//``); URLs need ``--ray``."""
    return text if "://" in text else Path(text)


def build_parser() -> argparse.ArgumentParser:
    """Model names, choices and defaults come from the configs (``NostalgiaOptions``,
    ``StoryOptions``, DeOldify's ``VARIANTS``, TPSMM's ``CONFIGS`` and ``MODES``, the precision
    modes, Dance's presets and training defaults), not from here."""
    from pipelines.animation.config import CONFIGS
    from pipelines.animation.pipeline import MODES
    from pipelines.colorization.config import DEFAULT_RENDER_FACTOR_IMAGE, DEFAULT_RENDER_FACTOR_VIDEO, VARIANTS
    from pipelines.common.precision import MODES as PRECISION_MODES
    from pipelines.nostalgia.config import DRIVING_PRESETS, VOICES, NostalgiaOptions, StoryOptions
    from pipelines.scale.options import COMMANDS as SCALE_COMMANDS
    from pipelines.scale.options import add_scale_arguments

    chain, story = NostalgiaOptions(), StoryOptions()

    parser = argparse.ArgumentParser(
        prog="python -m pipelines",
        description="Nostalgia Studio from the command line: restore, colorize, animate, dance, one-click "
        "nostalgia and narrated stories, on files or whole folders.",
        epilog="Exit status: 0 when every input succeeded, 1 when any failed, 2 for a usage error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for task in TASKS.values():
        p = sub.add_parser(task.name, help=task.help, description=task.help)
        p.add_argument("inputs", nargs="+", type=_path_or_url, metavar="INPUT", help="files or folders")
        p.add_argument("-o", "--output", type=_path_or_url, required=True, metavar="OUTDIR",
                       help="folder for the results")  # fmt: skip
        p.add_argument("--overwrite", action="store_true", help="replace existing results")
        p.add_argument("--recursive", action="store_true", help="also take files from sub-folders")
        p.add_argument("--device", help="cuda, cuda:1, mps or cpu (default: the best available)")
        p.add_argument("--precision", choices=PRECISION_MODES, default=None,
                       help="auto (default): bf16/fp16 where the CPU/GPU has it and each network's policy allows; "
                            "exact: float32, the originals' numbers")  # fmt: skip
        p.add_argument("--quiet", action="store_true", help="no progress, only the per-input results")
        p.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")
        if task.name in ("restore", "nostalgia", "story"):
            if task.name == "restore":
                p.add_argument("--scratch", action="store_true", help="repair scratches")
            p.add_argument("--hr", action="store_true", help="high-resolution mode (512 px faces)")
            p.add_argument("--no-faces", action="store_true", help="do not enhance faces")
        if task.name in ("colorize", "nostalgia", "story"):
            default_model = None if task.name == "colorize" else chain.colorize_model
            p.add_argument("--model", choices=tuple(VARIANTS), default=default_model,
                           help="DeOldify generator (colorize: artistic for photos, video for videos)")  # fmt: skip
            default_rf = None if task.name == "colorize" else chain.render_factor
            p.add_argument("--render-factor", type=int, default=default_rf,
                           help=f"DeOldify render factor (colorize: {DEFAULT_RENDER_FACTOR_IMAGE} for photos, "
                                f"{DEFAULT_RENDER_FACTOR_VIDEO} for videos)")  # fmt: skip
        if task.name == "colorize":
            p.add_argument("--no-post-process", action="store_true", help="keep the network's raw colours")
        if task.name in ("animate", "nostalgia", "story"):
            p.add_argument("--driving", help="driving video (default: the offline preset motion)")
            p.add_argument("--preset", choices=tuple(DRIVING_PRESETS), default=chain.preset,
                           help="offline driving motion when no --driving is given")  # fmt: skip
            p.add_argument("--motion-seconds", type=float, default=chain.motion_seconds, help="length of the preset motion")
            p.add_argument("--motion-fps", type=float, default=chain.motion_fps, help="fps of the preset motion")
            p.add_argument("--face", type=int, default=chain.face_index + 1, help="face to animate, 1 = largest")
        if task.name == "animate":
            p.add_argument("--model", choices=tuple(CONFIGS), default=chain.animation_model, help="TPSMM model")
            p.add_argument("--mode", choices=MODES, default=chain.animation_mode)
            p.add_argument("--best-frame", action="store_true", help="start from the best-matching driving frame")
        if task.name in ("animate", "dance"):
            p.add_argument("--side-by-side", action="store_true", help="also write a (driving | result) video")
        if task.name in ("animate", "colorize", "dance"):
            what = {"animate": "driving video", "colorize": "video (photos are unaffected)", "dance": "source video"}
            p.add_argument("--first-seconds", type=float, default=0, metavar="N",
                           help=f"use only the first N seconds of the {what[task.name]} (default 0: the whole clip)")  # fmt: skip
        if task.name == "dance":
            p.add_argument("--target", required=True, help="id of a trained target (see the Dance tab)")
            p.add_argument("--no-normalize", action="store_true", help="do not normalise the source poses")
        if task.name in ("nostalgia", "story"):
            _add_nostalgia_options(p)
        if task.name in SCALE_COMMANDS:
            add_scale_arguments(p)
        if task.name == "story":
            text = p.add_mutually_exclusive_group()
            text.add_argument("--text", help="the story's text (captions and narration)")
            text.add_argument("--text-file", help="read the text from this UTF-8 file")
            p.add_argument("--recording", help="your own narration (any audio file) instead of a synthetic voice")
            p.add_argument("--voice", choices=VOICES, default=story.voice)
            p.add_argument("--language", default=story.language, help="espeak-ng voice, e.g. en, de, fr, pl")
            p.add_argument("--no-captions", action="store_true", help="do not burn the text into the video")
    _add_dance_train(sub)
    from pipelines.time_machine import cli as time_machine_cli

    time_machine_cli.add_parser(sub)
    return parser


def _add_dance_train(sub: Any) -> None:
    from pipelines.dance.pipeline import DEFAULT_MINUTES, DEFAULT_PRESET, PRESETS

    help_text = "train a Dance target (Everybody Dance Now) on one video, on one or several GPUs"
    p = sub.add_parser("dance-train", help=help_text, description=help_text + ". Several GPUs: --nproc N "
                       "(PyTorch DistributedDataParallel under torchrun; the batch is the global batch).")  # fmt: skip
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("video", nargs="?", type=Path, help="video of the target person (one person, whole body)")
    source.add_argument("--sample", action="store_true", help="the offline sample dancer")
    source.add_argument("--target", help="continue training this target id")
    p.add_argument("--name", help="name of a new target")
    p.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET, help="model size")
    p.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="time budget of this session")
    p.add_argument("--steps", type=int, help="step cap of the run (default: the preset's)")
    p.add_argument("--nproc", type=int, default=1, help="training processes, one per GPU (torchrun)")
    p.add_argument("--batch", type=int, help="global batch (default: the preset's per-GPU batch x nproc)")
    p.add_argument("--no-amp", action="store_true", help="full fp32 on CUDA (default: bf16, else fp16 autocast)")
    p.add_argument("--restart", action="store_true", help="forget an earlier run of the target")
    p.add_argument("--device", help="cuda or cpu (default: the best available)")


def run_dance_train(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Train in the foreground (``--nproc`` > 1: under torchrun) and print the final status line."""
    import logging

    from pipelines.common.errors import NostalgiaError
    from pipelines.dance import pipeline

    stream = stream or sys.stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=stream)
    try:
        target = args.target or pipeline.create_target(args.video, name=args.name, sample=args.sample)
        overrides: dict[str, Any] = {"device": args.device, "amp": not args.no_amp}
        if args.steps:
            overrides["max_steps"] = args.steps
        per_process = pipeline.train_config(args.preset, minutes=args.minutes, **overrides).batch_size
        overrides["batch_size"] = args.batch or per_process * args.nproc
        pipeline.train_target(target_id=target, preset=args.preset, minutes=args.minutes, resume=not args.restart,
                              background=False, nproc=args.nproc, **overrides)  # fmt: skip
    except NostalgiaError as exc:
        stream.write(f"error: {exc}\n")
        return 1
    stream.write(f"target {target}: {pipeline.training_status(target)['summary']}\n")
    return 0


# --------------------------------------------------------------------------- running


def collect_inputs(paths: Sequence[Path], extensions: set[str], recursive: bool) -> tuple[list[Path], list[Path]]:
    """(inputs to process, files skipped): explicit files always count; folders give the files whose
    extension the command takes (sorted), the others are listed as skipped. Missing paths are inputs
    too, so they are reported as failures."""
    inputs: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir()) if p.is_file())
            for p in found:
                if p.name.startswith("."):
                    continue
                (inputs if p.suffix.lower() in extensions else skipped).append(p)
        else:
            inputs.append(path)
    return list(dict.fromkeys(inputs)), skipped


def fixture_warning(args: argparse.Namespace) -> str | None:
    """One line naming the fixture checkpoints the command would use, or None when all are real."""
    from pipelines.common.errors import NostalgiaError
    from weights.store import any_fixture_in_use

    try:
        ids = TASKS[args.command].checkpoints(args)
    except (NostalgiaError, KeyError):  # bad options: the per-input run reports them
        return None
    fixtures = any_fixture_in_use(ids)
    if not fixtures:
        return None
    return (f"warning: fixture weights in use, outputs are not real ({', '.join(fixtures)}); "
            "run `python -m weights download all` for the published weights")  # fmt: skip


def describe_failure(exc: BaseException) -> str:
    """What the summary says about an input that failed: the message of an error the user can act on,
    else an internal error to report."""
    from pipelines.common.errors import NostalgiaError

    if isinstance(exc, (NostalgiaError, FileExistsError, OSError)):
        return str(exc)
    return f"internal error ({type(exc).__name__}: {exc}); rerun with --debug and report it"


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Process every input of ``args`` (see the module docstring); returns the exit status."""
    from pipelines.common import precision as precisions
    from pipelines.common.errors import NostalgiaError

    stream = stream or sys.stderr
    if getattr(args, "ray", None) is not None:
        from pipelines.scale.runner import run_on_ray

        return run_on_ray(args, stream)
    urls = [str(p) for p in (*args.inputs, args.output) if isinstance(p, str)]
    if urls:
        stream.write(f"{urls[0]}: URLs are read and written in the Ray mode only (add --ray).\n")
        return 2
    task = TASKS[args.command]
    if args.device:
        os.environ["NOSTALGIA_DEVICE"] = args.device
    inputs, skipped = collect_inputs(args.inputs, task.extensions, args.recursive)
    if not inputs:
        stream.write("No input files found (check the paths and the file types the command takes).\n")
        return 1
    if warning := fixture_warning(args):
        stream.write(warning + "\n")
    args.output.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    claimed: dict[Path, Path] = {}
    started = time.perf_counter()
    for i, src in enumerate(inputs, 1):
        progress = Progress(stream, i, len(inputs), src.name, args.quiet)
        try:
            planned = task.outputs(src, args.output, args)
            existing = [p for p in planned if p.exists()]
            if existing and not args.overwrite:
                raise FileExistsError(
                    f"{', '.join(p.name for p in existing)} already exist(s) in {args.output}; use --overwrite"
                )
            clash = [p for p in planned if p in claimed]
            if clash:
                raise FileExistsError(
                    f"{clash[0].name} is also the output of {claimed[clash[0]].name}; rename one input"
                )
            if not src.exists():
                raise NostalgiaError(f"{src}: file not found")
            t = time.perf_counter()
            with precisions.using(getattr(args, "precision", None)):
                written = task.run(src, args.output, args, progress)
            claimed.update({p: src for p in planned})
            progress.end(f"ok in {time.perf_counter() - t:.1f} s -> {', '.join(p.name for p in written)}")
        except KeyboardInterrupt:
            progress.end("interrupted")
            raise
        except Exception as exc:
            if args.debug and not isinstance(exc, (NostalgiaError, FileExistsError, OSError)):
                raise
            failures.append((src, describe_failure(exc)))
            progress.end(f"FAILED: {describe_failure(exc).split('; rerun with')[0]}")
    done = len(inputs) - len(failures)
    stream.write(f"\n{args.command}: {done} of {len(inputs)} input(s) done in {time.perf_counter() - started:.1f} s, "
                 f"results in {args.output}\n")  # fmt: skip
    if skipped:
        stream.write(f"Skipped {len(skipped)} file(s) that {args.command} does not take: "
                     f"{', '.join(p.name for p in skipped[:10])}{' ...' if len(skipped) > 10 else ''}\n")  # fmt: skip
    if failures:
        stream.write(f"{len(failures)} input(s) FAILED:\n")
        for src, why in failures:
            stream.write(f"  {src}: {why}\n")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dance-train":
        return run_dance_train(args)
    if args.command == "time-machine":
        from pipelines.time_machine import cli as time_machine_cli

        return time_machine_cli.run(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
