"""Dance training on several processes (DistributedDataParallel under torchrun, gloo on CPU)
gives the same losses and weights as one process with the same global batch and seed, and a
checkpoint resumes under another process count. Tiny generator, 64x32 frames, a few steps: this
runs in CI (two short torchrun launches)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipelines.dance import distributed, jobs, pipeline
from pipelines.dance.config import TrainConfig
from pipelines.dance.target import prepare_target_from_arrays, target_training_data

ROOT = Path(__file__).resolve().parents[1]
CONFIG = TrainConfig(width=64, height=32, ngf=8, n_downsampling=2, n_blocks=1, ndf=8, num_D=2, n_layers_D=2,
                     face=False, use_vgg=False, batch_size=2, eval_every=100, preview_every=100,
                     checkpoint_every=100, time_budget_min=30.0, max_steps=2, threads=1, device="cpu", seed=3)  # fmt: skip


@pytest.fixture()
def targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Three copies of one small prepared target (labels rendered once)."""
    monkeypatch.setenv("NOSTALGIA_WEIGHTS_DIR", str(tmp_path / "weights"))  # no LPIPS weights: SSIM only
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's processes: one thread each on a small machine
    frames, poses, fps = pipeline.sample_target_arrays()
    one = tmp_path / "one"
    prepare_target_from_arrays(one, frames[:14], poses[:14], name="ddp", fps=fps, source="test")
    target_training_data(one, CONFIG)
    copies = [tmp_path / "two", tmp_path / "three"]
    for copy in copies:
        shutil.copytree(one, copy)
    return one, *copies


def _run(target: Path, config: TrainConfig, nproc: int) -> dict:
    """Train in the foreground as the CLI does: in this process, or under torchrun."""
    jobs.launch(target, config, background=False, nproc=nproc)
    return json.loads((target / "job" / "status.json").read_text())


def _norm_cancelled_biases(net: nn.Module) -> set[str]:
    """Biases of convolutions followed by an instance norm: the norm subtracts them again, so
    their gradient is rounding noise, which Adam turns into +-lr steps whatever the process
    count. They cannot change any output; every other weight is compared."""
    names = set()
    for prefix, module in net.named_modules():
        children = list(module.named_children())
        for (name, a), (_, b) in itertools.pairwise(children):
            if isinstance(a, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(b, nn.InstanceNorm2d) and a.bias is not None:
                names.add(f"{prefix}.{name}.bias".lstrip("."))
    return names


def _assert_same_training(a: Path, b: Path) -> None:
    from pipelines.dance.networks import MultiscaleDiscriminator

    sa = torch.load(a / "job" / "checkpoint.pt", weights_only=True)
    sb = torch.load(b / "job" / "checkpoint.pt", weights_only=True)
    assert sa["meta"]["step"] == sb["meta"]["step"]
    assert sa["meta"]["rng"] == sb["meta"]["rng"]  # the same global batches were drawn
    inert = {"G": _norm_cancelled_biases(CONFIG.generator().build()),
             "D": _norm_cancelled_biases(MultiscaleDiscriminator(12, CONFIG.ndf, CONFIG.n_layers_D, num_D=CONFIG.num_D))}  # fmt: skip
    assert inert["G"] and inert["D"]
    for net in ("G", "D"):
        assert list(sa[net]) == list(sb[net])  # no DDP "module." prefix in the checkpoint
        for key, value in sa[net].items():
            if key in inert[net] or not value.is_floating_point():
                continue
            # Adam's first steps move each weight by about +-lr whatever the size of its gradient,
            # and where convolutions feed an instance norm many gradients are rounding-sized, so
            # their steps may go either way under another reduction order (measured: 15 % of the
            # first convolution's weights, each by 2 lr, single vs two processes; single vs
            # single is identical). So weights agree within those steps; the training itself is
            # compared through the losses of every step, the held-out L1 and SSIM.
            bound = 2 * CONFIG.lr * CONFIG.max_steps + 1e-6
            worst = float((sb[net][key] - value).abs().max())
            assert worst <= bound, f"{net}.{key}: differs by {worst:.2e} > {bound:.2e}"


def _assert_same_losses(a: dict, b: dict) -> None:
    assert a["losses"].keys() == b["losses"].keys()
    for name, value in a["losses"].items():
        assert b["losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


@pytest.mark.slow  # four short trainings, two of them under torchrun; runs in CI (which runs every test)
def test_two_gloo_processes_equal_one_process_and_resume_across_counts(targets) -> None:
    """Two steps (after that, rounding noise grows in GAN training whatever runs it: the same
    batch in another order in one process drifts as much as two processes do)."""
    one, two, three = targets
    short, full = dataclasses.replace(CONFIG, max_steps=1), CONFIG
    single = _run(one, full, 1)  # reference: one process, steps 0 and 1
    double = _run(two, full, 2)  # two processes, same global batch
    assert single["state"] == double["state"] == "done"
    assert single["step"] == double["step"] == 2
    assert (single["world_size"], double["world_size"]) == (1, 2)
    _assert_same_losses(single, double)
    np.testing.assert_allclose([h[1] for h in double["heldout_l1"]], [h[1] for h in single["heldout_l1"]], rtol=1e-4)
    assert double["quality"][-1]["ssim"] == pytest.approx(single["quality"][-1]["ssim"], abs=1e-4)
    _assert_same_training(one, two)

    # stop after one step under one process count, continue under the other: the same run
    assert _run(three, short, 2)["step"] == 1
    resumed = _run(three, full, 1)
    assert resumed["step"] == 2 and any("Resumed from step 1" in m for m in resumed["messages"])
    _assert_same_losses(single, resumed)
    _assert_same_training(one, three)
    shutil.rmtree(three / "job")
    assert _run(three, short, 1)["step"] == 1
    resumed = _run(three, full, 2)
    assert resumed["step"] == 2 and resumed["world_size"] == 2
    _assert_same_losses(single, resumed)
    _assert_same_training(one, three)


def test_batch_must_split_evenly_over_processes(tmp_path: Path) -> None:
    from pipelines.common.errors import InputError

    with pytest.raises(InputError, match="split evenly over 2 processes"):
        jobs.launch(tmp_path, dataclasses.replace(CONFIG, batch_size=3), nproc=2)  # refused before any process starts
    batch = np.arange(8)
    slices = [distributed.shard(batch, distributed.World(r, r, 4)) for r in range(4)]
    assert np.array_equal(np.concatenate(slices), batch)  # contiguous, disjoint, complete


def test_cli_dance_train_passes_nproc_and_the_global_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m pipelines dance-train --nproc 2``: the job is launched for 2 processes with the
    preset's per-process batch times 2 (the launch itself is the test above)."""
    from pipelines.__main__ import main

    monkeypatch.setenv("NOSTALGIA_DATA_DIR", str(tmp_path / "data"))
    launched = []
    monkeypatch.setattr(jobs, "launch", lambda target, config, **kw: launched.append((target.name, config, kw)) or 0)
    assert main(["dance-train", "--sample", "--preset", "tiny", "--steps", "3", "--nproc", "2", "--device", "cpu"]) == 0
    ((target, config, kw),) = launched
    assert target.startswith("sample")  # a copy of the sample dancer
    assert kw == {"resume": True, "background": False, "nproc": 2}
    assert config.max_steps == 3 and config.batch_size == 2 * pipeline.train_config("tiny", device="cpu").batch_size
