"""A Stop in the page ends a long job within one step: the pipelines' stop points (per frame, per
hand-network scale) raise for the stopped page's job only, even where no progress is reported."""

from __future__ import annotations

import types

import gradio as gr
import numpy as np
import pytest
import torch

from demos import common
from demos.common import job
from pipelines.common.progress import stop_point
from tests.test_dance_transfer_length import tiny_target  # noqa: F401 - a fixture

PAGE, OTHER = types.SimpleNamespace(session_hash="stop-page"), types.SimpleNamespace(session_hash="other-page")


def test_stop_point_raises_only_in_the_stopped_pages_job() -> None:
    calls: list[str] = []

    @job
    def step_job(n: int) -> str:
        for i in range(n):
            stop_point()
            calls.append(f"step {i}")
            if i == 2:
                common.request_stop(OTHER)  # another visitor's Stop: no effect here
            if i == 4:
                common.request_stop(PAGE)
        return "finished"

    stop_point()  # outside any job (command line, scripts): nothing happens
    before = common.STOPPED_JOBS["step_job"]
    with pytest.raises(gr.Error, match="Stopped at your request"):
        step_job(100, PAGE)
    assert len(calls) == 5 and common.STOPPED_JOBS["step_job"] == before + 1
    assert step_job(3, PAGE) == "finished"  # a job started after the Stop runs


def test_dance_transfer_stops_at_the_next_frame_between_progress_reports(tiny_target, monkeypatch) -> None:  # noqa: F811
    """Progress is reported every 5 frames; the Stop still takes effect at the next frame."""
    from pipelines.dance import pipeline, transfer

    made: list[int] = []
    real_step = transfer.generate_step

    def step(*args, **kwargs):
        made.append(1)
        if len(made) == 2:
            common.request_stop(PAGE)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(transfer, "generate_step", step)

    @job
    def run_transfer() -> str:
        return str(pipeline.transfer(tiny_target, sample_motion=True).path)

    with pytest.raises(gr.Error, match="Stopped at your request"):
        run_transfer(PAGE)
    assert len(made) == 2, "no frame is generated after the Stop"


def test_hand_estimator_stops_between_its_scales(monkeypatch) -> None:
    """The hand network runs at 4 scales, seconds each on a CPU: a Stop ends it after the current one."""
    from pipelines.dance.hands import HandEstimator, build_hand_pose_model

    estimator = HandEstimator(build_hand_pose_model(), device=torch.device("cpu"))
    runs: list[int] = []

    def run_network(tensor: np.ndarray) -> np.ndarray:
        runs.append(1)
        common.request_stop(PAGE)
        return np.zeros((22, 8, 8), np.float32)

    monkeypatch.setattr(estimator, "run_network", run_network)

    @job
    def find_hand() -> str:
        estimator(np.zeros((64, 64, 3), np.uint8))
        return "finished"

    with pytest.raises(gr.Error, match="Stopped at your request"):
        find_hand(PAGE)
    assert len(runs) == 1 and len(estimator.config.scale_search) > 1


def test_scratch_attention_stops_between_its_row_blocks(monkeypatch) -> None:
    """Restore's scratch mapping is one network call of tens of seconds on a CPU; its attention is
    computed in row blocks, and a Stop ends it after the current block."""
    from pipelines.restoration.networks.mapping import masked_attention

    blocks: list[int] = []
    theta, phi, g = torch.rand(1, 64, 4), torch.rand(1, 4, 64), torch.rand(1, 64, 4)
    valid = torch.ones(1, 1, 64)
    real_matmul = torch.matmul

    def counting_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if b is phi:  # the scores of one block
            blocks.append(1)
            common.request_stop(PAGE)
        return real_matmul(a, b)

    @job
    def attend() -> str:
        masked_attention(theta, phi, g, valid, chunk=8)
        return "finished"

    monkeypatch.setattr(torch, "matmul", counting_matmul)
    with pytest.raises(gr.Error, match="Stopped at your request"):
        attend(PAGE)
    assert blocks == [1]  # 8 blocks of 8 rows; the Stop came during the first
