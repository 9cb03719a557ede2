"""``auto`` against ``exact`` precision: deviation of every pipeline, speed of every heavy network.

    python -m bench.bench_precision                 # both parts, about 10 minutes on a quiet 2-vCPU machine
    python -m bench.bench_precision --part deviation
    python -m bench.bench_precision --part speed --pairs 5 --only deoldify

Writes ``bench/results/precision.md`` (one table per part) and prints it.

* **deviation**: each pipeline run twice on the same inputs, ``exact`` then ``auto``
  (:mod:`pipelines.common.precision`), fixture weights (``weights/fixture.py``): max and mean
  absolute difference in 0..255 and PSNR of the outputs (photos; video frames all together). The
  inputs are the image inputs named by the reference cases' ``case.json`` and the example inputs
  of the tabs (``skimage`` astronaut, the Animate example clip, the Dance sample motion).
* **speed**: each network alone at the originals' benchmark sizes (``shared/BENCHMARKS.md``),
  paired and interleaved (exact, auto, auto, exact, ...): the figure is the median of the per-pair
  ratios exact/auto, so a neighbour's load hits both halves of a pair alike; the 1-minute load
  average is printed with each row. Ratios against the original use the original's quiet-machine
  seconds and are therefore only meaningful on a quiet machine.

On a CPU without native bf16 ``auto`` is float32 and every ratio is about 1 (the table says so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipelines.common import precision as precisions
from weights.fixture import fixture_like

RESULTS = Path(__file__).resolve().parent / "results" / "precision.md"
DEVICE = torch.device("cpu")


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _fixture(net: torch.nn.Module, salt: str) -> torch.nn.Module:
    net.load_state_dict(fixture_like(net, salt), strict=True)
    return net.to(DEVICE).eval().requires_grad_(False)


# --------------------------------------------------------------------------- inputs


def reference_images(limit: int = 3) -> list[tuple[str, np.ndarray]]:
    """Image inputs named by ``input`` in the reference cases' case.json (deduplicated)."""
    from PIL import Image

    from weights.parity.runner import reference_dir

    root, seen, out = reference_dir(), set(), []
    for case_file in sorted(root.glob("*/*/case.json")):
        spec = json.loads(case_file.read_text()).get("input") or {}
        for value in spec.values():
            if not isinstance(value, str) or not value.lower().endswith((".png", ".jpg", ".jpeg")):
                continue
            path = (case_file.parent / value).resolve()
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            image = np.asarray(Image.open(path).convert("RGB"))
            if min(image.shape[:2]) >= 64:
                out.append((f"ref {case_file.parent.parent.name}/{path.name}", image))
    return out[:limit]


def example_photo() -> tuple[str, np.ndarray]:
    from pipelines.animation.examples import example_photo as astronaut

    return "example astronaut 512x512", astronaut()


# --------------------------------------------------------------------------- deviation


@dataclass
class DeviationRow:
    pipeline: str
    input: str
    result: precisions.Deviation
    exact_s: float
    auto_s: float


