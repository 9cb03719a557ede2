"""Benchmark DeOldify colorization: seconds per image, images/s, video frames/s, peak memory, flicker.

Not a test: run it by hand. Fixture weights (the reference formula, salt ``bench``) fill the
networks, so no checkpoint is needed; speed does not depend on the weight values.

    python bench/bench_colorization.py                              # CPU, artistic + stable, rf 35, 2 threads
    python bench/bench_colorization.py --variants fp32 fp32-cl auto-cl --models artistic
    python bench/bench_colorization.py --device cuda --variants fp32 auto-cl --batch 8 --video-frames 64
    python bench/bench_colorization.py --flicker-only               # chroma flicker with / without smoothing

Reported per model and variant: the whole still-image call (``colorize_arrays``: resizes, network,
post-process) on an 864x1152 photo like ``shared/BENCHMARKS.md``, as the median of ``--runs`` runs
after one warm-up, with the process CPU seconds beside it (on a shared machine wall time suffers
from other processes; CPU seconds / threads approximates the wall time of an idle machine), the
network alone, and peak memory (RSS on CPU, max allocated on CUDA).
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.colorization import pipeline as P
from pipelines.colorization.config import VARIANTS
from pipelines.colorization.networks import DeOldifyGenerator
from weights.fixture import fixture_like

VARIANT_SPECS = {  # name -> (precision mode, channels_last)
    "fp32": ("exact", False),
    "fp32-cl": ("exact", True),
    "auto-cl": ("auto", True),
}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def test_photo(height: int, width: int) -> np.ndarray:
    """A gray photo of the benchmark size (scikit-image's camera man, stretched)."""
    import skimage.data
    from PIL import Image

    gray = Image.fromarray(skimage.data.camera()).resize((width, height), Image.BICUBIC)
    return np.repeat(np.asarray(gray)[..., None], 3, axis=2)


def test_clip(n: int, side: int = 256, seed: int = 0) -> list[np.ndarray]:
    """An old-film-like gray clip: a slow pan (2 px per frame) across the camera-man photo with
    film grain and exposure flicker (+-4 %), the conditions under which per-frame colours shimmer."""
    import skimage.data

    rng = np.random.default_rng(seed)
    photo = skimage.data.camera().astype(np.float32)
    frames = []
    for i in range(n):
        x = 100 + 2 * i
        gain = 1.0 + 0.04 * rng.uniform(-1, 1)
        crop = photo[100 : 100 + side, x : x + side] * gain + rng.normal(0, 6, (side, side))
        frames.append(np.repeat(np.clip(crop, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return frames


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, runs: int) -> tuple[float, float]:
    """Median wall seconds and median process-CPU seconds of ``fn()`` after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(runs):
        sync(device)
        w, c = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def build(model: str, device: torch.device) -> DeOldifyGenerator:
    net = DeOldifyGenerator(VARIANTS[model]).eval()
    net.load_state_dict(fixture_like(net, f"bench/{model}"), strict=True)
    return net.to(device).requires_grad_(False)


def bench_model(model: str, args: argparse.Namespace, device: torch.device) -> list[str]:
    rows = []
    net = build(model, device)
    rss_model = peak_rss_gib()
    photo = test_photo(*args.size)
    rf = args.render_factor
    size = P.render_size(rf)
    for name in args.variants:
        precision, channels_last = VARIANT_SPECS[name]
        net = net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        col = P.Colorizer(net, VARIANTS[model], device, precision=precision, channels_last=channels_last)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        wall, cpu = timed(lambda col=col: col.colorize_arrays([photo], rf), device, args.runs)
        net_wall = math.nan
        if args.network_time:
            gray = [P.model_input(photo, size)]
            net_wall, _ = timed(lambda col=col, gray=gray: col.render(gray, rf), device, args.runs)
        mem = (
            f"{torch.cuda.max_memory_allocated() / (1 << 30):.2f} GiB GPU"
            if device.type == "cuda"
            else f"{peak_rss_gib():.2f} GiB RSS (model built: {rss_model:.2f})"
        )
        row = (
            f"| {model} | {name} | rf {rf} ({size}px), {args.size[1]}x{args.size[0]} | {wall:.2f} | {cpu:.2f} | "
            f"{net_wall:.2f} | {mem} |"
        )
        if device.type == "cuda" and args.batch > 1:
            batch = [photo] * args.batch
            bw, _ = timed(lambda col=col, batch=batch: col.colorize_arrays(batch, rf), device, args.runs)
            clip = test_clip(args.video_frames)
            vw, _ = timed(lambda col=col, clip=clip: list(col.colorize_frames(clip, P.DEFAULT_RENDER_FACTOR_VIDEO, batch_size=args.batch)), device, 1)
            row += f" {args.batch / bw:.1f} img/s (batch {args.batch}); video 256px rf 21: {len(clip) / vw:.1f} frames/s |"
        print(row, flush=True)
        rows.append(row)
    del net
    return rows


def flicker(args: argparse.Namespace, device: torch.device) -> None:
    """Chroma flicker (mean |frame-to-frame change| of U, V) without and with temporal smoothing."""
    model = args.flicker_model
    net = build(model, device)
    col = P.Colorizer(net, VARIANTS[model], device)
    clip = test_clip(args.flicker_frames)
    rf = args.flicker_render_factor
    print(f"flicker test clip: {len(clip)} frames 256x256 (2 px/frame pan, grain, exposure flicker), {model} fixture weights, rf {rf}")
    print(f"  input clip chroma flicker: {P.chroma_flicker(clip):.3f} (gray: 0)")
    for strength in (0.0, 0.5, 0.8):
        frames = list(col.colorize_frames(clip, rf, smoothing=strength))
        print(f"  smoothing {strength:.1f}: chroma flicker {P.chroma_flicker(frames):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["artistic", "stable"], choices=list(VARIANTS))
    parser.add_argument("--variants", nargs="+", default=["fp32", "fp32-cl", "auto-cl"], choices=list(VARIANT_SPECS))
    parser.add_argument("--render-factor", type=int, default=35)
    parser.add_argument("--size", type=int, nargs=2, default=[1152, 864], metavar=("H", "W"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--network-time", action="store_true", help="also time the network alone")
    parser.add_argument("--batch", type=int, default=1, help="CUDA: also time a batch of this many images")
    parser.add_argument("--video-frames", type=int, default=48)
    parser.add_argument("--flicker-only", action="store_true")
    parser.add_argument("--no-flicker", action="store_true")
    parser.add_argument("--flicker-model", default="artistic", choices=list(VARIANTS))
    parser.add_argument("--flicker-frames", type=int, default=24)
    parser.add_argument("--flicker-render-factor", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# DeOldify benchmark: {name}, torch {torch.__version__}, {args.threads} threads, fixture weights")
    if not args.flicker_only:
        print("| model | variant | input | s/image (wall) | CPU s | network s | peak memory |")
        print("|---|---|---|---|---|---|---|")
        for model in args.models:
            bench_model(model, args, device)
    if not args.no_flicker:
        flicker(args, device)


if __name__ == "__main__":
    main()
