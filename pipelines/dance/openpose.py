"""OpenPose body keypoints (COCO-18) with the CMU network as converted by Hzzone/pytorch-openpose.

Everybody Dance Now's authors ran CMU OpenPose; the runnable Python stand-in is the COCO body
network ``bodypose_model`` (VGG front end + 6 two-branch stages: 38 part-affinity-field channels and
19 heatmaps) and the ``Body`` estimator around it. Both are reproduced here exactly as the
reference cases pin them down, because the greedy PAF grouping amplifies any difference in the maps:

1. resize the BGR frame by ``scale * boxsize / H`` (INTER_CUBIC), pad right/bottom with 128 to a
   multiple of 8, ``/256 - 0.5``;
2. run the network (batched over frames of one size, on the GPU when there is one);
3. resize the stride-8 maps x8 (cubic), crop the padding, resize to the frame (cubic); several
   scales accumulate with the original's ``avg += avg + map / n`` (a known quirk, kept for parity);
4. per part: gaussian smoothing (sigma 3) + 4-neighbour peak test, scored with the raw map;
5. per limb: 10-sample PAF line integral (points rounded half-to-even like Python's ``round``),
   distance prior, greedy one-to-one matching;
6. people assembled limb by limb, weak ones dropped.

Step 4 only smooths the bounding box of pixels that can still pass the threshold (a gaussian of
values <= thre1 cannot exceed thre1), which gives bit-identical peaks and is much faster on real
maps.

API::

    BodyPoseNet()                          # nn.Module; state-dict keys "model0.conv1_1.weight", ...
    openpose_key_map() -> (file_key -> model_key, model_key -> file_key)  # body_pose_model.pth has no prefixes
    BodyEstimatorConfig(scale_search=(0.5,), boxsize=368, stride=8, pad_value=128, thre1=0.1, thre2=0.05, ...)
    BodyEstimator(net, config, device)(image_bgr) -> (candidate (N, 4), subset (M, 20))
    BodyEstimator.detect_batch(images_bgr) -> list of (candidate, subset)
    BodyEstimator.from_pretrained(device=None)   # loads "edn/openpose_body" through the model cache
    body_postprocess(pafs, heatmaps, image_shape, config) -> (candidate, subset)  # steps 3-6 alone
    people_to_coco18(candidate, subset) -> list of (18, 3) arrays, best person first
    pick_person(people, previous=None) -> the dancer's COCO-18 array (tracks the previous frame's choice)
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from pipelines.common import precision as precisions
from pipelines.common.errors import InputError

CHECKPOINT_ID = "edn/openpose_body"

# COCO-18 limbs (1-based part numbers) and their PAF channels (mapIdx - 19), as in the original.
LIMB_SEQ = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
    (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18),
)  # fmt: skip
MAP_IDX = (
    (31, 32), (39, 40), (33, 34), (35, 36), (41, 42), (43, 44), (19, 20), (21, 22), (23, 24), (25, 26),
    (27, 28), (29, 30), (47, 48), (49, 50), (53, 54), (51, 52), (55, 56), (37, 38), (45, 46),
)  # fmt: skip
NUM_PARTS = 18

# --------------------------------------------------------------------------- network

_FRONT_END = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), ("pool1", 0, 0),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), ("pool2", 0, 0),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), ("pool3", 0, 0),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 128),
)  # fmt: skip
PAF_CHANNELS, HEATMAP_CHANNELS, FEATURE_CHANNELS = 38, 19, 128


def sequential_with_relu(layers: Iterable[tuple[str, nn.Module]], relu_after: Callable[[str], bool]) -> nn.Sequential:
    """The layers in order, each conv followed by ``relu_<name>`` when ``relu_after(name)`` (the
    original's make_layers: ReLUs carry no weights, so the state-dict keys are the layer names)."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for name, layer in layers:
        modules[name] = layer
        if isinstance(layer, nn.Conv2d) and relu_after(name):
            modules[f"relu_{name}"] = nn.ReLU(inplace=True)
    return nn.Sequential(modules)


class BodyPoseNet(nn.Module):
    """CMU OpenPose COCO body network (Hzzone ``bodypose_model``); returns ``(paf, heatmap)``.

    Every conv is followed by a ReLU except the last conv of each stage branch, with one exception
    kept from the original: the final heatmap conv ``Mconv7_stage6_L2`` *does* get a ReLU (the
    original "no relu" list names ``Mconv7_stage6_L1`` twice).
    """

    def __init__(self, stages: int = 6):
        super().__init__()
        self.stages = stages
        front = []
        for name, cin, cout in _FRONT_END:
            if name.startswith("pool"):
                front.append((f"{name}_stage1", nn.MaxPool2d(kernel_size=2, stride=2, padding=0)))
            else:
                front.append((name, nn.Conv2d(cin, cout, 3, 1, 1)))
        self.model0 = sequential_with_relu(front, lambda name: True)
        final_relu = {f"Mconv7_stage{stages}_L2"}
        for branch, out_ch in ((1, PAF_CHANNELS), (2, HEATMAP_CHANNELS)):
            last = f"conv5_5_CPM_L{branch}"
            stage1 = [
                (f"conv5_1_CPM_L{branch}", nn.Conv2d(128, 128, 3, 1, 1)),
                (f"conv5_2_CPM_L{branch}", nn.Conv2d(128, 128, 3, 1, 1)),
                (f"conv5_3_CPM_L{branch}", nn.Conv2d(128, 128, 3, 1, 1)),
                (f"conv5_4_CPM_L{branch}", nn.Conv2d(128, 512, 1, 1, 0)),
                (last, nn.Conv2d(512, out_ch, 1, 1, 0)),
            ]
            self.add_module(f"model1_{branch}", sequential_with_relu(stage1, lambda name, last=last: name != last))
            for t in range(2, stages + 1):
                cin = PAF_CHANNELS + HEATMAP_CHANNELS + FEATURE_CHANNELS
                layers = []
                for i in range(1, 8):
                    name = f"Mconv{i}_stage{t}_L{branch}"
                    if i <= 5:
                        conv = nn.Conv2d(cin if i == 1 else 128, 128, 7, 1, 3)
                    else:
                        conv = nn.Conv2d(128, 128 if i == 6 else out_ch, 1, 1, 0)
                    layers.append((name, conv))
                last_t = f"Mconv7_stage{t}_L{branch}"
                self.add_module(
                    f"model{t}_{branch}",
                    sequential_with_relu(layers, lambda name, last_t=last_t: name != last_t or name in final_relu),
                )

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All outputs: ``features``, ``stage1_paf``/``stage1_heatmap``, final ``paf``/``heatmap``."""
        features = self.model0(x)
        paf, heat = self.model1_1(features), self.model1_2(features)
        out = {"features": features, "stage1_paf": paf, "stage1_heatmap": heat}
        for t in range(2, self.stages + 1):
            joined = torch.cat([paf, heat, features], 1)
            paf, heat = getattr(self, f"model{t}_1")(joined), getattr(self, f"model{t}_2")(joined)
        out["paf"], out["heatmap"] = paf, heat
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward_stages(x)
        return out["paf"], out["heatmap"]


def build_body_pose_model() -> BodyPoseNet:
    """Registry builder (random init; the checkpoint is loaded by the weights store)."""
    return BodyPoseNet()


_STAGE_LAYER = re.compile(r"^Mconv\d+_stage(\d+)_L([12])$")
_STAGE1_LAYER = re.compile(r"^conv5_\d_CPM_L([12])$")


def _model_key(file_key: str) -> str:
    layer = file_key.split(".", 1)[0]
    if m := _STAGE_LAYER.match(layer):
        return f"model{m.group(1)}_{m.group(2)}.{file_key}"
    if m := _STAGE1_LAYER.match(layer):
        return f"model1_{m.group(1)}.{file_key}"
    return f"model0.{file_key}"


def openpose_key_map() -> tuple[Callable[[str], str], Callable[[str], str]]:
    """``body_pose_model.pth`` keys have no ``modelX_Y.`` block prefix (Hzzone's ``util.transfer``
    drops everything up to the first dot); the block follows from the layer name."""
    return _model_key, (lambda model_key: model_key.split(".", 1)[1])


# --------------------------------------------------------------------------- estimator


@dataclass(frozen=True)
class BodyEstimatorConfig:
    """Constants of ``Body.__call__`` (the original searches one scale, 0.5)."""

    scale_search: tuple[float, ...] = (0.5,)
    boxsize: int = 368
    stride: int = 8
    pad_value: int = 128
    thre1: float = 0.1
    thre2: float = 0.05
    mid_num: int = 10
    gaussian_sigma: float = 3.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BodyEstimatorConfig:
        """From a reference case's ``config`` (original spellings such as ``padValue`` accepted)."""
        return estimator_config(cls, values)


# The original's spelling of a constant where it differs from the field name (it wins when both are given).
ORIGINAL_SPELLINGS = {"pad_value": "padValue", "ratio_wrist_elbow": "ratioWristElbow"}
C = TypeVar("C")


def estimator_config(cls: type[C], values: Mapping[str, Any]) -> C:
    """An estimator's constants (a dataclass whose every field has a default) from a reference
    case's ``config``: each field read by its original spelling or its own name and cast like its
    default (a tuple as floats); a field not given keeps its default."""
    given: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        name = item.name
        value = values.get(ORIGINAL_SPELLINGS.get(name, name), values.get(name))
        if value is not None:
            default = item.default
            given[name] = tuple(float(s) for s in value) if isinstance(default, tuple) else type(default)(value)
    return cls(**given)


@dataclass
class NetworkInput:
    """One scale of one frame: the network input and what is needed to undo its padding."""

    tensor: np.ndarray  # (1, 3, Hp, Wp) float32, BGR / 256 - 0.5
    padded_shape: tuple[int, int]
    pad: tuple[int, int, int, int]  # up, left, down, right
    image_shape: tuple[int, int] = field(default=(0, 0))


def pad_right_down(image: np.ndarray, stride: int, pad_value: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Pad bottom and right with ``pad_value`` to multiples of ``stride``."""
    h, w = image.shape[:2]
    down = 0 if h % stride == 0 else stride - h % stride
    right = 0 if w % stride == 0 else stride - w % stride
    padded = np.full((h + down, w + right, image.shape[2]), pad_value, dtype=image.dtype)
    padded[:h, :w] = image
    return padded, (0, 0, down, right)


def network_inputs(image_bgr: np.ndarray, config: BodyEstimatorConfig | Any) -> list[NetworkInput]:
    """The padded, normalised network input of every search scale (``config``: any object with
    ``scale_search``, ``boxsize``, ``stride`` and ``pad_value``, as the body and hand configs)."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.shape[0] < 2 or image_bgr.shape[1] < 2:
        raise InputError(f"Pose detection needs an (H, W, 3) colour frame; got shape {image_bgr.shape}.")
    out = []
    for s in config.scale_search:
        scale = s * config.boxsize / image_bgr.shape[0]
        resized = cv2.resize(image_bgr, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        padded, pad = pad_right_down(resized, config.stride, config.pad_value)
        tensor = np.ascontiguousarray(np.transpose(np.float32(padded[:, :, :, np.newaxis]), (3, 2, 0, 1)) / 256 - 0.5)
        out.append(NetworkInput(tensor, padded.shape[:2], pad, image_bgr.shape[:2]))
    return out


def maps_to_image(net_map: np.ndarray, inp: NetworkInput, stride: int) -> np.ndarray:
    """(C, h, w) stride-``stride`` map -> (H, W, C) float32 at frame size (cubic, padding cropped)."""
    m = np.transpose(np.asarray(net_map, dtype=np.float32), (1, 2, 0))
    m = cv2.resize(m, (0, 0), fx=stride, fy=stride, interpolation=cv2.INTER_CUBIC)
    m = m[: inp.padded_shape[0] - inp.pad[2], : inp.padded_shape[1] - inp.pad[3], :]
    h, w = inp.image_shape
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, -1)


def _merge_boxes(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge overlapping (r0, r1, c0, c1) boxes until all are disjoint."""
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def hot_boxes(maps: np.ndarray, parts: int, threshold: float, margin: int, cell: int = 8) -> list[list[tuple[int, int, int, int]]]:
    """Per part, disjoint boxes (r0, r1, c0, c1) holding every pixel within ``margin`` of a value > threshold.

    Found on an 8x8-cell grid (conservatively larger than needed); boxes whose margins touch are
    merged, so a box edge is always more than ``margin`` away from any hot pixel outside it.
    """
    h, w = maps.shape[:2]
    hot = maps[:, :, :parts] > threshold
    hc, wc = -(-h // cell), -(-w // cell)
    if hc * cell != h or wc * cell != w:
        hot = np.pad(hot, ((0, hc * cell - h), (0, wc * cell - w), (0, 0)))
    coarse = hot.reshape(hc, cell, wc, cell, parts).any(axis=(1, 3))
    grow = -(-margin // cell) + 1
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    out = []
    for part in range(parts):
        cells = np.ascontiguousarray(coarse[:, :, part]).astype(np.uint8)
        if not cells.any():
            out.append([])
            continue
        count, _, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(cells, kernel), connectivity=8)
        boxes = [
            (int(y) * cell, min(int(y + bh) * cell, h), int(x) * cell, min(int(x + bw) * cell, w))
            for x, y, bw, bh, _ in stats[1:count]
        ]
        out.append(_merge_boxes(boxes))
    return out


def _gaussian_peaks(map_ori: np.ndarray, boxes: list[tuple[int, int, int, int]], thre1: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the peaks of one part map, in ``np.nonzero`` order (rows, then columns)."""
    found = [_box_peaks(map_ori, box, thre1, sigma) for box in boxes]
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.concatenate([f[0] for f in found])
    cols = np.concatenate([f[1] for f in found])
    order = np.lexsort((cols, rows))
    return rows[order], cols[order]


def _box_peaks(map_ori: np.ndarray, box: tuple[int, int, int, int], thre1: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Peaks inside one hot box: gaussian smoothing of the box only, exact away from its edges."""
    h, w = map_ori.shape
    r0, r1, c0, c1 = box
    s = gaussian_filter(map_ori[r0:r1, c0:c1].astype(np.float64), sigma=sigma)
    # Neighbour maps shifted with zero fill at the frame border (as the original); inside the frame,
    # crop edges are > radius away from anything that can pass thre1.
    ok = s > thre1
    ok[1:, :] &= s[1:, :] >= s[:-1, :]
    ok[:-1, :] &= s[:-1, :] >= s[1:, :]
    ok[:, 1:] &= s[:, 1:] >= s[:, :-1]
    ok[:, :-1] &= s[:, :-1] >= s[:, 1:]
    if r0 == 0:
        ok[0, :] &= s[0, :] >= 0
    if r1 == h:
        ok[-1, :] &= s[-1, :] >= 0
    if c0 == 0:
        ok[:, 0] &= s[:, 0] >= 0
    if c1 == w:
        ok[:, -1] &= s[:, -1] >= 0
    rows, cols = np.nonzero(ok)
    return rows + r0, cols + c0


def find_peaks(heatmap_avg: np.ndarray, thre1: float, sigma: float) -> list[np.ndarray]:
    """Per part, an array (k, 4) of ``(x, y, raw score, running id)``.

    ``heatmap_avg`` (H, W, 19) may be float32 (one scale: the original's float64 accumulator holds
    exactly those values) or float64; smoothing always runs in float64 like the original.
    """
    peaks: list[np.ndarray] = []
    counter = 0
    radius = int(4.0 * sigma + 0.5)  # scipy's default truncate=4
    # A gaussian (weights >= 0, sum 1) of values <= thre1 cannot exceed thre1: smooth only near hot pixels.
    boxes = hot_boxes(heatmap_avg, NUM_PARTS, thre1 - 1e-9, 2 * radius + 1)
    for part in range(NUM_PARTS):
        map_ori = heatmap_avg[:, :, part]
        rows, cols = _gaussian_peaks(map_ori, boxes[part], thre1, sigma)
        k = rows.size
        arr = np.empty((k, 4), dtype=np.float64)
        arr[:, 0], arr[:, 1] = cols, rows
        arr[:, 2] = map_ori[rows, cols]
        arr[:, 3] = np.arange(counter, counter + k)
        peaks.append(arr)
        counter += k
    return peaks


def _limb_scores(
    cand_a: np.ndarray, cand_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray, image_height: int, thre2: float, mid_num: int
) -> tuple[np.ndarray, np.ndarray]:
    """Line-integral score and the acceptance of every (A, B) pair, shape (nA, nB)."""
    ax, ay = cand_a[:, 0][:, None], cand_a[:, 1][:, None]
    bx, by = cand_b[:, 0][None, :], cand_b[:, 1][None, :]
    vx, vy = bx - ax, by - ay
    norm = np.maximum(np.sqrt(vx * vx + vy * vy), 0.001)
    ux, uy = vx / norm, vy / norm
    steps = np.arange(mid_num, dtype=np.float64)
    div = mid_num - 1
    total = np.zeros(vx.shape)
    passed = np.zeros(vx.shape, dtype=np.int64)
    for i in range(mid_num):
        if i == mid_num - 1:  # np.linspace sets the end point exactly
            px, py = np.broadcast_to(bx, vx.shape), np.broadcast_to(by, vx.shape)
        else:
            px, py = steps[i] * (vx / div) + ax, steps[i] * (vy / div) + ay
        cols, rows = np.rint(px).astype(np.int64), np.rint(py).astype(np.int64)  # round half to even
        s = paf_x[rows, cols] * ux + paf_y[rows, cols] * uy
        total = total + s
        passed += s > thre2
    score = total / mid_num + np.minimum(0.5 * image_height / norm - 1, 0)
    accepted = (passed > 0.8 * mid_num) & (score > 0)
    return score, accepted


def connect_limbs(peaks: Sequence[np.ndarray], paf_avg: np.ndarray, image_height: int, thre2: float, mid_num: int) -> list[np.ndarray | None]:
    """Per limb, rows ``(id A, id B, score, i, j)`` chosen greedily by score; None when a part is missing."""
    connections: list[np.ndarray | None] = []
    for k, (pa, pb) in enumerate(LIMB_SEQ):
        cand_a, cand_b = peaks[pa - 1], peaks[pb - 1]
        na, nb = len(cand_a), len(cand_b)
        if na == 0 or nb == 0:
            connections.append(None)
            continue
        cx, cy = (c - 19 for c in MAP_IDX[k])
        score, accepted = _limb_scores(cand_a, cand_b, paf_avg[:, :, cx], paf_avg[:, :, cy], image_height, thre2, mid_num)
        ii, jj = np.nonzero(accepted)  # i outer, j inner: the original candidate order
        order = sorted(range(len(ii)), key=lambda n: score[ii[n], jj[n]], reverse=True)
        rows: list[list[float]] = []
        used_a: set[int] = set()
        used_b: set[int] = set()
        for n in order:
            i, j = int(ii[n]), int(jj[n])
            if i in used_a or j in used_b:
                continue
            rows.append([cand_a[i, 3], cand_b[j, 3], score[i, j], i, j])
            used_a.add(i)
            used_b.add(j)
            if len(rows) >= min(na, nb):
                break
        connections.append(np.array(rows, dtype=np.float64).reshape(-1, 5))
    return connections


def assemble_people(connections: Sequence[np.ndarray | None], candidate: np.ndarray) -> np.ndarray:
    """Subsets (M, 20): 18 candidate ids (or -1), total score, part count; weak people dropped."""
    subset = -1 * np.ones((0, 20))
    for k, conn in enumerate(connections):
        if conn is None:
            continue
        ia, ib = LIMB_SEQ[k][0] - 1, LIMB_SEQ[k][1] - 1
        for row in conn:
            part_a, part_b, limb_score = row[0], row[1], row[2]
            found = [j for j in range(len(subset)) if subset[j][ia] == part_a or subset[j][ib] == part_b][:2]
            if len(found) == 1 or (len(found) == 2 and np.any((subset[found[0]][:-2] >= 0) & (subset[found[1]][:-2] >= 0))):
                j = found[0]
                if len(found) == 2 or subset[j][ib] != part_b:
                    subset[j][ib] = part_b
                    subset[j][-1] += 1
                    subset[j][-2] += candidate[int(part_b), 2] + limb_score
            elif len(found) == 2:  # two disjoint people joined by this limb: merge them
                j1, j2 = found
                subset[j1][:-2] += subset[j2][:-2] + 1
                subset[j1][-2:] += subset[j2][-2:]
                subset[j1][-2] += limb_score
                subset = np.delete(subset, j2, 0)
            elif k < 17:
                new = -1 * np.ones(20)
                new[ia], new[ib] = part_a, part_b
                new[-1] = 2
                new[-2] = sum(candidate[row[:2].astype(int), 2]) + limb_score
                subset = np.vstack([subset, new])
    keep = [i for i in range(len(subset)) if not (subset[i][-1] < 4 or subset[i][-2] / subset[i][-1] < 0.4)]
    return subset[keep]


def body_postprocess(
    pafs: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray], inputs: Sequence[NetworkInput], config: BodyEstimatorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Everything after the network: maps of each scale ((38|19, h, w) arrays) -> (candidate, subset)."""
    h, w = inputs[0].image_shape
    n = len(inputs)
    if n == 1:
        # 0.0 + map / 1 in float64 holds exactly the float32 values: skip the 2 x 300 MB accumulators.
        heatmap_avg = maps_to_image(heatmaps[0], inputs[0], config.stride)
        paf_avg = maps_to_image(pafs[0], inputs[0], config.stride)
    else:
        heatmap_avg = np.zeros((h, w, HEATMAP_CHANNELS))
        paf_avg = np.zeros((h, w, PAF_CHANNELS))
        for paf, heat, inp in zip(pafs, heatmaps, inputs, strict=True):
            heatmap_avg += heatmap_avg + maps_to_image(heat, inp, config.stride) / n  # original accumulation
            paf_avg += maps_to_image(paf, inp, config.stride) / n
    peaks = find_peaks(heatmap_avg, config.thre1, config.gaussian_sigma)
    connections = connect_limbs(peaks, paf_avg, h, config.thre2, config.mid_num)
    candidate = np.concatenate(peaks, 0) if peaks else np.zeros((0, 4))
    return candidate, assemble_people(connections, candidate)


def people_to_coco18(candidate: np.ndarray, subset: np.ndarray) -> list[np.ndarray]:
    """People as COCO-18 ``(18, 3)`` arrays ``(x, y, heatmap score)``, most parts (then score) first."""
    people = []
    for row in sorted(subset, key=lambda r: (-r[-1], -r[-2])):
        kp = np.zeros((NUM_PARTS, 3))
        for part in range(NUM_PARTS):
            idx = int(row[part])
            if idx >= 0:
                kp[part] = candidate[idx, 0], candidate[idx, 1], max(candidate[idx, 2], 1e-3)
        people.append(kp)
    return people


class BodyEstimator:
    """The OpenPose body estimator: build once (network loaded once), call per frame or batch."""

    def __init__(
        self,
        network: nn.Module,
        config: BodyEstimatorConfig | None = None,
        device: torch.device | None = None,
        *,
        channels_last: bool = False,
        precision: str | None = None,
    ):
        """``channels_last`` runs the convolutions in NHWC, faster with oneDNN and cuDNN; the maps
        then differ from NCHW by float rounding (~1e-7), so parity checks use the default NCHW.
        ``precision``: ``auto``/``exact`` (None: the current mode), :mod:`pipelines.common.precision`."""
        self.precision = precision and precisions.check_mode(precision)
        self.channels_last = channels_last
        self.network = network.eval().to(memory_format=torch.channels_last) if channels_last else network.eval()
        self.config = config or BodyEstimatorConfig()
        self.device = device or next(network.parameters()).device

    @classmethod
    def from_pretrained(cls, config: BodyEstimatorConfig | None = None, device: torch.device | None = None) -> BodyEstimator:
        """Load ``body_pose_model.pth`` through the model cache (ModelUnavailableError if missing)."""
        from pipelines.common.device import cached_network, pick_device

        device = device or pick_device()
        return cls(cached_network(CHECKPOINT_ID, None, device), config, device, channels_last=True)

    @torch.inference_mode()
    def run_network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, H, W) float32 -> (PAF (B, 38, h, w), heatmaps (B, 19, h, w)) as float32 numpy."""
        from pipelines.common.device import oom_guard

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with oom_guard("Use a video of smaller frames, or fewer pose scales."):
            paf, heat = precisions.plan("openpose.body", self.device, self.precision).runner(self.network)(x)
        return paf.float().contiguous().cpu().numpy(), heat.float().contiguous().cpu().numpy()

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.detect_batch([image_bgr])[0]

    def detect_batch(self, images_bgr: Sequence[np.ndarray], batch_size: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
        """Frames (BGR uint8) -> (candidate, subset) each; inputs of equal size share network batches."""
        inputs = [network_inputs(np.asarray(im), self.config) for im in images_bgr]
        maps: list[list[tuple[np.ndarray, np.ndarray]]] = [[None] * len(self.config.scale_search) for _ in images_bgr]  # type: ignore[list-item]
        groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        for f, per_scale in enumerate(inputs):
            for s, inp in enumerate(per_scale):
                groups.setdefault(inp.tensor.shape, []).append((f, s))
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                paf, heat = self.run_network(np.concatenate([inputs[f][s].tensor for f, s in chunk], 0))
                for n, (f, s) in enumerate(chunk):
                    maps[f][s] = (paf[n], heat[n])
        return [
            body_postprocess([m[0] for m in maps[f]], [m[1] for m in maps[f]], inputs[f], self.config)
            for f in range(len(images_bgr))
        ]


# --------------------------------------------------------------------------- poses for the pipeline


def pick_person(people: Sequence[np.ndarray], previous: np.ndarray | None = None) -> np.ndarray | None:
    """The dancer among the people of one frame (COCO-18 arrays, most complete first).

    Without history: the most complete person. With the previous frame's choice: among the people
    nearly as complete as the best (at most 3 parts fewer), the one whose found joints moved least,
    so a bystander does not steal the track for a frame.
    """
    if not people:
        return None
    if previous is None:
        return people[0]
    best = int((people[0][:, 2] > 0).sum())
    close = [p for p in people if (p[:, 2] > 0).sum() >= best - 3]

    def distance(p: np.ndarray) -> float:
        both = (p[:, 2] > 0) & (previous[:, 2] > 0)
        return float(np.hypot(*(p[both, :2] - previous[both, :2]).T).mean()) if both.any() else float("inf")

    return min(close, key=distance)
