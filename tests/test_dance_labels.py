"""Everybody Dance Now labels carry body, hands and face: the 70 face points on a real dancer's
frame, the sample target's labels, what a target records about its labels (and how an older
body+face target keeps its labels at transfer time), and pose normalisation moving the hands and
face with the body.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipelines.common.disk import read_json, write_json
from pipelines.dance import pipeline
from pipelines.dance import target as target_module
from pipelines.dance.config import TrainConfig
from pipelines.dance.face_points import face_points
from pipelines.dance.networks import GeneratorConfig
from pipelines.dance.normalize import normalize_sequence
from pipelines.dance.render import face_box, render_label
from pipelines.dance.skeleton import L_WRIST, NOSE, R_WRIST, load_frame_keypoints
from pipelines.dance.target import (
    BODY_FACE,
    BODY_FACE_HANDS,
    for_labels,
    label_parts,
    prepare_target_from_arrays,
    target_training_data,
)
from pipelines.dance.transfer import DanceTransferPipeline
from weights.parity.case import Case

EDN_8_FACE_POINTS = (27, 30, 8, 0, 16, 33, 68, 69)  # the dots EDN's labels draw


@pytest.fixture(scope="module")
def sample() -> tuple[list[np.ndarray], list, float]:
    return pipeline.sample_target_arrays(seconds=1.0)


@pytest.mark.slow
def test_face_points_on_a_real_dancer_follow_openpose_layout(reference_dir: Path) -> None:
    """The EDN sample frames (a dancer in profile, face about 60 px) and their real OpenPose
    keypoints, read through the render_label case's ``input`` fields."""
    case = Case(reference_dir / "edn" / "render_label")
    inputs = case.meta["input"]
    keypoints_dir = case.file(inputs["keypoints"].rsplit("/", 1)[0])
    image_pattern = inputs["frame_image"].split()[0]
    for frame in inputs["frames"]:
        pose = load_frame_keypoints(keypoints_dir, frame)
        image = cv2.imread(str(case.file(image_pattern.replace("<frame>", frame))))[:, :, ::-1].copy()
        face = face_points(image, pose.body)
        assert face is not None and face.shape == (70, 3) and (face[:, 2] > 0).all()
        np.testing.assert_allclose(face[68, :2], face[36:42, :2].mean(0))  # right pupil: right eye's centre
        np.testing.assert_allclose(face[69, :2], face[42:48, :2].mean(0))
        openpose = pose.face
        seen = openpose[:, 2] > 0.1
        height = float(np.ptp(openpose[seen, 1]))
        error = np.linalg.norm(face[:, :2] - openpose[:, :2], axis=1)[seen]
        assert np.median(error) < 0.3 * height, (frame, float(np.median(error)), height)
        # the dots EDN draws fall inside the face box its face GAN crops (1080p frame = canvas)
        miny, maxy, minx, maxx = face_box(pose.body, (1920, 1080))
        drawn = face[list(EDN_8_FACE_POINTS), :2]
        assert ((drawn[:, 0] >= minx) & (drawn[:, 0] < maxx) & (drawn[:, 1] >= miny) & (drawn[:, 1] < maxy)).all(), frame


def _differing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 8)
    return np.stack([xs, ys], axis=1)


@pytest.mark.slow
def test_sample_target_labels_draw_hands_and_face(tmp_path: Path, sample) -> None:
    frames, poses, fps = sample
    path = prepare_target_from_arrays(tmp_path / "t", frames[:6], poses[:6], name="t", fps=fps, source="test")
    assert label_parts(read_json(path / "target.json")) == BODY_FACE_HANDS
    config = TrainConfig(width=512, height=256, face=False)
    data = target_training_data(path, config)
    size = (config.width, config.height)
    for i in (0, 5):
        pose = poses[i]
        np.testing.assert_array_equal(data.labels[i], render_label(pose, size)[0])
        without_hands = render_label(for_labels(pose, BODY_FACE), size)[0]
        changed = _differing(data.labels[i], without_hands)
        assert len(changed) > 20, "hand strokes are drawn"
        scale = size[0] / 1920
        wrists = pose.body[[R_WRIST, L_WRIST], :2] * scale
        reach = 1.3 * np.ptp(pose.hand_right[:, 0]) * scale + 6
        assert (np.min(np.linalg.norm(changed[:, None, :] - wrists[None], axis=2), axis=1) < reach).all(), "only around the hands"
        no_face = pose.copy()
        no_face.face[:, 2] = 0
        face_changed = _differing(data.labels[i], render_label(no_face, size)[0])
        nose = pose.face[30, :2] * scale
        assert len(face_changed) > 0 and (np.linalg.norm(face_changed - nose, axis=1) < 40).all(), "face dots around the nose"


