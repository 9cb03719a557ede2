"""Benchmark of the Dance GAN: generator time per frame, training step time, transfer fps.

    python -m bench.bench_dance [--threads 2] [--quick]

Generators use fixture weights (speed does not depend on the values). Baselines are the
originals' timings in ``shared/BENCHMARKS.md`` (EDN global generator 1.81 s per 512x256 frame,
local enhancer 3.15 s per 1024x512 frame, face generator 0.11 s per 128x128 face, on the build
machine's 2 vCPUs). Training and transfer have no published baseline.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from bench.harness import Bench
from pipelines.dance import pipeline
from pipelines.dance.networks import build_face_generator, build_global_generator, build_local_enhancer
from pipelines.dance.target import prepare_target_from_arrays, target_training_data
from pipelines.dance.trainer import Trainer
from pipelines.dance.transfer import DanceTransferPipeline
from weights.fixture import fixture_like


def _loaded(net: torch.nn.Module, salt: str, device: torch.device) -> torch.nn.Module:
    net.load_state_dict(fixture_like(net, salt))
    return net.to(device).eval().requires_grad_(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="skip the 1024x512 local enhancer")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per preset")
    parser.add_argument("--presets", default="tiny,fast,paper", help="training presets to time; transfer uses the last")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench = Bench("Dance (Everybody Dance Now)")
    device = bench.device

    with torch.no_grad():
        g = _loaded(build_global_generator(), "bench", device)
        x = torch.rand(1, 6, 256, 512, device=device)
        bench.time("global generator (ngf 64, 4 down, 9 blocks)", "512x256", lambda: g(x), baseline_s=1.81)
        face = _loaded(build_face_generator(), "bench", device)
        xf = torch.rand(1, 6, 128, 128, device=device)
        bench.time("face residual generator", "128x128", lambda: face(xf), baseline_s=0.11)
        if not args.quick:
            local = _loaded(build_local_enhancer(), "bench", device)
            xl = torch.rand(1, 6, 512, 1024, device=device)
            bench.time("local enhancer (ngf 32)", "1024x512", lambda: local(xl), repeats=1, baseline_s=3.15)

    with tempfile.TemporaryDirectory() as tmp:
        frames, poses, fps = pipeline.sample_target_arrays()
        target = Path(tmp) / "sample"
        prepare_target_from_arrays(target, frames, poses, name="bench", fps=fps, source="sample")
        presets = [p.strip() for p in args.presets.split(",") if p.strip()]
        for preset in presets:
            shutil.rmtree(target / "job", ignore_errors=True)  # each preset starts fresh
            config = pipeline.train_config(preset, minutes=60, max_steps=10_000, device=str(device))
            start = time.perf_counter()
            data = target_training_data(target, config)
            prep = time.perf_counter() - start
            trainer = Trainer(target, config, data)

            def steps(trainer: Trainer = trainer) -> None:
                for _ in range(args.steps):
                    trainer.train_step()

            bench.time(f"training step, preset {preset} (batch {config.batch_size})", f"{config.width}x{config.height}",
                       steps, repeats=1, per=args.steps, note=f"global stage; label rendering {prep:.1f} s for {len(data)} frames")  # fmt: skip
            trainer.step = config.max_steps  # the face stage: G frozen, face GAN trained
            bench.time(f"training step, preset {preset}, face stage", f"{config.width}x{config.height}",
                       steps, repeats=1, per=args.steps)  # fmt: skip
            trainer.step = 0
            trainer.save_checkpoint()
            if preset != presets[-1]:
                continue
            motion = pipeline.sample_motion_arrays()
            pipe = DanceTransferPipeline.from_dir(target, device)
            n = len(motion[0])
            row = bench.time("transfer: sample motion, render + generate + encode", f"{n} frames {config.width}x{config.height}",
                             lambda pipe=pipe, motion=motion: pipe(motion=motion), repeats=1, per=n,
                             note="seconds per frame (no pose estimation)")  # fmt: skip
            print(f"transfer fps: {1.0 / row.seconds:.2f}")
    bench.write("dance")


if __name__ == "__main__":
    main()
