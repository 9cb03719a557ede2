"""Throughput of a batch job on Ray (``python -m pipelines restore DIR -o OUT --ray``) with 1 and 2 workers.

    python -m bench.bench_scale                  # 16 photos of 256x192, restore, fixture weights
    python -m bench.bench_scale --photos 32 --side 512

One local Ray instance (as many CPUs as the machine) serves both runs; each run is a fresh output
folder, so every item is processed. items/s counts the whole job: planning, starting the workers
(each loads its networks once), every photo, the manifest. The note gives the load average: on a
shared machine the wall time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--side", type=int, default=256, help="long side of the photos (pixels)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import ray

    from bench.bench_restoration import bench_weights
    from pipelines.__main__ import main as cli
    from pipelines.common.media import save_png

    bench_weights()
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    rng = np.random.default_rng(0)
    height = args.side * 3 // 4
    (root / "in").mkdir()
    for i in range(args.photos):
        gray = rng.integers(30, 225, (height, args.side, 1), dtype=np.uint8)
        save_png(np.repeat(gray, 3, axis=2), root / "in" / f"p{i:03d}.png")
    repo = str(Path(__file__).resolve().parents[1])
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": repo}})  # fmt: skip
    rows = []
    try:
        for workers in args.workers:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()) as err:
                code = cli(["restore", str(root / "in"), "-o", str(root / f"out{workers}"), "--ray",
                            "--workers", str(workers), "--quiet"])  # fmt: skip
            seconds = time.perf_counter() - start
            if code != 0:
                raise SystemExit(err.getvalue())
            rows.append((workers, seconds, load, os.getloadavg()[0]))
    finally:
        ray.shutdown()
    print(f"\nRestore (quality, faces on), {args.photos} photos of {args.side}x{height}, fixture weights, "
          f"{os.cpu_count()} CPUs, 1 thread per worker\n")  # fmt: skip
    print("| workers | job wall s | items/s | load average (start -> end) |")
    print("|---|---|---|---|")
    for workers, seconds, before, after in rows:
        print(f"| {workers} | {seconds:.1f} | {args.photos / seconds:.2f} | {before:.1f} -> {after:.1f} |")


if __name__ == "__main__":
    main()
