"""Benchmark of the Dance pose side: OpenPose body and hands, label rendering, pose normalisation.

    python -m bench.bench_dance_pose            # CPU (or CUDA when available)

Fixture weights (reference formula, salt "bench"); with them the heatmaps give hundreds of peaks,
so post-processing time is pessimistic compared with real weights (see shared/BENCHMARKS.md).
Baselines are the originals on the build machine (BENCHMARKS.md): OpenPose network one scale
368x368 1.46 s; ``Body`` whole call on a 1024x512 frame 2.20 s (network 0.68 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from bench.harness import Bench
from pipelines.dance import openpose as op
from pipelines.dance.hands import HandEstimator, HandEstimatorConfig, HandPoseNet
from pipelines.dance.normalize import normalize_poses
from pipelines.dance.render import fit_pose_to_canvas, render_label
from pipelines.dance.sample import make_sample_motion, make_sample_target
from weights.fixture import fixture_like


def _frame_1024x512() -> np.ndarray:
    """The sample-data frame (BGR) resized to 1024x512 when the reference folder is present, else a sample dancer."""
    import cv2

    from weights.parity.runner import reference_dir

    path = reference_dir() / "edn/data/sample_data/train/original_frames/frame020001.jpg"
    image = cv2.imread(str(path))
    if image is not None:
        return cv2.resize(image, (1024, 512), interpolation=cv2.INTER_AREA)
    frames, _ = make_sample_target(seconds=0.1, fps=10, size=(1024, 512))
    return np.ascontiguousarray(frames[0][:, :, ::-1])


def cpu_seconds(fn: Callable[[], object], repeats: int = 2) -> str:
    """CPU seconds of this process per call (steadier than wall time on a shared machine)."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return f"CPU {(time.process_time() - start) / repeats:.2f} s/call"


def main() -> None:
    torch.set_grad_enabled(False)
    bench = Bench("Dance poses")
    device = bench.device
    net = op.BodyPoseNet().eval()
    net.load_state_dict(fixture_like(net, "bench"))
    net = net.to(device)
    estimator = op.BodyEstimator(net, op.BodyEstimatorConfig(), device, channels_last=True)  # as from_pretrained

    square = np.zeros((1, 3, 368, 368), np.float32)
    run_square = lambda: estimator.run_network(square)  # noqa: E731
    bench.time("OpenPose network, one scale", "368x368", run_square, baseline_s=1.46, note=cpu_seconds(run_square))

    frame = _frame_1024x512()
    inputs = op.network_inputs(frame, estimator.config)
    run_net = lambda: estimator.run_network(inputs[0].tensor)  # noqa: E731
    bench.time("OpenPose network (Body input)", "1024x512 frame", run_net, baseline_s=0.68, note=cpu_seconds(run_net))
    paf, heat = estimator.run_network(inputs[0].tensor)
    bench.time(
        "OpenPose post-processing", "1024x512 frame", lambda: op.body_postprocess([paf[0]], [heat[0]], inputs, estimator.config),
        note=f"{len(op.body_postprocess([paf[0]], [heat[0]], inputs, estimator.config)[0])} peaks (fixture weights)",
    )  # fmt: skip
    bench.time("OpenPose Body, whole call", "1024x512 frame", lambda: estimator(frame), baseline_s=2.20, note=cpu_seconds(lambda: estimator(frame)))
    batch = [frame] * 4
    bench.time("OpenPose Body, batch of 4 (per frame)", "1024x512 frames", lambda: estimator.detect_batch(batch, 4), per=4, baseline_s=2.20)

    hand_net = HandPoseNet().eval()
    hand_net.load_state_dict(fixture_like(hand_net, "bench"))
    hands = HandEstimator(hand_net.to(device), HandEstimatorConfig(), device)
    crop = np.ascontiguousarray(_frame_1024x512()[200:390, 480:670])  # a 190 px hand box, as the reference case's
    bench.time("OpenPose hand estimator (4 scales), one hand", "190x190 crop", lambda: hands(crop), note=cpu_seconds(lambda: hands(crop), 1))

    _, target = make_sample_target(seconds=20, fps=15, size=(512, 288), seed=0)
    _, source = make_sample_motion(seconds=20, fps=15, size=(512, 288), seed=1)
    target = [fit_pose_to_canvas(p, (288, 512)) for p in target]
    source = [fit_pose_to_canvas(p, (288, 512)) for p in source]
    bench.time("pose normalisation + 7-frame median", f"{len(source)} frames", lambda: normalize_poses(source, target), note="goal < 1 s")
    bench.time("label rendering (1080p canvas + LANCZOS)", "1024x512 label", lambda: render_label(target[0]), repeats=5)
    bench.write("dance_pose")


if __name__ == "__main__":
    main()
