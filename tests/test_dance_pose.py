"""Dance, pose side: keypoint formats, OpenPose grouping, labels, normalisation, smoothing, sample.

The bit-exact checks against the original code are the reference cases (tests/test_parity.py);
these tests check behaviour on other data: poses from the procedural sample dancer, frames of other
sizes, missing joints, bad input.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.common.errors import InputError, ModelUnavailableError
from pipelines.dance import openpose as op
from pipelines.dance import skeleton as sk
from pipelines.dance.face_points import face_points
from pipelines.dance.normalize import normalize_poses, normalize_sequence, pose_stats
from pipelines.dance.poses import estimate_poses
from pipelines.dance.render import (
    face_box,
    fit_frame_to_canvas,
    fit_pose_to_canvas,
    make_box,
    render_canvas,
    render_label,
)
from pipelines.dance.sample import make_sample_motion, make_sample_target
from pipelines.dance.skeleton import Pose
from pipelines.dance.smoothing import smooth_tracks

SAMPLE = Path("edn/data/sample_data/train")


# --------------------------------------------------------------------------- keypoint formats


def test_yml_reader_and_body_formats(reference_dir: Path) -> None:
    folder = reference_dir / SAMPLE / "keypoints"
    numbers = sk.read_keypoints_yml(folder / "frame020001_pose.yml")
    assert len(numbers) == 69 and numbers[:2] == pytest.approx([980.697754, 247.778152])
    pose = sk.load_frame_keypoints(folder, "frame020001")
    assert pose.body.shape == (23, 3) and pose.face.shape == (70, 3) and pose.hand_left.shape == (21, 3)
    coco = sk.body23_to_coco18(pose.body)
    assert np.array_equal(coco[0], pose.body[sk.NOSE]) and np.array_equal(coco[1], pose.body[sk.NECK])
    back = sk.coco18_to_body23(coco, synthesize_mid_hip=False)
    kept = list(sk.COCO18_FROM_BODY23)
    assert np.array_equal(back[kept], pose.body[kept]) and back[sk.MID_HIP, 2] == 0
    mid = sk.coco18_to_body23(coco)[sk.MID_HIP]
    assert mid[:2] == pytest.approx((pose.body[sk.R_HIP, :2] + pose.body[sk.L_HIP, :2]) / 2)
    body25 = np.zeros((25, 3))
    body25[list(sk.BODY23_FROM_BODY25)] = pose.body
    assert np.array_equal(Pose.from_flat(body25.ravel()).body, pose.body)


def test_other_body_formats_are_drawn_with_their_own_tables() -> None:
    assert Pose.from_flat([1.0] * 60).is_empty  # not one person: skipped like EDN's "EMPTY"
    assert Pose.from_flat([1.0] * 75, map_25_to_23=False).body_format == "BODY_25"
    coco = np.zeros((18, 3))
    coco[1] = 960, 300, 1  # neck
    coco[8] = 960, 700, 1  # right hip: COCO limb (1, 8) in the colour of joint 1, BGR (255, 85, 0)
    pose = Pose.from_flat(coco.ravel())
    assert pose.body_format == "COCO"
    assert tuple(render_canvas(pose)[500, 960]) == (102, 153, 255)
    assert tuple(render_canvas(Pose(sk.coco18_to_body23(coco)))[500, 960]) == (255, 255, 255)  # no neck-hip limb in BODY_23


def test_estimator_constants_read_the_original_spellings() -> None:
    from pipelines.dance.hands import HandEstimatorConfig

    assert op.BodyEstimatorConfig.from_dict({}) == op.BodyEstimatorConfig()
    body = op.BodyEstimatorConfig.from_dict(
        {"scale_search": [1, 2], "padValue": 100, "pad_value": 5, "mid_num": 5.0, "thre1": "0.2", "unknown": 1}
    )
    assert body == op.BodyEstimatorConfig(scale_search=(1.0, 2.0), pad_value=100, mid_num=5, thre1=0.2)
    assert isinstance(body.mid_num, int) and isinstance(body.scale_search[0], float)
    hand = HandEstimatorConfig.from_dict({"ratioWristElbow": 0.5, "min_box": "30", "gaussian_sigma": 3})
    assert hand == HandEstimatorConfig(ratio_wrist_elbow=0.5, min_box=30)
    assert hand.scale_search == (0.5, 1.0, 1.5, 2.0) and isinstance(hand.gaussian_sigma, float)


def test_wrong_keypoint_counts() -> None:
    with pytest.raises(InputError, match="70 keypoints"):
        Pose(np.zeros((23, 3)), face=np.zeros(30))
    with pytest.raises(InputError, match="No person"):
        render_label(Pose.empty())


# --------------------------------------------------------------------------- OpenPose


def test_key_map_matches_published_layout(reference_dir: Path) -> None:
    import json

    keys = json.loads((reference_dir / "edn/openpose_body/keys.json").read_text())
    to_model, to_file = op.openpose_key_map()
    for key in keys:
        assert to_file(key) == key.split(".", 1)[1]
        assert to_model(to_file(key)) == key
    from weights import registry

    ckpt = registry.get(op.CHECKPOINT_ID)
    assert ckpt.family == "edn" and ckpt.size == 209267595 and "non-commercial" in ckpt.licence


def _synthetic_maps(people: list[np.ndarray], image_shape: tuple[int, int], config: op.BodyEstimatorConfig) -> tuple[np.ndarray, np.ndarray, op.NetworkInput]:
    """Stride-8 PAF/heatmaps that an ideal network would output for these COCO-18 people."""
    inp = op.network_inputs(np.zeros((*image_shape, 3), np.uint8), config)[0]
    scale = config.scale_search[0] * config.boxsize / image_shape[0]
    hh, ww = inp.padded_shape[0] // config.stride, inp.padded_shape[1] // config.stride
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float64)
    heat = np.zeros((19, hh, ww))
    paf = np.zeros((38, hh, ww))
    for person in people:
        cells = person[:, :2] * scale / config.stride - 0.5 + 0.5 / config.stride
        for j in range(18):
            if person[j, 2] > 0:
                heat[j] = np.maximum(heat[j], 0.9 * np.exp(-((xx - cells[j, 0]) ** 2 + (yy - cells[j, 1]) ** 2) / 2))
        for k, (a, b) in enumerate(op.LIMB_SEQ):
            if person[a - 1, 2] <= 0 or person[b - 1, 2] <= 0:
                continue
            pa, pb = cells[a - 1], cells[b - 1]
            v = pb - pa
            length = max(float(np.hypot(*v)), 1e-6)
            u = v / length
            t = (xx - pa[0]) * u[0] + (yy - pa[1]) * u[1]
            d = np.abs((xx - pa[0]) * u[1] - (yy - pa[1]) * u[0])
            on = (t >= -1) & (t <= length + 1) & (d <= 1)
            cx, cy = (c - 19 for c in op.MAP_IDX[k])
            paf[cx][on], paf[cy][on] = u[0], u[1]
    heat[18] = 1 - heat[:18].max(0)
    return paf.astype(np.float32), heat.astype(np.float32), inp


def test_grouping_recovers_two_sample_dancers() -> None:
    config = op.BodyEstimatorConfig()
    _, target = make_sample_target(seconds=0.2, fps=10, size=(640, 368), seed=3)
    _, motion = make_sample_motion(seconds=0.2, fps=10, size=(640, 368), seed=4)
    first = sk.body23_to_coco18(target[1].body)
    second = sk.body23_to_coco18(motion[1].body)
    second[:, 0] += 150  # keep the two dancers apart
    paf, heat, inp = _synthetic_maps([first, second], (368, 640), config)
    candidate, subset = op.body_postprocess([paf], [heat], [inp], config)
    people = op.people_to_coco18(candidate, subset)
    assert len(people) == 2
    for truth in (first, second):
        match = min(people, key=lambda p: float(np.abs(p[1, :2] - truth[1, :2]).sum()))
        found = match[:, 2] > 0
        assert found.sum() >= 16, f"only {found.sum()} of 18 parts found"
        err = np.hypot(*(match[found, :2] - truth[found, :2]).T)
        assert err.max() <= 10, f"part error {err.max():.1f} px"


def test_the_dancer_is_tracked_past_a_bystander() -> None:
    dancer = np.zeros((18, 3))
    dancer[:16] = np.c_[np.linspace(100, 200, 16), np.linspace(100, 400, 16), np.ones(16)]
    bystander = dancer.copy()
    bystander[:, 0] += 600
    bystander[16:] = 700, 120, 1  # two more parts found: the most complete person
    fragment = np.vstack([dancer[:6], np.zeros((12, 3))])
    assert op.pick_person([bystander, dancer]) is bystander
    assert op.pick_person([bystander, dancer], previous=dancer + np.array([3.0, 2.0, 0.0])) is dancer
    assert op.pick_person([bystander, fragment], previous=dancer) is bystander  # too incomplete to keep the track
    assert op.pick_person([], previous=dancer) is None


def test_batched_network_matches_single_frames() -> None:
    torch.manual_seed(0)
    net = op.BodyPoseNet(stages=2).eval()
    config = op.BodyEstimatorConfig(boxsize=96)  # network input 48 px high: keeps the test fast
    estimator = op.BodyEstimator(net, config, torch.device("cpu"))
    frames = [np.random.default_rng(i).integers(0, 255, (96, 136, 3), dtype=np.uint8) for i in range(2)]
    inputs = [op.network_inputs(f, estimator.config)[0].tensor for f in frames]
    paf_b, heat_b = estimator.run_network(np.concatenate(inputs, 0))
    for n, x in enumerate(inputs):
        paf, heat = estimator.run_network(x)
        assert np.allclose(paf[0], paf_b[n], atol=1e-5) and np.allclose(heat[0], heat_b[n], atol=1e-5)
    results = estimator.detect_batch(frames, batch_size=2)
    assert len(results) == 2 and all(c.shape[1] == 4 and s.shape[1] == 20 for c, s in results)
    with pytest.raises(InputError, match="colour frame"):
        op.network_inputs(np.zeros((64, 64), np.uint8), estimator.config)


def test_missing_weights_is_a_clear_error(weights_dir: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"body_pose_model\.pth"):
        estimate_poses([np.zeros((64, 64, 3), np.uint8)], faces=False)


# --------------------------------------------------------------------------- labels


def test_label_of_a_smaller_frame_is_fitted_to_the_canvas() -> None:
    _, poses = make_sample_target(seconds=0.1, fps=10, size=(480, 270), seed=0)
    label, box = render_label(poses[0], frame_shape=(270, 480))
    big = fit_pose_to_canvas(poses[0], (270, 480))
    assert big.body[:, :2] == pytest.approx(poses[0].body[:, :2] * 4)  # 1080 / 270
    direct, box_direct = render_label(big)
    assert np.array_equal(label, direct) and box == box_direct
    assert label.shape == (512, 1024, 3) and box[1] - box[0] == 128 and box[3] - box[2] == 128
    # Pillarboxed portrait frame: centred horizontally.
    fit = fit_frame_to_canvas(np.full((400, 300, 3), 200, np.uint8))
    cols = np.nonzero(fit[540, :, 0])[0]
    assert fit.shape == (1080, 1920, 3) and abs((cols[0] + cols[-1]) / 2 - 959.5) <= 1.5


def test_face_box_edges_and_fallbacks() -> None:
    assert make_box(-5, 60, 1000, 1030) == (0, 128, 896, 1024)
    assert make_box(480, 512, 0, 70) == (384, 512, 0, 128)
    body = np.zeros((23, 3))
    body[sk.R_EAR] = 900, 500, 1
    body[sk.L_EAR] = 1000, 500, 1
    assert face_box(body) == face_box(np.where(np.arange(23)[:, None] == sk.NOSE, [[950, 500, 1]], body))
    body[sk.L_EAR, 2] = 0
    miny, maxy, minx, maxx = face_box(body)
    assert minx < 900 * 1024 / 1920 < maxx and miny < 500 * 512 / 1080 < maxy


def test_limbs_blend_and_absent_joints_are_not_drawn() -> None:
    body = np.zeros((23, 3))
    body[sk.NECK] = 960, 300, 1
    body[sk.MID_HIP] = 960, 700, 1
    body[sk.R_SHOULDER] = 800, 300, 0  # absent: neither dot nor stick
    canvas = render_canvas(Pose(body))
    assert tuple(canvas[500, 960]) == (102, 102, 255)  # 60 % of BGR (255, 0, 0) over white, as RGB
    assert (canvas[300, 780:820] == 255).all()


# --------------------------------------------------------------------------- normalisation and smoothing


def _canvas_poses(poses: list[Pose], size: tuple[int, int]) -> list[Pose]:
    return [fit_pose_to_canvas(p, (size[1], size[0])) for p in poses]


def test_normalising_a_video_onto_itself_changes_nothing() -> None:
    _, poses = make_sample_target(seconds=2, fps=10, size=(512, 288), seed=2)
    poses = _canvas_poses(poses, (512, 288))
    result = normalize_sequence(poses, poses)
    assert result.params.scale_close == pytest.approx(1) and result.params.scale_far == pytest.approx(1)
    assert len(result.poses) == len(poses) - 6 and result.frames == list(range(3, len(poses) - 3))
    for t in result.transforms:
        assert t.diff == pytest.approx(0, abs=1e-9) and t.pose.body == pytest.approx(poses[t.frame].body)


def test_a_smaller_higher_dancer_is_scaled_and_moved_down() -> None:
    _, poses = make_sample_target(seconds=2, fps=10, size=(512, 288), seed=5)
    target = _canvas_poses(poses, (512, 288))
    source = [p.transformed(0.5, (480.0, 100.0)) for p in target]  # half size, higher in the frame
    out = normalize_poses(source, target)
    assert len(out) == len(target) - 6
    heights = [pose_stats(p.body)[0] for p in out]
    target_heights = [pose_stats(p.body)[0] for p in target[3:-3]]
    assert np.allclose(heights, target_heights, rtol=0.05)
    toes = [pose_stats(p.body)[2] for p in out]
    assert min(toes) > max(pose_stats(p.body)[2] for p in source) + 100


def test_normalisation_needs_a_measurable_frame() -> None:
    _, poses = make_sample_target(seconds=1, fps=10, seed=0)
    headless = []
    for p in poses:
        q = p.copy()
        q.body[sk.L_EAR, 2] = 0  # EDN's statistics require the left ear
        headless.append(q)
    with pytest.raises(InputError, match="source video"):
        normalize_sequence(headless, poses)


def test_smoothing_removes_a_spike_and_bridges_a_dropout() -> None:
    _, poses = make_sample_target(seconds=1, fps=10, seed=1)
    still = [poses[0].copy() for _ in range(9)]
    still[4].body[sk.R_WRIST, :2] += 80  # one-frame glitch
    still[5].body[sk.L_KNEE] = 0, 0, 0  # one-frame dropout
    smooth = smooth_tracks(still, window=5)
    assert len(smooth) == 9
    assert smooth[4].body[sk.R_WRIST] == pytest.approx(poses[0].body[sk.R_WRIST])
    assert smooth[5].body[sk.L_KNEE] == pytest.approx(poses[0].body[sk.L_KNEE])
    with pytest.raises(InputError, match="odd"):
        smooth_tracks(still, window=4)


# --------------------------------------------------------------------------- sample dancer


def test_sample_is_deterministic_and_poses_match_the_pixels() -> None:
    a_frames, a_poses = make_sample_target(seconds=0.5, fps=10, size=(320, 192), seed=7)
    b_frames, _ = make_sample_target(seconds=0.5, fps=10, size=(320, 192), seed=7)
    c_frames, _ = make_sample_target(seconds=0.5, fps=10, size=(320, 192), seed=8)
    m_frames, m_poses = make_sample_motion(seconds=0.5, fps=10, size=(320, 192), seed=7)
    assert len(a_frames) == 5 and a_frames[0].shape == (192, 320, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a_frames, b_frames, strict=True))
    assert not np.array_equal(a_frames[2], c_frames[2]) and not np.array_equal(a_frames[2], m_frames[2])
    for frames, poses in ((a_frames, a_poses), (m_frames, m_poses)):
        background = frames[0][0, 0]
        for frame, pose in zip(frames, poses, strict=True):
            for i, j in ((sk.NECK, sk.MID_HIP), (sk.R_HIP, sk.R_KNEE), (sk.L_KNEE, sk.L_ANKLE), (sk.R_SHOULDER, sk.R_ELBOW)):
                x, y = (pose.body[i, :2] + pose.body[j, :2]) / 2
                assert not np.array_equal(frame[round(float(y)), round(float(x))], background)
            assert pose.face[:, 2].mean() >= 0.2 and math.isclose(pose.body[:, 2].min(), 1.0)
    with pytest.raises(InputError):
        make_sample_target(seconds=0)


def test_face_points_come_from_a_crop_around_the_head(reference_dir: Path) -> None:
    from pipelines.common import faces
    from pipelines.common.media import load_image

    image = load_image(reference_dir / "tpsmm/data/source.png")  # a frontal portrait
    whole = faces.face_landmarks(image)
    assert whole, "dlib finds the portrait's face"
    lm = whole[0]
    body = np.zeros((23, 3))
    body[sk.NOSE] = *lm[30], 1
    body[sk.NECK] = lm[8, 0], lm[8, 1] + 0.5 * (lm[8, 1] - lm[30, 1]), 1
    face = face_points(image, body)
    assert face is not None and np.abs(face[:68, :2] - lm).max() <= 1.0
    assert face[68, :2] == pytest.approx(lm[36:42].mean(0)) and face[69, :2] == pytest.approx(lm[42:48].mean(0))
    canvas = render_canvas(Pose(body, face=face), canvas_shape=(image.shape[0] + 40, image.shape[1] + 40))
    x, y = (int(v) for v in face[30, :2])
    assert tuple(canvas[y, x]) == (0, 0, 0)  # the sparse face dots are drawn (mean confidence >= 0.2)
