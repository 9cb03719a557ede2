"""Time Restore stage 1 (global restoration) with fixture weights, against the originals in shared/BENCHMARKS.md.

    python -m bench.bench_restoration_stage1                      # quality 512x512 and 864x1152
    python -m bench.bench_restoration_stage1 --scratch 512 --repeats 1

Quality mode is timed whole and per network (encoder / mapping / decoder). ``--scratch N`` also times scratch
mode on an N x N photo with a synthetic scratch mask (chunked masked attention; peak RSS is the process's, so
it is run last). Weights are fixtures: the timings are those of the real networks, the pictures are not.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.harness import Bench
from pipelines.restoration.networks import builders
from pipelines.restoration.stage1 import GlobalRestorer, rgb_tensor
from weights.fixture import fixture_like

# shared/BENCHMARKS.md (2 vCPU AMD EPYC, torch 2.15, float32, 2 threads)
ORIGINAL_S = {
    ("quality", "512x512"): 7.51,
    ("quality", "864x1152"): 28.13,
    ("encoder", "864x1152"): 1.14,
    ("mapping", "864x1152"): 25.00,
    ("decoder", "864x1152"): 2.02,
    ("scratch", "512x512"): 14.92,
    ("scratch", "768x768"): 73.0,
}


def _fixture(net: torch.nn.Module, salt: str) -> torch.nn.Module:
    net.load_state_dict(fixture_like(net, salt), strict=True)
    return net.eval()


def _photo(width: int, height: int) -> np.ndarray:
    """A smooth gradient with noise: content does not change the run time of these networks."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (xx / width * 160 + yy / height * 60)[..., None] + rng.normal(0, 12, (height, width, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def _timed(bench: Bench, name: str, size: str, fn: Callable[[], object], note: str = "", **kw) -> None:
    """``bench.time`` plus the process CPU seconds per call in the note: on a shared machine (load average above
    the core count) wall time mostly measures the neighbours, CPU time still measures the work."""
    spent: list[float] = []

    def call() -> None:
        start = time.process_time()
        fn()
        spent.append(time.process_time() - start)

    load = os.getloadavg()[0]
    row = bench.time(name, size, call, note=note, **kw)
    row.note = f"{note + '; ' if note else ''}CPU {min(spent):.1f} s/call; load avg {load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=["512x512", "864x1152"], help="WxH of quality-mode photos")
    parser.add_argument("--scratch", nargs="*", type=int, default=[], help="N for N x N scratch-mode photos")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    bench = Bench("Restore stage 1", device=device)
    vae_a = _fixture(builders.vae(), "ref-v1/vae_a_encoder")
    vae_b = _fixture(builders.vae(), "ref-v1/vae_b_decoder")
    quality = GlobalRestorer(vae_a, _fixture(builders.mapping_quality(), "ref-v1/mapping_quality"), vae_b, device=device)
    kw = {"repeats": args.repeats, "warmup": args.warmup}
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        photo = _photo(w, h)
        _timed(bench, "quality, whole stage 1b", size, lambda p=photo: quality(p), baseline_s=ORIGINAL_S.get(("quality", size)), **kw)
        if ("mapping", size) in ORIGINAL_S:
            with torch.inference_mode():
                x = rgb_tensor(photo)
                z = vae_a.encoder(x)
                mapped = quality.mapping(z)
                for name, fn in (
                    ("encoder", lambda x=x: vae_a.encoder(x)),
                    ("mapping", lambda z=z: quality.mapping(z)),
                    ("decoder", lambda m=mapped: vae_b.decoder(m)),
                ):
                    _timed(bench, f"quality, {name}", size, fn, baseline_s=ORIGINAL_S[(name, size)], **kw)
    if args.scratch:
        scratch = GlobalRestorer(
            vae_a, _fixture(builders.mapping_scratch(), "ref-v1/mapping_scratch"), vae_b, mode="scratch", device=device
        )
        for n in args.scratch:
            n16 = n // 16 * 16
            photo = _photo(n16, n16)
            mask = np.zeros((n16, n16), np.uint8)
            mask[n16 // 3 : n16 // 3 + 6, :] = 255  # a horizontal scratch
            mask[:, n16 // 2 : n16 // 2 + 4] = 255
            size = f"{n16}x{n16}"
            _timed(
                bench,
                "scratch, whole stage 1b",
                size,
                lambda p=photo, m=mask: scratch(p, m),
                baseline_s=ORIGINAL_S.get(("scratch", size)),
                note="chunked attention, default 256 MiB blocks",
                **kw,
            )
    bench.write("restoration_stage1")


if __name__ == "__main__":
    main()
