"""Time the whole Restore pipeline on CPU with fixture weights: 1 MP and 2560x1920, with and without scratches.

    python -m bench.bench_restoration                 # every configuration, each in its own process
    python -m bench.bench_restoration --one 2560x1920 --scratch

Each configuration runs in a fresh process so that its peak RSS is its own (peak RSS after the model build,
as in shared/BENCHMARKS.md). One warm-up call loads the networks; the timed call follows. The note gives
the process CPU seconds and the load average: on a shared machine wall time mostly measures the
neighbours, CPU time still measures the work.

The originals (shared/BENCHMARKS.md, same CPU kind): stage 1 quality 28.1 s at 864x1152; scratch 73 s at
768x768 and "does not fit in 23 GiB" at about 1 MP; a 2560x1920 photo with scratches would take about
30 minutes of attention even with unbounded memory. Fixture weights give no detectable face after stage 1,
so faces (stages 2-4) are timed separately on the photo itself (``--faces``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ORIGINAL_S = {
    ("quality", "1152x864"): 28.13,  # 864x1152 in BENCHMARKS.md (same pixel count)
    ("quality", "2560x1920"): 28.13 * 4.94,  # linear in pixels (fully convolutional): ~139 s
    ("scratch", "1152x864"): None,  # does not fit in 23 GiB
    ("scratch", "2560x1920"): 1800.0,  # ~30 min (lead's estimate; quadratic attention, unbounded memory)
}
CONFIGS = [("1152x864", False), ("1152x864", True), ("2560x1920", False), ("2560x1920", True)]


def bench_weights() -> Path:
    """A weights cache with fixture checkpoints for every Restore network (written once per machine)."""
    path = Path(os.environ.get("NOSTALGIA_BENCH_WEIGHTS", Path(tempfile.gettempdir()) / "nostalgia-bench-weights"))
    path.mkdir(parents=True, exist_ok=True)
    os.environ["NOSTALGIA_WEIGHTS_DIR"] = str(path)
    from pipelines.restoration.pipeline import RestorationPipeline
    from weights import registry, store

    for cid in RestorationPipeline.checkpoints(with_scratch=True, hr=False, enhance_faces=True):
        ckpt = registry.get(cid)
        if store.fixture_info(ckpt) is None:
            store.write_fixture(ckpt, salt="bench")
    return path


def old_photo(width: int, height: int, scratches: bool) -> np.ndarray:
    """The aged astronaut portrait (scikit-image), upscaled, with procedural scratches drawn at full size."""
    import skimage.data

    from pipelines.restoration.examples import age_photo

    clean = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.BICUBIC))
    return age_photo(clean, 7, scratches)


def run_one(size: str, scratch: bool, faces: bool) -> str:
    import resource

    from bench.harness import peak_rss_gib
    from pipelines.restoration.config import FACE_CHECKPOINTS
    from pipelines.restoration.pipeline import RestorationPipeline

    bench_weights()
    width, height = (int(v) for v in size.split("x"))
    photo = old_photo(width, height, scratch)
    pipe = RestorationPipeline(device="cpu")
    if faces:  # stages 2-4 alone: an identity stage 1 keeps the portrait's face detectable
        pipe.restore_global = lambda image, mask, hr: image  # type: ignore[method-assign]
        pipe.network(FACE_CHECKPOINTS[256])
    pipe(photo[:64, :64], with_scratch=scratch, enhance_faces=faces)  # warm-up: builds and loads the networks
    rss_models = peak_rss_gib()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = pipe(photo, with_scratch=scratch, enhance_faces=faces)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
    mode = "faces (stages 2-4)" if faces else ("scratch" if scratch else "quality")
    base = None if faces else ORIGINAL_S.get((mode, size))
    speed = f"{base / wall:.1f}x" if base else "-"
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items() if k != "total")
    return (
        f"| {mode} | {size} | {wall:.1f} | {cpu:.1f} | {peak:.2f} (models {rss_models:.2f}) | "
        f"{base if base else '-'} | {speed} | {result.strategy}; {len(result.faces)} face(s); {stages}; "
        f"load avg {os.getloadavg()[0]:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help="WxH: run one configuration in this process")
    parser.add_argument("--scratch", action="store_true")
    parser.add_argument("--faces", action="store_true", help="time stages 2-4 with an identity stage 1")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(run_one(args.one, args.scratch, args.faces), flush=True)
        return
    rows = [
        "| what | input | wall s | CPU s | peak RSS GiB | original s | speed-up (wall) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs = [[size, *(["--scratch"] if s else [])] for size, s in CONFIGS] + [["2560x1920", "--faces"]]
    for extra in runs:
        cmd = [sys.executable, "-m", "bench.bench_restoration", "--threads", str(args.threads), "--one", *extra]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(out, flush=True)
        rows.append(out)
    from bench.harness import RESULTS_DIR, machine_description

    text = f"### Restore pipeline, whole call — {machine_description()}\n\n" + "\n".join(rows) + "\n"
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "restoration-cpu.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
