"""OpenPose hands: hand boxes from the body (handDetect), the hand network's checkpoint layout, the
peak search, and the three reference cases through the parity runner.

The network case and the estimator case also run in tests/test_parity.py (every case); here the
hand cases are run by name so a change to the hand code is checked in seconds, and the peak search
is checked against noise larger than the 1-vs-2-thread difference the case measured.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.dance.hands import (
    HandBox,
    HandEstimator,
    HandEstimatorConfig,
    HandPoseNet,
    hand_boxes,
    hand_key_map,
    part_peak,
    peaks_in_frame,
)
from weights.parity.case import Case
from weights.parity.runner import run_case

HAND_CASES = ("openpose_hand", "openpose_hand_postprocess")


def _person(shoulder, elbow, wrist, *, left: bool) -> np.ndarray:
    person = np.zeros((18, 3))
    for part, xy in zip((5, 6, 7) if left else (2, 3, 4), (shoulder, elbow, wrist), strict=True):
        person[part] = (*xy, 0.9)
    return person


def test_hand_box_follows_the_forearm_as_handdetect() -> None:
    # the right arm of the reference frame (case openpose_hand_estimator): box 937, 462, 190
    person = _person((995.29, 256.52), (989.47, 397.82), (1021.86, 518.47), left=False)
    assert hand_boxes(person, (1080, 1920)) == [HandBox(937, 462, 190, False)]


def test_hand_boxes_left_first_clamped_square_and_small_dropped() -> None:
    person = _person((100, 100), (100, 200), (100, 300), left=False) + _person((300, 100), (300, 200), (300, 300), left=True)
    boxes = hand_boxes(person, (380, 640))
    assert [b.is_left for b in boxes] == [True, False]
    # centre y 300 + 0.33 * 100 = 333, side 1.5 * 100 = 150: the bottom edge is clamped, the box stays square
    assert boxes[1] == HandBox(25, 258, 380 - 258, False)
    assert hand_boxes(person, (480, 640))[1] == HandBox(25, 258, 150, False)
    # a missing elbow drops the arm; a tiny arm gives a box under 20 px, dropped
    person[6, 2] = 0
    assert [b.is_left for b in hand_boxes(person, (380, 640))] == [False]
    tiny = _person((10, 10), (10, 15), (10, 20), left=False)
    assert hand_boxes(tiny, (480, 640)) == []


def test_hand_network_keys_are_the_published_layout() -> None:
    net = HandPoseNet()
    keys = list(net.state_dict())
    assert len(keys) == 104 and keys[0] == "model1_0.conv1_1.weight" and keys[-1] == "model6.Mconv7_stage6.bias"
    to_model, to_file = hand_key_map()
    files = [to_file(k) for k in keys]
    assert len(set(files)) == 104 and "conv6_2_CPM.bias" in files and "Mconv7_stage6.weight" in files
    assert [to_model(f) for f in files] == keys


def test_peak_is_the_largest_sum_component_not_the_highest_pixel() -> None:
    yy, xx = np.mgrid[0:60, 0:60]
    wide = 0.8 * np.exp(-((xx - 40) ** 2 + (yy - 20) ** 2) / (2 * 4.0**2))
    narrow = 1.6 * np.exp(-((xx - 10) ** 2 + (yy - 45) ** 2) / (2 * 1.0**2))
    assert part_peak(wide + narrow, 0.05, 3.0) == (40, 20)
    assert part_peak(np.full((30, 30), 0.01), 0.05, 3.0) is None


@pytest.mark.slow
@pytest.mark.parametrize("name", HAND_CASES)
def test_hand_reference_cases_pass(name: str, reference_dir) -> None:
    result = run_case(reference_dir / "edn" / name)
    assert result.passed, result.line


def test_hand_peaks_do_not_move_under_thread_level_noise(reference_dir) -> None:
    """1 vs 2 torch threads change the estimator's averaged maps by ~1.4e-6; noise 10x that must
    not move any peak (the nearest tie of the case is 1.1e-4)."""
    case = Case(reference_dir / "edn" / "openpose_hand_estimator")
    config = HandEstimatorConfig.from_dict(case.config)
    maps = case.io["output.heatmap_avg"].double().numpy()
    expected = case.io["output.peaks"].numpy()
    rng = np.random.default_rng(0)
    for _ in range(2):
        noisy = maps + rng.uniform(-1.5e-5, 1.5e-5, maps.shape)
        peaks = np.array([part_peak(noisy[:, :, p], config.thre, config.gaussian_sigma) or (0, 0) for p in range(21)])
        np.testing.assert_array_equal(peaks, expected)


def test_peaks_in_frame_keeps_zero_coordinates_as_demo_py() -> None:
    peaks = np.array([[0, 17], [5, 0], [0, 0]])
    np.testing.assert_array_equal(peaks_in_frame(peaks, HandBox(937, 462, 190, False)), [[0, 479], [942, 0], [0, 0]])


@pytest.mark.slow
def test_estimator_returns_21_points_with_scores_on_a_crop() -> None:
    torch.manual_seed(0)
    net = HandPoseNet().eval()
    estimator = HandEstimator(net, HandEstimatorConfig(scale_search=(0.5,)), torch.device("cpu"))
    crop = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    result = estimator(crop)
    assert result.peaks.shape == (21, 2) and result.scores.shape == (21,)
    assert result.heatmap_avg.shape == (64, 64, 22)
    missing = ~result.peaks.any(axis=1)
    assert (result.scores[missing] == 0).all()
