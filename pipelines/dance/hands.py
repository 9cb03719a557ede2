"""OpenPose hand keypoints (21 per hand) with the CMU hand network as converted by Hzzone/pytorch-openpose.

Everybody Dance Now's labels draw both hands (``renderhand``), which CMU OpenPose gave the authors.
The pytorch port that provides the body estimator also provides the hand one, reproduced here as
the reference cases pin it down (``edn/openpose_hand*``):

1. **Hand boxes from the body** (``util.handDetect``): for each arm whose shoulder, elbow and wrist
   were found, a square around ``wrist + 0.33 (wrist - elbow)`` of side
   ``1.5 max(|wrist - elbow|, 0.9 |elbow - shoulder|)``, clamped into the frame (staying square);
   boxes under 20 px are dropped; the left hand is listed first.
2. **The network** on the crop at 4 scales (0.5, 1, 1.5, 2 times 368 px / crop height), each resized
   (cubic), padded right/bottom with 128 to a multiple of 8, ``/256 - 0.5``, BGR.
3. **Maps** back to crop size (x8 cubic, padding cut, cubic), averaged over the scales (float64 sum
   of float32 quarters).
4. **Peaks**, each part alone: gaussian sigma 3, threshold 0.05, 8-connected components, the one
   with the largest sum of the unsmoothed map, the first maximum of the map zeroed outside it.
   ``(0, 0)`` = not found (and a coordinate of 0 stays 0 when moved into the frame, as demo.py).

Keypoint order: 0 wrist; 1-4 thumb; 5-8 index; 9-12 middle; 13-16 ring; 17-20 little finger.

API::

    HandPoseNet()                               # nn.Module; keys "model1_0.conv1_1.weight", ...
    hand_key_map() -> (file_key -> model_key, model_key -> file_key)
    hand_boxes(person_coco18, image_shape) -> list[HandBox]   # handDetect for one person
    HandEstimator(net, config, device)(crop_bgr) -> HandResult (peaks (21, 2), scores, maps)
    HandEstimator.from_pretrained(device=None)  # "edn/openpose_hand" through the model cache
    hand_postprocess(maps_per_scale, inputs, config) -> (heatmap_avg, peaks)   # steps 3-4 alone
    detect_hands(frame_bgr, person_coco18, estimator) -> (right (21, 3), left (21, 3)) frame pixels
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from pipelines.common import precision as precisions
from pipelines.common.progress import stop_point
from pipelines.dance.openpose import (
    NetworkInput,
    estimator_config,
    maps_to_image,
    network_inputs,
    sequential_with_relu,
)

CHECKPOINT_ID = "edn/openpose_hand"
NUM_HAND_POINTS = 21
HAND_CHANNELS = 22  # 21 keypoints + background
FEATURE_CHANNELS = 128

# COCO-18 arm parts (shoulder, elbow, wrist)
LEFT_ARM = (5, 6, 7)
RIGHT_ARM = (2, 3, 4)

# --------------------------------------------------------------------------- network

_FRONT_END = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), ("pool1_stage1", 0, 0),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), ("pool2_stage1", 0, 0),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), ("pool3_stage1", 0, 0),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3_CPM", 512, 128),
)  # fmt: skip


class HandPoseNet(nn.Module):
    """CMU OpenPose hand network (Hzzone ``handpose_model``): 22 heatmaps at stride 8.

    A VGG front end (every conv + ReLU), stage 1 (two 1x1 convs) and 5 refinement stages on the
    previous maps concatenated with the features; the last conv of each stage has no ReLU, so
    the final maps can be negative (unlike the body network's)."""

    def __init__(self, stages: int = 6):
        super().__init__()
        self.stages = stages
        front = []
        for name, cin, cout in _FRONT_END:
            if name.startswith("pool"):
                front.append((name, nn.MaxPool2d(kernel_size=2, stride=2, padding=0)))
            else:
                front.append((name, nn.Conv2d(cin, cout, 3, 1, 1)))
        self.model1_0 = sequential_with_relu(front, lambda name: True)
        stage1 = [("conv6_1_CPM", nn.Conv2d(128, 512, 1, 1, 0)), ("conv6_2_CPM", nn.Conv2d(512, HAND_CHANNELS, 1, 1, 0))]
        self.model1_1 = sequential_with_relu(stage1, lambda name: name != "conv6_2_CPM")
        for t in range(2, stages + 1):
            layers = []
            for i in range(1, 8):
                if i <= 5:
                    conv = nn.Conv2d(HAND_CHANNELS + FEATURE_CHANNELS if i == 1 else 128, 128, 7, 1, 3)
                else:
                    conv = nn.Conv2d(128, 128 if i == 6 else HAND_CHANNELS, 1, 1, 0)
                layers.append((f"Mconv{i}_stage{t}", conv))
            last = f"Mconv7_stage{t}"
            self.add_module(f"model{t}", sequential_with_relu(layers, lambda name, last=last: name != last))

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features``, ``stage1`` .. ``stage{stages-1}`` and the final ``heatmap``."""
        features = self.model1_0(x)
        out = self.model1_1(features)
        maps = {"features": features, "stage1": out}
        for t in range(2, self.stages + 1):
            out = getattr(self, f"model{t}")(torch.cat([out, features], 1))
            maps[f"stage{t}"] = out
        maps["heatmap"] = maps.pop(f"stage{self.stages}")
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)["heatmap"]


def build_hand_pose_model() -> HandPoseNet:
    """Registry builder (random init; the checkpoint is loaded by the weights store)."""
    return HandPoseNet()


_STAGE_LAYER = re.compile(r"^Mconv\d+_stage(\d+)$")


def _model_key(file_key: str) -> str:
    layer = file_key.split(".", 1)[0]
    if m := _STAGE_LAYER.match(layer):
        return f"model{m.group(1)}.{file_key}"
    if layer.startswith("conv6_"):
        return f"model1_1.{file_key}"
    return f"model1_0.{file_key}"


def hand_key_map() -> tuple[Callable[[str], str], Callable[[str], str]]:
    """``hand_pose_model.pth`` keys have no block prefix (``util.transfer`` drops everything up to
    the first dot); the block follows from the layer name."""
    return _model_key, (lambda model_key: model_key.split(".", 1)[1])


# --------------------------------------------------------------------------- hand boxes


@dataclass(frozen=True)
class HandBox:
    """A square crop ``frame[y:y+width, x:x+width]`` around one hand."""

    x: int
    y: int
    width: int
    is_left: bool


def hand_boxes(person: np.ndarray, image_shape: tuple[int, ...], ratio_wrist_elbow: float = 0.33, min_box: int = 20) -> list[HandBox]:
    """``util.handDetect`` for one person (COCO-18 ``(18, 3)``, confidence 0 = part missing):
    the left hand's box first, then the right's; an arm needs shoulder, elbow and wrist."""
    height, width = int(image_shape[0]), int(image_shape[1])
    boxes = []
    for arm, is_left in ((LEFT_ARM, True), (RIGHT_ARM, False)):
        if not all(person[i, 2] > 0 for i in arm):
            continue
        (x1, y1), (x2, y2), (x3, y3) = (person[i, :2].astype(np.float64) for i in arm)
        x = x3 + ratio_wrist_elbow * (x3 - x2)
        y = y3 + ratio_wrist_elbow * (y3 - y2)
        distance_wrist_elbow = np.sqrt((x3 - x2) ** 2 + (y3 - y2) ** 2)
        distance_elbow_shoulder = np.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
        side = 1.5 * max(distance_wrist_elbow, 0.9 * distance_elbow_shoulder)
        x -= side / 2
        y -= side / 2
        x, y = max(x, 0.0), max(y, 0.0)
        w1 = width - x if x + side > width else side
        w2 = height - y if y + side > height else side
        side = min(w1, w2)
        if side >= min_box:
            boxes.append(HandBox(int(x), int(y), int(side), is_left))
    return boxes


# --------------------------------------------------------------------------- estimator


@dataclass(frozen=True)
class HandEstimatorConfig:
    """Constants of ``Hand.__call__`` (the original searches 4 scales)."""

    scale_search: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    boxsize: int = 368
    stride: int = 8
    pad_value: int = 128
    thre: float = 0.05
    gaussian_sigma: float = 3.0
    ratio_wrist_elbow: float = 0.33
    min_box: int = 20

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> HandEstimatorConfig:
        """From a reference case's ``config`` (original spellings such as ``padValue`` accepted)."""
        return estimator_config(cls, values)


def average_maps(maps: Sequence[np.ndarray], inputs: Sequence[NetworkInput], stride: int) -> np.ndarray:
    """(22, h, w) maps of each scale -> their average at crop size (H, W, 22), float64 as the
    original (each map divided by the scale count in float32, summed in float64)."""
    h, w = inputs[0].image_shape
    avg = np.zeros((h, w, maps[0].shape[0]), dtype=np.float64)
    n = np.float32(len(maps))
    for net_map, inp in zip(maps, inputs, strict=True):
        avg += maps_to_image(net_map, inp, stride) / n
    return avg


def part_peak(map_ori: np.ndarray, thre: float, sigma: float) -> tuple[int, int] | None:
    """(x, y) of one part (step 4 of the module docstring), or None when nothing passes ``thre``.

    Components are numbered in raster order of their first pixel, so the "lowest number on a
    tie" rule of ``skimage.measure.label`` holds; the sums are float64 like the original's."""
    smoothed = ndimage.gaussian_filter(map_ori.astype(np.float64, copy=False), sigma=sigma)
    binary = smoothed > thre
    if not binary.any():
        return None
    labels, count = ndimage.label(binary, structure=np.ones((3, 3), dtype=bool))
    if count > 1:
        first_pixel = ndimage.minimum(np.arange(labels.size).reshape(labels.shape), labels, range(1, count + 1))
        raster = np.argsort(np.asarray(first_pixel), kind="stable") + 1  # component labels in raster order
        sums = np.asarray(ndimage.sum(map_ori, labels, raster), dtype=np.float64)
        best = int(raster[int(np.argmax(sums))])
    else:
        best = 1
    masked = np.where(labels == best, map_ori, 0.0)
    y, x = np.unravel_index(int(np.argmax(masked)), masked.shape)
    return int(x), int(y)


def hand_postprocess(maps: Sequence[np.ndarray], inputs: Sequence[NetworkInput], config: HandEstimatorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Everything after the network: (heatmap_avg (H, W, 22) float64, peaks (21, 2) int64 (x, y))."""
    heatmap_avg = average_maps(maps, inputs, config.stride)
    peaks = np.zeros((NUM_HAND_POINTS, 2), dtype=np.int64)
    for part in range(NUM_HAND_POINTS):
        found = part_peak(heatmap_avg[:, :, part], config.thre, config.gaussian_sigma)
        if found is not None:
            peaks[part] = found
    return heatmap_avg, peaks


@dataclass
class HandResult:
    """One crop's result: peaks (21, 2) (x, y) crop pixels with (0, 0) = not found, their
    ``scores`` (the averaged map at the peak, 0 when not found) and the maps themselves."""

    peaks: np.ndarray
    scores: np.ndarray
    heatmap_avg: np.ndarray
    net_maps: list[np.ndarray]
    inputs: list[NetworkInput]


class HandEstimator:
    """The OpenPose hand estimator: build once (network loaded once), call per hand crop."""

    def __init__(
        self,
        network: nn.Module,
        config: HandEstimatorConfig | None = None,
        device: torch.device | None = None,
        precision: str | None = None,
    ):
        """``precision``: ``auto``/``exact`` (None: the current mode), :mod:`pipelines.common.precision`."""
        self.precision = precision and precisions.check_mode(precision)
        self.network = network.eval()
        self.config = config or HandEstimatorConfig()
        self.device = device or next(network.parameters()).device

    @classmethod
    def from_pretrained(cls, config: HandEstimatorConfig | None = None, device: torch.device | None = None) -> HandEstimator:
        """Load ``hand_pose_model.pth`` through the model cache (ModelUnavailableError if missing)."""
        from pipelines.common.device import cached_network, pick_device

        device = device or pick_device()
        return cls(cached_network(CHECKPOINT_ID, None, device), config, device)

    @torch.inference_mode()
    def run_network(self, tensor: np.ndarray) -> np.ndarray:
        """(1, 3, H, W) float32 -> (22, h, w) float32 numpy."""
        from pipelines.common.device import oom_guard

        x = torch.from_numpy(np.ascontiguousarray(tensor)).to(self.device)
        network = precisions.plan("openpose.hand", self.device, self.precision).runner(self.network)
        with oom_guard("Use a video of smaller frames."):
            return network(x)[0].float().contiguous().cpu().numpy()

    def __call__(self, crop_bgr: np.ndarray) -> HandResult:
        inputs = network_inputs(np.asarray(crop_bgr), self.config)
        maps = []
        for inp in inputs:  # seconds per scale on a CPU: a Stop is honoured between scales
            stop_point()
            maps.append(self.run_network(inp.tensor))
        heatmap_avg, peaks = hand_postprocess(maps, inputs, self.config)
        found = peaks.any(axis=1)
        scores = np.where(found, heatmap_avg[peaks[:, 1], peaks[:, 0], np.arange(NUM_HAND_POINTS)], 0.0)
        return HandResult(peaks, scores, heatmap_avg, maps, inputs)


def peaks_in_frame(peaks: np.ndarray, box: HandBox) -> np.ndarray:
    """demo.py's offset: the box corner added to every non-zero coordinate (a 0 stays 0)."""
    out = np.asarray(peaks, dtype=np.int64).copy()
    out[:, 0] = np.where(out[:, 0] != 0, out[:, 0] + box.x, 0)
    out[:, 1] = np.where(out[:, 1] != 0, out[:, 1] + box.y, 0)
    return out


def detect_hands(frame_bgr: np.ndarray, person: np.ndarray, estimator: HandEstimator) -> tuple[np.ndarray, np.ndarray]:
    """Both hands of one person (COCO-18) as OpenPose hand keypoints ``(21, 3)`` = (x, y, score)
    in frame pixels: (right, left); a hand without a box, or a part not found, has score 0."""
    hands = {True: np.zeros((NUM_HAND_POINTS, 3)), False: np.zeros((NUM_HAND_POINTS, 3))}
    cfg = estimator.config
    for box in hand_boxes(person, frame_bgr.shape, cfg.ratio_wrist_elbow, cfg.min_box):
        result = estimator(frame_bgr[box.y : box.y + box.width, box.x : box.x + box.width])
        found = result.peaks.any(axis=1)
        points = hands[box.is_left]
        points[:, :2] = result.peaks + np.array([box.x, box.y])  # a found peak on the crop edge stays in place
        points[:, 2] = np.clip(result.scores, 0.0, 1.0)
        points[~found] = 0.0
    return hands[False], hands[True]
