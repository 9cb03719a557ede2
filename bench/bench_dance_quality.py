"""Held-out quality of Dance training after fixed step counts, so a change in training shows up as a number.

    python -m bench.bench_dance_quality [--presets tiny,fast] [--steps 100,300] [--threads 2]

For each preset and step count, a fresh run trains the offline sample target (procedural dancer,
no download) with the preset's settings and the default schedule (body generator, then the face
GAN in the last ``face_fraction`` of the steps), and reports the trainer's own figures after each
stage: SSIM and LPIPS of the held-out frames (the contiguous end of the video) regenerated from
their poses, plus the held-out L1 and the training time. LPIPS needs ``edn/lpips_alex`` and
``edn/alexnet`` in the weights cache; otherwise the table says it is unavailable (SSIM always).
With fixture LPIPS weights the LPIPS column is marked as not real. The seed is fixed, so the same
code gives the same numbers on the same machine (up to thread scheduling in float sums).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.harness import RESULTS_DIR, machine_description
from pipelines.dance import pipeline
from pipelines.dance.target import prepare_target_from_arrays, target_training_data
from pipelines.dance.trainer import Trainer


def run(preset: str, steps: int, target: Path, device: str) -> list[str]:
    """Train ``steps`` steps from scratch; one table row per measured stage."""
    config = pipeline.train_config(preset, minutes=24 * 60, max_steps=steps, device=device, seed=0,
                                   eval_every=steps, preview_every=steps, checkpoint_every=steps)  # fmt: skip
    job = target / "job"
    for stale in job.glob("*"):
        stale.unlink()
    data = target_training_data(target, config)
    start = time.perf_counter()
    trainer = Trainer(target, config, data)
    status = trainer.run()
    seconds = time.perf_counter() - start
    l1 = status.heldout_l1[-1][1]
    rows = []
    for q in status.quality:
        lpips = f"{q['lpips']:.4f}" if q["lpips"] is not None else "n/a"
        note = q["lpips_note"] if q["lpips"] is None or q["lpips_note"] else ""
        rows.append(f"| {preset} | {config.width}x{config.height} | {steps} | {q['stage']} (step {q['step']}) | "
                    f"{q['ssim']:.4f} | {lpips} | {l1:.4f} | {q['frames']} | {seconds:.0f} | {note} |")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,fast", help="training presets (pipelines.dance.pipeline.PRESETS)")
    parser.add_argument("--steps", default="100,300", help="step counts, each a fresh run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: the best available)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    header = [
        f"### Dance held-out quality (sample target) — {machine_description()}",
        "",
        "| preset | size | steps | after stage | SSIM | LPIPS | held-out L1 (end) | held-out frames | train s | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        frames, poses, fps = pipeline.sample_target_arrays()
        target = Path(tmp) / "sample"
        prepare_target_from_arrays(target, frames, poses, name="bench", fps=fps, source="sample")
        for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
            for steps in [int(s) for s in args.steps.split(",") if s.strip()]:
                rows += run(preset, steps, target, device)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"dance_quality-{torch.device(device).type}.md"
    path.write_text("\n".join(header + rows) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
