"""Time Animate (TPSMM vox-256) per output frame with fixture weights, against the original's 1.79 s/frame.

    python -m bench.bench_animation                       # CPU, 16 frames, 2 threads
    python -m bench.bench_animation --threads 1 --frames 8 --repeats 1
    python -m bench.bench_animation --device cuda  # GPU (batched; auto = half-precision autocast)

Rows:
* ``original loop``: the demo's ``make_animation`` order of work (one frame at a time; keypoints, the
  whole dense motion network and the whole inpainting network, encoder included, per frame) run with
  this project's networks, which are bit-identical to the original's (the parity cases) and so cost the
  same: the same-machine, same-load baseline for the speed-up.
* ``project``: :meth:`TPSMMPipeline.animate_arrays` (``inference_mode``, frames batched through all three
  networks, the source keypoints / down-sampled source / source heatmaps / inpainting encoder features
  computed once), ``exact`` (float32), then ``auto`` precision (``pipelines.common.precision``:
  bf16 on CPUs with AVX512_BF16/AMX where the policy allows; reported with its max abs deviation).
On a shared CPU (load average above the core count) wall time measures the neighbours too; the note
gives this process's CPU seconds per frame, which still measure the work.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.harness import Bench
from pipelines.animation.config import PIPELINE_NETWORKS, get_config
from pipelines.animation.pipeline import TPSMMPipeline, normalize_kp
from pipelines.common import precision as precisions
from weights.fixture import fixture_like

ORIGINAL_S_PER_FRAME = 1.79  # shared/BENCHMARKS.md: make_animation, relative, vox-256, 2 vCPU EPYC, 2 threads


def _networks(device: torch.device) -> dict[str, torch.nn.Module]:
    cfg = get_config("vox")
    nets = {name: cfg.build(name) for name in PIPELINE_NETWORKS}
    for name, net in nets.items():
        net.load_state_dict(fixture_like(net, f"bench/{name}"), strict=True)
        net.to(device).eval()
    return nets


def _frames(n: int, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A smooth textured source and n slowly shifting driving frames (content does not change the cost)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + 2 * yy), np.cos(5 * yy), xx * yy], -1) * 0.4 + 0.5
    source = np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1)
    driving = [np.clip(np.roll(base, 2 * i, axis=1) + rng.normal(0, 0.02, base.shape), 0, 1) for i in range(n)]
    return source, driving


def original_loop(nets: dict[str, torch.nn.Module], source: np.ndarray, driving: list[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """The demo's per-frame order of work (no batching, no reuse of source-side results)."""
    kp_det, dense, inpaint = nets["kp_detector"], nets["dense_motion_network"], nets["inpainting_network"]
    with torch.no_grad():
        src = torch.tensor(source[None].astype(np.float32)).permute(0, 3, 1, 2).to(device)
        drv = torch.tensor(np.array(driving)[None].astype(np.float32)).permute(0, 4, 1, 2, 3).to(device)
        kp_source = kp_det(src)
        kp_initial = kp_det(drv[:, :, 0])
        out = []
        for t in range(drv.shape[2]):
            kp_norm = normalize_kp("relative", kp_source, kp_det(drv[:, :, t]), kp_initial, None)
            motion = dense(src, kp_norm, kp_source)
            out.append(inpaint(src, motion).permute(0, 2, 3, 1)[0].cpu().numpy())
    return out


def _timed(bench: Bench, name: str, size: str, fn: Callable[[], object], frames: int, note: str = "", **kw) -> None:
    spent: list[float] = []

    def call() -> None:
        start = time.process_time()
        fn()
        spent.append(time.process_time() - start)

    load = os.getloadavg()[0]
    row = bench.time(name, size, call, per=frames, baseline_s=ORIGINAL_S_PER_FRAME, **kw)
    row.note = f"{note + '; ' if note else ''}CPU {min(spent) / frames:.2f} s/frame; load avg {load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=None, help="frames per batch (default: the pipeline's, 1 on CPU, 8 on GPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-original", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bench = Bench("Animate (TPSMM vox-256)", device=device)
    nets = _networks(device)
    source, driving = _frames(args.frames, args.size)
    size = f"{args.size}x{args.size}, {args.frames} fr"
    kw = {"repeats": args.repeats, "warmup": args.warmup}

    if not args.skip_original:
        _timed(bench, "original loop (per frame, same networks)", size, lambda: original_loop(nets, source, driving, device), args.frames, **kw)

    cfg = get_config("vox")
    pipe = TPSMMPipeline(cfg, **nets, device=device, batch_size=args.batch, precision="exact")  # type: ignore[arg-type]
    args.batch = pipe.batch_size
    reference = pipe.animate_arrays(source, driving).frames
    _timed(bench, f"project fp32, batch {args.batch}", size, lambda: pipe.animate_arrays(source, driving), args.frames, "exact", **kw)

    pipe_auto = TPSMMPipeline(cfg, **nets, device=device, batch_size=args.batch, precision="auto")  # type: ignore[arg-type]
    dev = np.abs(pipe_auto.animate_arrays(source, driving).frames - reference).max()
    _timed(bench, f"project auto precision ({precisions.describe(device, 'auto')}), batch {args.batch}", size,
           lambda: pipe_auto.animate_arrays(source, driving), args.frames, f"max dev {dev:.1e}", **kw)  # fmt: skip
    bench.write("animation")


if __name__ == "__main__":
    main()
