"""Command-line flags of the Ray mode (kept apart so the plain CLI never imports Ray)."""

from __future__ import annotations

import argparse

COMMANDS = ("restore", "colorize", "nostalgia", "story")
LOCAL = "local"


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the flags that only mean something with it."""
    group = parser.add_argument_group("batch jobs on Ray (pip install -r requirements-scale.txt)")
    group.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                       help="run on Ray: alone, a local Ray instance; with an address (e.g. 10.0.0.5:6379 or "
                            "ray://head:10001), that cluster. Inputs and -o may then be fsspec URLs")  # fmt: skip
    group.add_argument("--workers", type=int, help="number of workers (default: one per GPU, else one per CPU)")
    group.add_argument("--gpus-per-worker", type=float,
                       help="GPUs per worker (default: 1 when the cluster has GPUs, else 0 = CPU workers)")  # fmt: skip
    group.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per worker (default 1)")
    group.add_argument("--batch-size", type=int,
                       help="photos per forward pass for restore and colorize (default: 8 on GPU workers, 1 on "
                            "CPU ones, where batching gains nothing and 1 gives the plain CLI's exact bytes)")  # fmt: skip
    group.add_argument("--chunk-frames", type=int,
                       help="frames per video chunk (default: about two chunks per worker, at least 64 frames)")  # fmt: skip
    group.add_argument("--retry-failed", action="store_true", help="retry the inputs the manifest lists as failed")


def validate(args: argparse.Namespace) -> str | None:
    """A usage error message for the Ray flags, or None."""
    for flag in ("workers", "batch_size", "chunk_frames"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            return f"--{flag.replace('_', '-')} must be at least 1"
    if (args.gpus_per_worker or 0) < 0 or args.cpus_per_worker <= 0:
        return "--gpus-per-worker must be >= 0 and --cpus-per-worker > 0"
    return None
