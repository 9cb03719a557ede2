"""Parity handlers of the Dance pose side: OpenPose network/estimator, label renderer, normalisation.

Everything (inputs, configs, salts, frame lists, file names) is read from the case folder; the
paths a case names in free text (``forward.image``, ``forward.inputs``) are taken from that text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import torch

from weights.parity.case import (
    Case,
    Comparison,
    Outcome,
    compare_images,
    compare_keys,
    compare_tensors,
    load_image,
    state_dict_shapes,
)
from weights.parity.runner import handler


def _first_path(text: str) -> str:
    """The first path-like token (``../data/...``) of a free-text case field."""
    match = re.search(r"(\.\./|\./)?[\w.<>{},/-]+\.(jpg|png|yml|json)", text)
    if not match:
        raise ValueError(f"no file path in {text!r}")
    return match.group(0)


def _fixture_body_net(case: Case) -> torch.nn.Module:
    from pipelines.dance.openpose import BodyPoseNet, openpose_key_map

    net = BodyPoseNet(int(case.config.get("stages", 6))).eval()
    net.load_state_dict(case.fixture(), strict=True)
    to_model, to_file = openpose_key_map()
    assert all(to_model(to_file(k)) == k for k in net.state_dict()), "key map does not round-trip"
    return net


def _keys_and_map(case: Case, net: torch.nn.Module, outcome: Outcome) -> None:
    from pipelines.dance.openpose import openpose_key_map

    outcome.add(compare_keys("keys", state_dict_shapes(net), case.keys or {}))
    to_model, to_file = openpose_key_map()
    file_keys = {to_file(k): v for k, v in state_dict_shapes(net).items()}
    expected_file = {".".join(k.split(".")[1:]): v for k, v in (case.keys or {}).items()}  # util.transfer
    outcome.add(compare_keys("file_keys", file_keys, expected_file))
    outcome.add(compare_keys("file_to_model", {to_model(k): v for k, v in expected_file.items()}, case.keys or {}))


@handler("openpose.bodypose_model", kinds=("network",))
def openpose_body(case: Case) -> Outcome:
    outcome = Outcome()
    net = _fixture_body_net(case)
    _keys_and_map(case, net, outcome)
    torch.manual_seed(0)
    with torch.no_grad():
        out = net.forward_stages(case.io["input.x"])
    for name, expected in case.io.items():
        if not name.startswith("output."):
            continue
        key = name.removeprefix("output.").removeprefix("stage.")
        outcome.add(compare_tensors(name, out[key], expected, case.atol, case.rtol))
    return outcome


def _near_ties(ties: tuple[np.ndarray, dict[int, np.ndarray]], got: np.ndarray, expected: np.ndarray, tol: float) -> bool:
    """Whether every candidate whose position differs is a near tie: on the same part, one pixel
    away, and the smoothed part map (what the peak search compares) differs between the two
    positions by at most ``tol``, the tolerance the maps themselves are held to. Such a peak can
    land on either pixel with float rounding (thread count, CPU), in the original as here."""
    part_of, smoothed = ties
    for i in np.nonzero(np.any(got[:, :2] != expected[:, :2], axis=1))[0]:
        s = smoothed[int(part_of[i])]
        (gx, gy), (ex, ey) = got[i, :2].astype(int), expected[i, :2].astype(int)
        if max(abs(gx - ex), abs(gy - ey)) > 1 or abs(s[gy, gx] - s[ey, ex]) > tol:
            return False
    return True


def _compare_people(outcome: Outcome, tag: str, case: Case, candidate: np.ndarray, subset: np.ndarray,
                    ties: tuple[np.ndarray, dict[int, np.ndarray]] | None = None) -> None:  # fmt: skip
    """Candidates and people against the case; with ``ties`` (each candidate's part and the smoothed
    part maps of the peak search), a position that differs only at a near tie (see
    :func:`_near_ties`) is accepted and said so."""
    exp_c = case.io["output.candidate"].double().numpy().reshape(-1, 4)
    exp_s = case.io["output.subset"].double().numpy().reshape(-1, 20)
    got_c, got_s = candidate.reshape(-1, 4), subset.reshape(-1, 20)
    if got_c.shape != exp_c.shape:
        outcome.add(Comparison(f"output.candidate[{tag}]", False, float("inf"), "same count", f"{len(got_c)} != {len(exp_c)} candidates"))
    else:
        exact = compare_tensors(f"output.candidate.xy_id[{tag}]", got_c[:, [0, 1, 3]], exp_c[:, [0, 1, 3]], 0.0, 0.0)
        if not exact.passed and ties is not None and np.array_equal(got_c[:, 3], exp_c[:, 3]) and _near_ties(ties, got_c, exp_c, case.atol):
            moved = int(np.any(got_c[:, :2] != exp_c[:, :2], axis=1).sum())
            exact = Comparison(exact.name, True, exact.max_abs_err, f"exact, or a near tie within {case.atol:g}",
                               f"{moved} near-tie peak(s) one pixel away")  # fmt: skip
        outcome.add(exact)
        outcome.add(compare_tensors(f"output.candidate.score[{tag}]", got_c[:, 2], exp_c[:, 2], case.atol, case.rtol))
    if got_s.shape != exp_s.shape:
        outcome.add(Comparison(f"output.subset[{tag}]", False, float("inf"), "same count", f"{len(got_s)} != {len(exp_s)} people"))
    else:
        outcome.add(compare_tensors(f"output.subset.ids[{tag}]", got_s[:, :18], exp_s[:, :18], 0.0, 0.0))
        outcome.add(compare_tensors(f"output.subset.score_count[{tag}]", got_s[:, 18:], exp_s[:, 18:], case.atol, case.rtol))
    counts = case.meta.get("counts") or {}
    if "candidates" in counts:
        ok = len(got_c) == int(counts["candidates"]) and len(got_s) == int(counts.get("subsets", len(got_s)))
        outcome.add(Comparison(f"{tag}.counts", ok, 0.0 if ok else float("inf"), "case counts", f"{len(got_c)} candidates, {len(got_s)} people"))


def _image(case: Case) -> np.ndarray:
    path = case.file(_first_path(case.meta["forward"]["image"]))
    image = cv2.imread(str(path))  # BGR, as the original reads it
    if image is None:
        raise FileNotFoundError(path)
    return image


@handler("openpose.body_estimator", kinds=("pipeline",))
def openpose_body_estimator(case: Case) -> Outcome:
    from pipelines.dance.openpose import BodyEstimator, BodyEstimatorConfig, body_postprocess, network_inputs

    outcome = Outcome()
    config = BodyEstimatorConfig.from_dict(case.config)
    image = _image(case)
    inputs = network_inputs(image, config)
    if "input.net_x" in case.io:
        outcome.add(compare_tensors("net_x", torch.from_numpy(inputs[0].tensor), case.io["input.net_x"], 0.0, 0.0))
    estimator = BodyEstimator(_fixture_body_net(case), config, torch.device("cpu"))
    torch.manual_seed(0)
    pafs, heats = [], []
    for inp in inputs:
        paf, heat = estimator.run_network(inp.tensor)
        pafs.append(paf[0])
        heats.append(heat[0])
    if "output.net.paf" in case.io:
        outcome.add(compare_tensors("output.net.paf", pafs[0][None], case.io["output.net.paf"], case.atol, case.rtol))
        outcome.add(compare_tensors("output.net.heatmap", heats[0][None], case.io["output.net.heatmap"], case.atol, case.rtol))
    if "output.net.paf" in case.io and len(inputs) == 1:
        # The post-processing alone, on the original's own maps: must match exactly.
        stored = body_postprocess([case.io["output.net.paf"][0].numpy()], [case.io["output.net.heatmap"][0].numpy()], inputs[:1], config)
        _compare_people(outcome, "stored_maps", case, *stored)
    candidate, subset = body_postprocess(pafs, heats, inputs, config)
    _compare_people(outcome, "own_maps", case, candidate, subset, _smoothed_parts(heats, inputs, config))
    return outcome


def _smoothed_parts(heats: list, inputs: list, config) -> tuple[np.ndarray, dict[int, np.ndarray]] | None:
    """Each candidate's part and the gaussian-smoothed part maps the peak search looks at (one
    scale, as the cases run; None for several scales)."""
    from scipy.ndimage import gaussian_filter

    from pipelines.dance.openpose import find_peaks, maps_to_image

    if len(heats) != 1:
        return None
    average = maps_to_image(heats[0], inputs[0], config.stride)
    peaks = find_peaks(average, config.thre1, config.gaussian_sigma)
    part_of = np.concatenate([np.full(len(p), k) for k, p in enumerate(peaks)]) if peaks else np.zeros(0, int)
    smoothed = {k: gaussian_filter(average[:, :, k].astype(np.float64), sigma=config.gaussian_sigma) for k, p in enumerate(peaks) if len(p)}
    return part_of, smoothed


@handler("openpose.body_estimator.postprocess", kinds=("pipeline",))
def openpose_body_postprocess(case: Case) -> Outcome:
    from pipelines.dance.openpose import BodyEstimatorConfig, body_postprocess, network_inputs

    outcome = Outcome()
    config = BodyEstimatorConfig.from_dict(case.config)
    inputs = network_inputs(_image(case), config)
    pafs = [t.numpy() for t in case.io["input.paf"]]
    heats = [t.numpy() for t in case.io["input.heatmap"]]
    _compare_people(outcome, "maps", case, *body_postprocess(pafs, heats, inputs[: len(pafs)], config))
    return outcome


# --------------------------------------------------------------------------- labels


def _keypoints_dir_and_frames(case: Case) -> tuple[Path, list[str]]:
    text = case.meta["forward"]["inputs"]
    key_dir = case.file(_first_path(text).rsplit("/", 1)[0])
    frames = set((case.meta.get("input") or {}).get("frames") or []) | set(case.meta.get("reproduction") or {})
    return key_dir, sorted(frames)


def _frame_shape(case: Case, frame: str, myshape: tuple[int, int]) -> tuple[int, int]:
    match = re.search(r"(\.\./[\w/.-]*original_frames)/<frame>\.(\w+)", case.meta["forward"]["inputs"])
    if match:
        path = case.file(f"{match.group(1)}/{frame}.{match.group(2)}")
        image = cv2.imread(str(path))
        if image is not None:
            return image.shape[:2]
    return myshape


@handler("edn.data_prep.render_label", kinds=("pipeline",))
def render_label_case(case: Case) -> Outcome:
    from pipelines.dance.render import LABEL_SIZE, face_box, fit_pose_to_canvas, render_canvas, resize_to_label
    from pipelines.dance.skeleton import load_frame_keypoints

    outcome = Outcome()
    cfg = case.config
    myshape = tuple(int(v) for v in cfg.get("myshape", (1080, 1920, 3)))[:2]
    dim = int(cfg.get("output_dim", 512))
    size = (2 * dim, dim)
    png = case.meta.get("png") or {}
    max_d, mean_d = float(png.get("max_abs_diff", 1)), png.get("mean_abs_diff")
    key_dir, frames = _keypoints_dir_and_frames(case)
    if not frames:
        raise FileNotFoundError(f"no frames named in {case.path} (input.frames, reproduction)")
    data_root = key_dir.parent
    for frame in frames:
        raw = load_frame_keypoints(key_dir, frame, map_25_to_23=bool(cfg.get("map_25_to_23", False)))
        pose = fit_pose_to_canvas(raw, _frame_shape(case, frame, myshape), myshape)
        stages = render_canvas(pose, num_face_keypoints=int(cfg.get("num_face_keypoints", 8)), canvas_shape=myshape, stages=True)
        for stage, canvas in stages.items():
            expected = case.named("expected", f"canvas_{stage}", frame=frame)
            if expected is not None and expected.exists():
                outcome.add(compare_images(f"{frame}.canvas_{stage}", canvas, load_image(expected), 0))
        label = resize_to_label(stages["full"], size)
        box = face_box(pose.body, size, myshape, int(cfg.get("boxbuffer", 70)), limits=LABEL_SIZE)  # makebox128 clamps to 1024x512
        reproduced = case.named("expected", "label", frame=frame)
        if reproduced is not None and reproduced.exists():
            outcome.add(compare_images(f"{frame}.label", label, load_image(reproduced)[..., :3], max_d, mean_d))
        published = data_root / "train_label" / f"{frame}.png"
        if published.exists():
            outcome.add(compare_images(f"{frame}.published_label", label, load_image(published)[..., :3], max_d, mean_d))
        text = data_root / "train_facetexts128" / f"{frame}.txt"
        expected_box = text.read_text().split() if text.exists() else None
        expected_box = expected_box or str((case.meta.get("reproduction") or {}).get(frame, {}).get("facetext_reproduced", "")).split()
        if expected_box:
            ok = [str(v) for v in box] == expected_box
            outcome.add(Comparison(f"{frame}.face_box", ok, 0.0 if ok else float("inf"), "exact", f"{box} vs {expected_box}"))
    return outcome


# --------------------------------------------------------------------------- pose normalisation


def _pose_from_json(entry: dict) -> object:
    from pipelines.dance.skeleton import Pose

    return Pose.from_flat(entry.get("pose"), entry.get("face") or None, entry.get("hand_right") or None, entry.get("hand_left") or None)


def _flat(pose: object, part: str) -> np.ndarray:
    arr = {"pose": pose.body, "face": pose.face, "rhand": pose.hand_right, "lhand": pose.hand_left}[part]
    return np.asarray(arr).reshape(-1)


@handler("edn.data_prep.global_pose_normalization", kinds=("pipeline",))
def pose_normalization_case(case: Case) -> Outcome:
    from pipelines.dance.normalize import normalize_sequence
    from pipelines.dance.render import CANVAS_SHAPE, LABEL_SIZE, face_box, render_canvas, resize_to_label

    outcome = Outcome()
    cfg = case.config
    inputs = json.loads(case.file("inputs.json").read_text())
    expected = json.loads(case.file("expected.json").read_text())
    target = {int(n): _pose_from_json(v) for n, v in inputs["target_keypoints"].items()}
    source = {int(n): _pose_from_json(v) for n, v in inputs["source_keypoints"].items()}
    t0, t1 = inputs["target_spread"]
    s0, s1 = inputs["source_spread"]
    shape = tuple(int(v) for v in inputs.get("target_shape", (1080, 1920, 3)))[:2]
    result = normalize_sequence(
        source,
        target,
        window=int(cfg.get("w_size", 7)),
        target_median_frac=float(inputs.get("target_median_frac", 0.5)),
        source_median_frac=float(inputs.get("source_median_frac", 0.5)),
        scale_frac=float(cfg.get("get_minmax_scales frac", 0.05)),
        canvas_shape=shape,
        target_stats_frames=range(t0, t1),  # the original samples [start, end)
        source_stats_frames=range(s0, s1),
        source_frames=range(s0, s1 + 1),  # and transforms start..end inclusive
    )
    atol, rtol = case.atol, case.rtol

    def num(name: str, got: object, exp: object) -> None:
        outcome.add(compare_tensors(name, np.asarray(got, dtype=np.float64), np.asarray(exp, dtype=np.float64), atol, rtol))

    stats = expected["stats"]
    for tag, got in (("target", result.target_stats), ("source", result.source_stats)):
        for key, value in stats[tag].items():
            num(f"stats.{tag}.{key}", getattr(got, key), value)
    num("translation", [result.params.target, result.params.source], stats["translation"])
    num("scale", [result.params.scale_close, result.params.scale_far], stats["scale"])
    if "norm_params_txt" in expected:
        got_txt = [float(v) for v in result.params.text().split()]
        num("norm_params_txt", got_txt, [float(v) for v in expected["norm_params_txt"].split()])

    per_frame = expected["per_frame"]
    ok = [t.frame for t in result.transforms] == [p["n"] for p in per_frame]
    outcome.add(Comparison("per_frame.frames", ok, 0.0 if ok else float("inf"), "same frames", f"{[t.frame for t in result.transforms]}"))
    if ok:
        for got, exp in zip(result.transforms, per_frame, strict=True):
            for key in ("diff", "scale", "min_coords", "translateback"):
                num(f"frame{exp['n']}.{key}", getattr(got, key), exp[key])
            for part in ("pose", "face", "rhand", "lhand"):
                num(f"frame{exp['n']}.{part}", _flat(got.pose, part), exp[part])
            if "good" in exp:
                good = got.measured == bool(exp["good"])
                outcome.add(Comparison(f"frame{exp['n']}.good", good, 0.0 if good else float("inf"), "same"))

    windows = expected["median_windows"]
    ok = result.windows == [w["window_frames"] for w in windows] and result.frames == [w["center_frame"] for w in windows]
    outcome.add(Comparison("median_windows.frames", ok, 0.0 if ok else float("inf"), "same windows", f"{result.frames}"))
    if ok:
        for got, exp in zip(result.poses, windows, strict=True):
            for part in ("pose", "face", "rhand", "lhand"):
                num(f"window{exp['out_index']}.{part}", _flat(got, part), exp[part])

    size = LABEL_SIZE  # transform_interp: SIZE 512 -> 1024x512, box from the fixed 1920x1080 region
    buffer = int(cfg.get("boxbuffer", 70))
    boxes = {f"frame{i:06d}": " ".join(str(v) for v in face_box(p.body, size, CANVAS_SHAPE, buffer)) for i, p in enumerate(result.poses)}
    ok = boxes == expected["facetexts128"]
    outcome.add(Comparison("facetexts128", ok, 0.0 if ok else float("inf"), "exact", "" if ok else str(boxes)[:200]))
    n_ok = len(result.poses) == int(expected.get("labels_written", len(result.poses)))
    outcome.add(Comparison("labels_written", n_ok, 0.0 if n_ok else float("inf"), "exact", f"{len(result.poses)}"))

    png = case.meta.get("png") or {}
    for path in case.files("expected_test_label_frame*.png"):  # the name the case.json's text gives them
        index = int(re.search(r"frame(\d+)", path.name).group(1))
        if index >= len(result.poses):
            outcome.add(Comparison(path.name, False, float("inf"), "exists", "label not produced"))
            continue
        # Drawn on a canvas of the target's shape, then the fixed 1080x1920 region is kept and resized.
        canvas = render_canvas(result.poses[index], num_face_keypoints=int(cfg.get("numkeypoints (face)", 8)), canvas_shape=shape)
        label = resize_to_label(canvas[: CANVAS_SHAPE[0], : CANVAS_SHAPE[1]], size)
        outcome.add(compare_images(path.name, label, load_image(path)[..., :3], float(png.get("max_abs_diff", 1)), png.get("mean_abs_diff")))
    return outcome


# --------------------------------------------------------------------------- hands


def _unknown_output(outcome: Outcome, name: str) -> None:
    """An expected output this handler cannot produce is a failure, never a silent skip."""
    outcome.add(Comparison(name, False, float("inf"), "known output", "no such output in this handler"))


def _fixture_hand_net(case: Case, outcome: Outcome) -> torch.nn.Module:
    from pipelines.dance.hands import HandPoseNet, hand_key_map

    net = HandPoseNet(int(case.config.get("stages", 6))).eval()
    outcome.add(compare_keys("keys", state_dict_shapes(net), case.keys or {}))
    net.load_state_dict(case.fixture(), strict=True)
    to_model, to_file = hand_key_map()
    expected_file = {k.split(".", 1)[1]: v for k, v in (case.keys or {}).items()}  # util.transfer
    outcome.add(compare_keys("file_keys", {to_file(k): v for k, v in state_dict_shapes(net).items()}, expected_file))
    outcome.add(compare_keys("file_to_model", {to_model(k): v for k, v in expected_file.items()}, case.keys or {}))
    return net


@handler("openpose.handpose_model", kinds=("network",))
def openpose_hand(case: Case) -> Outcome:
    outcome = Outcome()
    net = _fixture_hand_net(case, outcome)
    names = case.meta.get("forward", {}).get("args") or ["input.x"]
    torch.manual_seed(0)
    with torch.no_grad():
        out = net.forward_stages(*(case.io[n] for n in names))
    for name, expected in case.io.items():
        if not name.startswith("output."):
            continue
        key = name.removeprefix("output.").removeprefix("stage.")
        if key in out:
            outcome.add(compare_tensors(name, out[key], expected, case.atol, case.rtol))
        else:
            _unknown_output(outcome, name)
    return outcome


def _case_image(case: Case, role: str) -> np.ndarray:
    """A BGR image named by ``input.<role>`` (or ``expected.<role>``), read as the original reads it."""
    relative = (case.meta.get("input") or {}).get(role) or (case.meta.get("expected") or {}).get(role)
    if not relative:
        raise FileNotFoundError(f"{case.id}: case.json names no {role!r} file")
    image = cv2.imread(str(case.file(relative)))
    if image is None:
        raise FileNotFoundError(case.file(relative))
    return image


def _people_coco18(candidate: np.ndarray, subset: np.ndarray) -> list[np.ndarray]:
    """Each subset row (in order) as a COCO-18 ``(18, 3)`` array; missing parts have confidence 0."""
    people = []
    for row in np.asarray(subset, dtype=np.float64).reshape(-1, 20).astype(int):
        person = np.zeros((18, 3))
        for part, idx in enumerate(row[:18]):
            if idx != -1:
                person[part] = candidate[idx, 0], candidate[idx, 1], max(float(candidate[idx, 2]), 1e-3)
        people.append(person)
    return people


def _compare_hand_outputs(outcome: Outcome, case: Case, produced: dict[str, object]) -> None:
    """Every ``output.*`` of the case: integer outputs exactly, float ones within the case tolerance."""
    for name, expected in case.io.items():
        if not name.startswith("output."):
            continue
        if name not in produced:
            _unknown_output(outcome, name)
            continue
        exact = not torch.is_floating_point(expected)
        got = np.asarray(produced[name])
        outcome.add(compare_tensors(name, got, expected, 0.0 if exact else case.atol, 0.0 if exact else case.rtol))


@handler("openpose.hand_estimator", kinds=("pipeline",))
def openpose_hand_estimator(case: Case) -> Outcome:
    from pipelines.dance.hands import HandEstimator, HandEstimatorConfig, hand_boxes, peaks_in_frame

    outcome = Outcome()
    config = HandEstimatorConfig.from_dict(case.config)
    frame = _case_image(case, "frame")
    candidate = case.io["input.body_candidate"].double().numpy().reshape(-1, 4)
    boxes = [box for person in _people_coco18(candidate, case.io["input.body_subset"].numpy())
             for box in hand_boxes(person, frame.shape, config.ratio_wrist_elbow, config.min_box)]  # fmt: skip
    produced: dict[str, object] = {"output.hand_boxes": np.array([[b.x, b.y, b.width, int(b.is_left)] for b in boxes], np.int64).reshape(-1, 4)}
    if not boxes:
        _compare_hand_outputs(outcome, case, produced)
        return outcome
    box = boxes[0]  # the case's crop is the one box it records
    crop = frame[box.y : box.y + box.width, box.x : box.x + box.width]
    expected_crop = (case.meta.get("expected") or {}).get("crop")
    if expected_crop:
        reference = cv2.imread(str(case.file(expected_crop)))
        outcome.add(compare_images("crop", crop, reference, 0))
    estimator = HandEstimator(_fixture_hand_net(case, outcome), config, torch.device("cpu"))
    torch.manual_seed(0)
    result = estimator(crop)
    produced["output.peaks"] = result.peaks
    produced["output.peaks_in_frame"] = peaks_in_frame(result.peaks, box)
    produced["output.heatmap_avg"] = result.heatmap_avg.astype(np.float32)
    for k, net_map in enumerate(result.net_maps):
        produced[f"output.net.heatmap.s{k}"] = net_map[None]
    for name, expected in case.io.items():
        if name.startswith("input.net_x.s"):
            k = int(name.rsplit("s", 1)[1])
            outcome.add(compare_tensors(name, result.inputs[k].tensor, expected, 0.0, 0.0))
    _compare_hand_outputs(outcome, case, produced)
    if "output.heatmap_avg" in case.io and "output.peaks" in case.io:
        # the peak search alone on the original's own averaged maps: must give its peaks exactly
        from pipelines.dance.hands import part_peak

        stored = case.io["output.heatmap_avg"].double().numpy()
        peaks = np.array([part_peak(stored[:, :, p], config.thre, config.gaussian_sigma) or (0, 0) for p in range(21)], np.int64)
        outcome.add(compare_tensors("stored_maps.peaks", peaks, case.io["output.peaks"], 0.0, 0.0))
    return outcome


@handler("openpose.hand_estimator.postprocess", kinds=("pipeline",))
def openpose_hand_postprocess(case: Case) -> Outcome:
    from pipelines.dance.hands import HandBox, HandEstimatorConfig, hand_postprocess, peaks_in_frame
    from pipelines.dance.openpose import network_inputs

    outcome = Outcome()
    config = HandEstimatorConfig.from_dict(case.config)
    inputs = network_inputs(_case_image(case, "crop"), config)
    names = sorted((n for n in case.io if n.startswith("input.net.heatmap.s")), key=lambda n: int(n.rsplit("s", 1)[1]))
    maps = [case.io[n][0].numpy() for n in names]
    for k, (net_map, inp) in enumerate(zip(maps, inputs, strict=False)):
        expected_shape = (inp.padded_shape[0] // config.stride, inp.padded_shape[1] // config.stride)
        ok = tuple(net_map.shape[1:]) == expected_shape
        outcome.add(Comparison(f"scale{k}.map_size", ok, 0.0 if ok else float("inf"), "padded input / stride", f"{net_map.shape}"))
    heatmap_avg, peaks = hand_postprocess(maps, inputs[: len(maps)], config)
    produced: dict[str, object] = {"output.peaks": peaks, "output.heatmap_avg": heatmap_avg.astype(np.float32)}
    corner = re.search(r"x\s*=\s*(\d+),\s*y\s*=\s*(\d+)", str(case.meta.get("input_notes", "")))
    if corner:  # the box corner demo.py adds, named in the case's notes
        produced["output.peaks_in_frame"] = peaks_in_frame(peaks, HandBox(int(corner.group(1)), int(corner.group(2)), 0, False))
    _compare_hand_outputs(outcome, case, produced)
    return outcome