def _export_tiny_generator(path: Path, size: tuple[int, int]) -> None:
    from safetensors.torch import save_file

    config = GeneratorConfig("global", 6, 3, 4, 2, 1)
    torch.manual_seed(0)
    net = config.build()
    (path / "model").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path / "model" / "net_G.safetensors"))
    write_json(path / "model" / "generator.json", {"generator": config.to_dict(), "face_generator": None,
                                                   "width": size[0], "height": size[1], "face_box": 0})  # fmt: skip


@pytest.mark.slow
def test_an_older_body_face_target_keeps_its_labels(tmp_path: Path, sample) -> None:
    """A target prepared before hands (no ``label_parts``) trains and transfers on body+face
    labels even when poses carry hands; a new target's labels keep them."""
    frames, poses, fps = sample
    old = prepare_target_from_arrays(tmp_path / "old", frames[:6], poses[:6], name="old", fps=fps, source="test")
    new = prepare_target_from_arrays(tmp_path / "new", frames[:6], poses[:6], name="new", fps=fps, source="test")
    meta = read_json(old / "target.json")
    del meta["label_parts"]
    write_json(old / "target.json", meta)
    assert label_parts(meta) == BODY_FACE

    config = TrainConfig(width=256, height=128, face=False)
    size = (config.width, config.height)
    old_labels = target_training_data(old, config).labels
    new_labels = target_training_data(new, config).labels
    np.testing.assert_array_equal(old_labels[2], render_label(for_labels(poses[2], BODY_FACE), size)[0])
    assert len(_differing(old_labels[2], new_labels[2])) > 0

    for path, parts in ((old, BODY_FACE), (new, BODY_FACE_HANDS)):
        _export_tiny_generator(path, size)
        pipe = DanceTransferPipeline.from_dir(path, torch.device("cpu"))
        assert pipe.parts == parts
        label, _ = pipe.label_for(poses[3])
        np.testing.assert_array_equal(label, render_label(for_labels(poses[3], parts), size)[0])


@pytest.mark.slow
def test_a_video_target_records_its_label_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample) -> None:
    """Without a GPU (and by default) a video target's hands are left out, and it says why."""
    from pipelines.dance.sample import write_sample_video

    frames, poses, fps = sample
    video = write_sample_video(frames[:8], tmp_path / "me.mp4", fps)
    monkeypatch.setenv("NOSTALGIA_DATA_DIR", str(tmp_path / "data"))
    seen_hands = []

    def fake_detect(chunk, progress=None, hands=None):
        seen_hands.append(hands)
        return poses[: len(chunk)]

    monkeypatch.setattr(target_module, "detect_poses", fake_detect)
    from pipelines.dance.hands import HandEstimator

    monkeypatch.setattr(HandEstimator, "from_pretrained", lambda *a, **k: pytest.fail("no hand search without a GPU"))
    target_id = pipeline.create_target(video, name="Me")
    path = tmp_path / "data" / "dance_targets" / target_id
    target_module.prepare_target_from_video(path, path / "source.mp4")
    meta = read_json(path / "target.json")
    assert meta["hands"] == "auto" and tuple(meta["label_parts"]) == BODY_FACE and "no GPU" in meta["label_note"]
    assert meta["landmarker"] in ("dlib", "face-alignment") and set(seen_hands) == {None}
    assert pipeline.target_info(target_id).labels == "body+face"