def _twice(fn: Callable[[str], np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, float]:
    t = time.perf_counter()
    exact = fn("exact")
    t_exact = time.perf_counter() - t
    t = time.perf_counter()
    auto = fn("auto")
    return exact, auto, t_exact, time.perf_counter() - t


def _fixture_weights(ids: list[str]) -> None:
    """A private weights cache with fixture checkpoints (the salts of the registry's fixture mode)."""
    from weights import registry, store

    if "NOSTALGIA_WEIGHTS_DIR" not in os.environ:
        os.environ["NOSTALGIA_WEIGHTS_DIR"] = tempfile.mkdtemp(prefix="precision-weights-")
    for cid in ids:
        ckpt = registry.get(cid)
        if store.fixture_info(ckpt) is None:
            store.write_fixture(ckpt, salt="bench")


def deviation_rows(quick: bool, only: str | None = None) -> Iterator[DeviationRow]:
    """Every pipeline's rows (``only``: the groups whose name contains it: restore, colorize,
    animate, dance, openpose)."""
    photos = [*reference_images(2 if quick else 3), example_photo()]
    groups: dict[str, Callable[[], Iterator[DeviationRow]]] = {
        "restore": lambda: _restore_rows(photos),
        "colorize": lambda: _colorize_rows(photos[: 1 if quick else 2]),
        # the example photo's face by the example clip (first frames), vox
        "animate": lambda: _animate_rows(8 if quick else 16),
        # the sample motion's labels through a fixture pix2pixHD generator + face generator
        "dance": lambda: _dance_rows(6 if quick else 12),
        # maps (0..255 after x255 clip) on the sample target frames
        "openpose": lambda: _pose_rows(2 if quick else 4),
    }
    for name, rows in groups.items():
        if not only or only.lower() in name:
            yield from rows()


def _restore_rows(photos: list[tuple[str, np.ndarray]]) -> Iterator[DeviationRow]:
    """Quality + faces on every photo, scratch mode on the reference scratch inputs."""
    from pipelines.restoration.pipeline import RestorationPipeline

    pipe = RestorationPipeline(DEVICE)
    _fixture_weights(RestorationPipeline.checkpoints(with_scratch=True, hr=False, enhance_faces=True))
    for name, photo in photos:
        scratch = "scratch" in name
        exact, auto, te, ta = _twice(lambda m, p=photo, s=scratch: pipe(p, with_scratch=s, precision=m).image)
        yield DeviationRow(f"Restore ({'scratch' if scratch else 'quality'} + faces)", name, precisions.deviation(auto, exact), te, ta)


def _colorize_rows(photos: list[tuple[str, np.ndarray]]) -> Iterator[DeviationRow]:
    """The three generators, render factor 35 (the video model at 21, its default)."""
    from pipelines.colorization.pipeline import Colorizer

    _fixture_weights(["deoldify/artistic", "deoldify/stable", "deoldify/video"])
    for model in ("artistic", "stable", "video"):
        rf = 21 if model == "video" else 35
        for name, photo in photos:
            col = Colorizer.from_pretrained(model, DEVICE)

            def run(m: str, p: np.ndarray = photo, c: Colorizer = col, r: int = rf) -> np.ndarray:
                c.precision = m
                return c(p, r)

            exact, auto, te, ta = _twice(run)
            yield DeviationRow(f"Colorize {model} rf {rf}", name, precisions.deviation(auto, exact), te, ta)


def _animate_rows(n_frames: int) -> Iterator[DeviationRow]:
    from pipelines.animation.examples import example_inputs
    from pipelines.animation.pipeline import TPSMMPipeline
    from pipelines.animation.preprocess import resize_like_skimage_0183, to_uint8_like_skimage
    from pipelines.common import media

    _fixture_weights(["tpsmm/vox"])
    photo_path, clip = example_inputs(Path(tempfile.mkdtemp(prefix="precision-examples-")))
    frames, _ = media.read_video(clip)
    pipe = TPSMMPipeline.from_pretrained("vox", DEVICE)
    source = resize_like_skimage_0183(media.load_image(photo_path), (256, 256))[..., :3]
    driving = [resize_like_skimage_0183(f, (256, 256))[..., :3] for f in frames[:n_frames]]

    def run(m: str) -> np.ndarray:
        pipe.precision = m
        return to_uint8_like_skimage(pipe.animate_arrays(source, driving).frames)

    exact, auto, te, ta = _twice(run)
    yield DeviationRow("Animate vox 256 (video frames)", f"example photo, {n_frames} frames", precisions.deviation(auto, exact), te, ta)


def _dance_rows(n_frames: int) -> Iterator[DeviationRow]:
    from pipelines.dance.networks import GeneratorConfig, build_face_generator
    from pipelines.dance.pipeline import sample_motion_arrays
    from pipelines.dance.render import render_label
    from pipelines.dance.transfer import generate_sequence, label_to_tensor, tensor_to_uint8

    _, poses, _ = sample_motion_arrays(seconds=n_frames / 10, fps=10)
    size = (512, 256)
    labels = [label_to_tensor(render_label(p, size)[0]) for p in poses if not p.is_empty][:n_frames]
    net_g = _fixture(GeneratorConfig().build(), "bench/edn-G")
    face_g = _fixture(build_face_generator(), "bench/edn-face")
    box = (40, 168, 192, 320)

    def run(m: str) -> np.ndarray:
        g = precisions.plan("edn.generator", DEVICE, m).runner(net_g)
        f = precisions.plan("edn.face_generator", DEVICE, m).runner(face_g)
        with torch.no_grad():
            return np.stack([tensor_to_uint8(s.frame) for s in generate_sequence(g, f, labels, [box] * len(labels))])

    exact, auto, te, ta = _twice(run)
    yield DeviationRow("Dance global G 512x256 + face G (video frames, fed back)", f"sample motion, {len(labels)} frames",
                       precisions.deviation(auto, exact), te, ta)  # fmt: skip


def _pose_rows(n_frames: int) -> Iterator[DeviationRow]:
    from pipelines.dance import openpose as op
    from pipelines.dance.pipeline import sample_target_arrays

    frames, _, _ = sample_target_arrays(seconds=n_frames / 5, fps=5)
    net = _fixture(op.build_body_pose_model(), "bench/openpose")
    est = op.BodyEstimator(net, op.BodyEstimatorConfig(), DEVICE)
    inputs = np.concatenate([op.network_inputs(np.ascontiguousarray(f[..., ::-1]), est.config)[0].tensor for f in frames[:n_frames]])

    def run(m: str) -> np.ndarray:
        est.precision = m
        paf, heat = est.run_network(inputs)
        return np.clip(np.concatenate([paf, heat], 1) * 255, 0, 255)

    exact, auto, te, ta = _twice(run)
    yield DeviationRow("OpenPose body maps (x255)", f"sample frames, {n_frames}", precisions.deviation(auto, exact), te, ta)


# --------------------------------------------------------------------------- speed


@dataclass
class SpeedRow:
    network: str
    input: str
    exact_s: float
    auto_s: float
    ratio: float
    baseline_s: float | None
    loads: str


def paired(exact: Callable[[], object], auto: Callable[[], object], pairs: int) -> tuple[float, float, float]:
    """Median exact seconds, median auto seconds, median of the per-pair ratios exact/auto."""
    exact(), auto()  # warm-up (builds the low-precision copies)
    te, ta = [], []
    for i in range(pairs):
        order = (exact, auto) if i % 2 == 0 else (auto, exact)
        times = {}
        for fn in order:
            t = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - t
        te.append(times[exact])
        ta.append(times[auto])
    return statistics.median(te), statistics.median(ta), statistics.median(e / a for e, a in zip(te, ta, strict=True))


def _with_mode(fn: Callable[[str], object], mode: str) -> Callable[[], object]:
    def call() -> object:
        with torch.inference_mode():
            return fn(mode)

    return call


def speed_cases() -> dict[str, tuple[str, Callable[[], Callable[[str], object]], float | None]]:
    """name -> (input description, builder of ``run(mode)``, original's seconds)."""

    def stage1() -> Callable[[str], object]:
        from pipelines.restoration.networks import builders
        from pipelines.restoration.stage1 import GlobalRestorer

        restorer = GlobalRestorer(_fixture(builders.vae(), "b/a"), _fixture(builders.mapping_quality(), "b/m"),
                                  _fixture(builders.vae(), "b/b"), device=DEVICE)  # fmt: skip
        photo = np.random.default_rng(0).integers(0, 256, (512, 512, 3), np.uint8)

        def run(m: str) -> object:
            restorer.precision = m
            return restorer.generate(photo)

        return run

    def detector() -> Callable[[str], object]:
        from pipelines.restoration.networks import builders
        from pipelines.restoration.stage1 import ScratchDetector

        det = ScratchDetector(_fixture(builders.scratch_detector(), "b/d"), DEVICE)
        photo = np.random.default_rng(0).integers(0, 256, (512, 512, 3), np.uint8)

        def run(m: str) -> object:
            det.precision = m
            return det(photo)

        return run

    def network(policy: str, build: Callable[[], torch.nn.Module], *shape: int, call: str = "x") -> Callable[[], Callable[[str], object]]:
        def make() -> Callable[[str], object]:
            net = _fixture(build(), f"bench/{policy}")
            x = torch.rand(*shape)

            def run(m: str) -> object:
                fn = precisions.plan(policy, DEVICE, m).runner(net)
                return fn(None, x) if call == "none,x" else fn(x)

            return run

        return make

    def colorizer(model: str) -> Callable[[], Callable[[str], object]]:
        def make() -> Callable[[str], object]:
            from pipelines.colorization.config import VARIANTS
            from pipelines.colorization.networks import DeOldifyGenerator
            from pipelines.colorization.pipeline import Colorizer

            col = Colorizer(_fixture(DeOldifyGenerator(VARIANTS[model]), f"bench/{model}"), VARIANTS[model], DEVICE)
            photo = np.random.default_rng(0).integers(0, 256, (1152, 864, 3), np.uint8)

            def run(m: str) -> object:
                col.precision = m
                return col(photo, 35)

            return run

        return make

    def tpsmm() -> Callable[[str], object]:
        from pipelines.animation import config as builders
        from pipelines.animation.pipeline import TPSMMPipeline

        cfg = builders.get_config("vox")
        nets = {c: _fixture(builders.build_network("vox", c), f"bench/{c}")
                for c in ("kp_detector", "dense_motion_network", "inpainting_network")}  # fmt: skip
        pipe = TPSMMPipeline(cfg, *nets.values(), device=DEVICE)
        rng = np.random.default_rng(0)
        source, driving = rng.random((256, 256, 3)), [rng.random((256, 256, 3)) for _ in range(4)]

        def run(m: str) -> object:
            pipe.precision = m
            return pipe.animate_arrays(source, driving)

        return run

    from pipelines.dance.hands import build_hand_pose_model
    from pipelines.dance.networks import build_face_generator, build_global_generator
    from pipelines.dance.openpose import build_body_pose_model
    from pipelines.restoration.networks import builders as rb

    cases: dict[str, tuple[str, Callable[[], Callable[[str], object]], float | None]] = {
        "Restore stage 1 quality (enc + mapping + dec)": ("512x512", stage1, 7.51),
        "Restore scratch detector (UNet)": ("512x512 photo", detector, None),
        "Restore SPADE face generator": ("256x256", network("bopbtl.face_enhancer", rb.face_enhancer_256, 1, 3, 256, 256, call="none,x"), 2.06),
        "Colorize deoldify artistic rf 35": ("864x1152", colorizer("artistic"), 15.86),
        "Colorize deoldify stable rf 35": ("864x1152", colorizer("stable"), 12.59),
        "Colorize deoldify video rf 35": ("864x1152", colorizer("video"), None),
        "Animate TPSMM vox (4 frames)": ("256x256", tpsmm, 1.79 * 4),
        "Dance EDN global generator": ("512x256", network("edn.generator", build_global_generator, 1, 6, 256, 512), 1.81),
        "Dance EDN face generator": ("128x128", network("edn.face_generator", build_face_generator, 1, 6, 128, 128), 0.11),
        "OpenPose body network": ("368x368", network("openpose.body", build_body_pose_model, 1, 3, 368, 368), 1.46),
    }
    cases["OpenPose hand network"] = ("368x368", network("openpose.hand", build_hand_pose_model, 1, 3, 368, 368), None)
    return cases


def speed_rows(pairs: int, only: str | None) -> Iterator[SpeedRow]:
    for name, (size, make, baseline) in speed_cases().items():
        if only and only.lower() not in name.lower():
            continue
        before = _load()
        run = make()
        exact_s, auto_s, ratio = paired(_with_mode(run, "exact"), _with_mode(run, "auto"), pairs)
        yield SpeedRow(name, size, exact_s, auto_s, ratio, baseline, f"{before}/{_load()}")


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("deviation", "speed", "both"), default="both")
    parser.add_argument("--pairs", type=int, default=2, help="paired exact/auto runs per network")
    parser.add_argument("--only", help="only networks (speed) or pipelines (deviation) whose name contains this")
    parser.add_argument("--quick", action="store_true", help="deviation: fewer inputs and frames")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [
        f"# auto vs exact precision ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Machine: {_machine()}; {precisions.describe(DEVICE, 'auto')}; fixture weights.",
        "",
    ]
    if args.part in ("deviation", "both"):
        lines += ["## Deviation of auto from exact (0..255)", "",
                  "| pipeline | input | max abs | mean abs | PSNR dB | exact s | auto s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in deviation_rows(args.quick, args.only):
            d = row.result
            lines.append(f"| {row.pipeline} | {row.input} | {d.max_abs:.0f} | {d.mean_abs:.3f} | {d.psnr_db:.1f} | "
                         f"{row.exact_s:.1f} | {row.auto_s:.1f} |")  # fmt: skip
            print(lines[-1], flush=True)
        lines.append("")
    if args.part in ("speed", "both"):
        lines += [f"## Speed, {args.pairs} interleaved pairs per network (median), load = 1-min load average before/after", "",
                  "| network | input | exact s | auto s | exact/auto (median of pairs) | original s | original/auto | load |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in speed_rows(args.pairs, args.only):
            vs = f"{row.baseline_s:.2f} | {row.baseline_s / row.auto_s:.2f}x" if row.baseline_s else "- | -"
            lines.append(f"| {row.network} | {row.input} | {row.exact_s:.2f} | {row.auto_s:.2f} | {row.ratio:.2f}x | {vs} | {row.loads} |")
            print(lines[-1], flush=True)
        lines.append("")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _machine() -> str:
    from bench.harness import machine_description

    return machine_description()


if __name__ == "__main__":
    main()
