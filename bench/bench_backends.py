"""Other ways to run the heaviest convolution stacks on the CPU, measured against ``exact`` and ``auto``.

    pip install onnx onnxruntime onnxscript     # not in the requirements: this is an experiment
    python -m bench.bench_backends                        # OpenPose body + DeOldify artistic, 3 rounds
    python -m bench.bench_backends --only openpose --rounds 5 --compile

Writes ``bench/results/backends.md`` and prints it. For each network, on a reference photo prepared as
the pipeline prepares it (fixture weights, ``weights/fixture.py``):

* ``exact``: the float32 network (PyTorch eager), the baseline of every ratio;
* ``auto``: its bf16 copy from :mod:`pipelines.common.precision` (what the app runs);
* ``compile exact`` / ``compile auto`` (``--compile``): the same under ``torch.compile`` (inductor);
* ``ORT fp32``: exported to ONNX, run by ONNX Runtime's CPU provider;
* ``ORT int8``: ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8 activations,
  MinMax calibration on other reference photos), VNNI kernels where the CPU has them.

Timing: rounds in rotated order, every variant once per round; the ratio is the median over rounds
of exact/variant, so a neighbour's load hits the variants of a round alike. Deviation: against
``exact`` on a photo not used for calibration: max and mean absolute difference and PSNR over the
exact output's range (peak-to-peak), so 40 dB means errors around 1 % of the range.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.bench_precision import _fixture, _machine, reference_images
from pipelines.common import precision as precisions

RESULTS = Path(__file__).resolve().parent / "results" / "backends.md"
Runner = Callable[[torch.Tensor], list[np.ndarray]]


@dataclass
class Subject:
    name: str
    network: torch.nn.Module
    policy: str
    inputs: list[torch.Tensor]  # [0] measured, the rest calibrate int8
    baseline_s: float | None  # the original's seconds (shared/BENCHMARKS.md), None if not listed


def _openpose() -> Subject:
    from pipelines.dance.openpose import build_body_pose_model

    def prepare(image: np.ndarray) -> torch.Tensor:
        from PIL import Image

        square = np.asarray(Image.fromarray(image).resize((368, 368), Image.BICUBIC), dtype=np.float32)
        return torch.from_numpy(square[..., ::-1].copy() / 256.0 - 0.5).permute(2, 0, 1)[None]

    net = _fixture(build_body_pose_model(), "bench/openpose.body")
    return Subject("OpenPose body network", net, "openpose.body", [prepare(i) for _, i in reference_images(4)], 1.46)


def _deoldify() -> Subject:
    from pipelines.colorization.config import VARIANTS
    from pipelines.colorization.networks import DeOldifyGenerator
    from pipelines.colorization.pipeline import model_input, to_network

    net = _fixture(DeOldifyGenerator(VARIANTS["artistic"]), "bench/artistic")
    inputs = [to_network([model_input(i, 560)]) for _, i in reference_images(4)]
    return Subject("DeOldify artistic generator, one rf 35 pass", net, "deoldify.generator", inputs, None)


SUBJECTS = {"openpose": _openpose, "deoldify": _deoldify}


def _torch_runner(module: Callable[..., object], plan: precisions.Plan) -> Runner:
    def run(x: torch.Tensor) -> list[np.ndarray]:
        with torch.inference_mode(), plan.autocast():
            out = module(plan.input(x))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.float().numpy() for o in outs]

    return run


def _onnx_file(subject: Subject, folder: Path) -> Path:
    path = folder / "model.onnx"
    torch.onnx.export(subject.network, (subject.inputs[0],), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], do_constant_folding=True)  # fmt: skip
    return path


def _ort_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> list[np.ndarray]:
        return list(session.run(None, {"x": x.numpy()}))

    return run


def _quantised(path: Path, calibration: list[torch.Tensor]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"x": x.numpy()} for x in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    pre = path.with_name("model.pre.onnx")
    quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
    out = path.with_name("model.int8.onnx")
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    return out


def _deviation(got: list[np.ndarray], want: list[np.ndarray]) -> str:
    diff = np.concatenate([np.abs(g.astype(np.float64) - w).ravel() for g, w in zip(got, want, strict=True)])
    peak = max(float(w.max() - w.min()) for w in want)
    mse = float((diff**2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)
    return f"max {diff.max():.3g}, mean {diff.mean():.3g}, {psnr:.1f} dB"


def variants(subject: Subject, folder: Path, threads: int, compile_too: bool) -> dict[str, Runner]:
    exact = precisions.plan(subject.policy, torch.device("cpu"), "exact")
    auto = precisions.plan(subject.policy, torch.device("cpu"), "auto")
    out: dict[str, Runner] = {
        "exact (PyTorch fp32)": _torch_runner(subject.network, exact),
        "auto (PyTorch bf16 copy)": _torch_runner(auto.prepare(subject.network), auto),
    }
    if compile_too:
        out["compile exact"] = _torch_runner(torch.compile(subject.network), exact)
        out["compile auto"] = _torch_runner(torch.compile(auto.prepare(subject.network)), auto)
    try:
        onnx_path = _onnx_file(subject, folder)
        out["ORT fp32"] = _ort_runner(onnx_path, threads)
        out["ORT int8 (static QDQ)"] = _ort_runner(_quantised(onnx_path, subject.inputs[1:]), threads)
    except ImportError as exc:
        print(f"ONNX Runtime rows skipped: {exc} (pip install onnx onnxruntime onnxscript)")
    return out


def measure(subject: Subject, runners: dict[str, Runner], rounds: int) -> list[str]:
    x = subject.inputs[0]
    setup: dict[str, float] = {}
    results: dict[str, list[np.ndarray]] = {}
    for name, run in runners.items():  # first call: warm-up, compilation, low-precision copies
        t = time.perf_counter()
        results[name] = run(x)
        setup[name] = time.perf_counter() - t
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t = time.perf_counter()
            runners[name](x)
            times[name].append(time.perf_counter() - t)
    base = names[0]
    rows = []
    for name in names:
        ratio = statistics.median(b / v for b, v in zip(times[base], times[name], strict=True))
        seconds = statistics.median(times[name])
        vs_original = f"{subject.baseline_s / seconds:.2f}x" if subject.baseline_s else "-"
        deviation = "(baseline)" if name == base else _deviation(results[name], results[base])
        rows.append(f"| {subject.name} | {name} | {seconds:.2f} | {ratio:.2f}x | {vs_original} | {deviation} | "
                    f"{setup[name]:.1f} | {os.getloadavg()[0]:.1f} |")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(SUBJECTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes of compilation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [
        f"# Backends for the heaviest convolution stacks ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Machine: {_machine()}; fixture weights; {args.rounds} rotated rounds; ratio = median over rounds of "
        "exact/variant; deviation against exact on a photo not used for calibration.",
        "",
        "| network | variant | s | exact/variant | original/variant | deviation vs exact | first call s | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, make in SUBJECTS.items():
        if args.only and key != args.only:
            continue
        subject = make()
        with tempfile.TemporaryDirectory() as folder:
            lines += measure(subject, variants(subject, Path(folder), args.threads, args.compile), args.rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