def test_normalisation_moves_hands_and_face_with_the_body() -> None:
    """The source's hands stay on its wrists and its face on its head after global normalisation
    and the 7-frame median (EDN transforms all four point sets alike)."""
    _, target_poses, _ = pipeline.sample_target_arrays(seconds=2.0)
    _, source_poses, _ = pipeline.sample_motion_arrays(seconds=2.0)
    result = normalize_sequence(source_poses, target_poses)
    assert result.poses
    moved = 0.0
    for pose, n in zip(result.poses, result.frames, strict=True):
        np.testing.assert_allclose(pose.hand_right[0, :2], pose.body[R_WRIST, :2], atol=1e-6)
        np.testing.assert_allclose(pose.hand_left[0, :2], pose.body[L_WRIST, :2], atol=1e-6)
        moved = max(moved, float(np.abs(pose.body[:, :2] - source_poses[n].body[:, :2]).max()))
    # without the median (window 1) each pose is one scale + shift of the source's: hands and
    # face keep their shape relative to the wrist and the nose, scaled like the body
    exact = normalize_sequence(source_poses, target_poses, window=1)
    scales = {t.frame: float(t.scale) for t in exact.transforms}
    assert exact.poses
    for pose, n in zip(exact.poses, exact.frames, strict=True):
        before, scale = source_poses[n], scales[n]
        for after_part, before_part, anchor in ((pose.hand_right, before.hand_right, R_WRIST), (pose.hand_left, before.hand_left, L_WRIST),
                                                (pose.face, before.face, NOSE)):  # fmt: skip
            np.testing.assert_allclose(after_part[:, :2] - pose.body[anchor, :2], scale * (before_part[:, :2] - before.body[anchor, :2]), atol=1e-6)
    assert moved > 5.0, "the normalisation did change the poses"


def test_label_preview_shows_what_the_labels_draw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dance tab's label preview: the sample target's labels with hands and face; an older
    body+face target's preview has no hand strokes; a video target says when its labels will show."""
    monkeypatch.setenv("NOSTALGIA_DATA_DIR", str(tmp_path / "data"))
    sample = pipeline.create_target(sample=True, name="s")
    image, line = pipeline.label_preview(sample)
    assert image is not None and image.shape[0] == 360 and image.shape[1] > 360
    assert "hands" in line and "face" in line
    older = pipeline.create_target(sample=True, name="old")
    meta_path = pipeline.data_dir() / older / "target.json"
    meta = read_json(meta_path)
    del meta["label_parts"]
    write_json(meta_path, meta)
    body_face, line = pipeline.label_preview(older)
    assert "hands" not in line and "face" in line
    hand_colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert len(np.unique(body_face.reshape(-1, 3), axis=0)) < hand_colours  # the hands' 20 coloured bones are gone

    from pipelines.dance.sample import write_sample_video

    frames, _, fps = pipeline.sample_target_arrays(seconds=0.5)
    video = write_sample_video(frames, tmp_path / "me.mp4", fps)
    image, line = pipeline.label_preview(pipeline.create_target(video, name="me"))
    assert image is None and "once the person's poses are found" in line


def test_dance_tab_passes_the_hand_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The tab's 'find the hands' boxes reach training and transfer: unticked never, ticked on a CPU always."""
    from demos import dance

    seen: dict[str, object] = {}

    def train_target(*args, **kwargs) -> str:
        seen["train"] = kwargs["hands"]
        return "me-1"

    monkeypatch.setattr(pipeline, "train_target", train_target)
    monkeypatch.setattr(dance, "_status_outputs", lambda target_id, owner: ("", None))
    monkeypatch.setattr(dance, "_target_choices", lambda owner: [])
    monkeypatch.setattr(dance, "pick_device", lambda: torch.device("cpu"))
    video = tmp_path / "me.mp4"
    video.write_bytes(b"not read: train_target is replaced")
    dance.run_train(str(video), False, "me", "tiny", 1, False, None, False, None, True)
    assert seen["train"] is True
    seen.clear()
    dance.run_train(str(video), False, "me", "tiny", 1, False, None, False, None, False)
    assert seen["train"] is False
    assert dance._hands_wanted(False) is False and dance._hands_wanted(True) is True
    monkeypatch.setattr(dance, "pick_device", lambda: torch.device("cuda"))
    assert dance._hands_wanted(True) is None  # on a GPU: when the hand network is installed
