"""An offline sample dancer: procedurally drawn videos with exact ground-truth keypoints.

The Dance tab needs a target person and a source motion that work without any download and
without a trained pose network (the fixture OpenPose weights find nothing meaningful). This module
draws a simple articulated human-like figure - limbs as thick coloured capsules, a torso polygon, an
oval head with eyes - on a plain background, animated by a known choreography, and returns the
frames together with the exact BODY_23 + 70-point face + 2 x 21 hand keypoints (in frame pixels) that produced
them, i.e. the :class:`~pipelines.dance.skeleton.Pose` format the label renderer consumes.

Two choreographies differ on purpose so pose normalisation has work to do:

* target (``make_sample_target``): sways, waves both arms and steps towards/away from the camera
  (feet move down/up the frame and the figure grows/shrinks);
* motion (``make_sample_motion``): a smaller figure higher in the frame (filmed from further away)
  stepping side to side, bouncing and alternating its arms, at another tempo.

Everything is deterministic given ``seed`` (colours, tempo, amplitudes, proportions).

API::

    make_sample_target(seconds=4.0, fps=15, size=(512, 288), seed=0) -> (frames, poses)
    make_sample_motion(seconds=4.0, fps=15, size=(512, 288), seed=1) -> (frames, poses)
    write_sample_video(frames, path, fps) -> Path                  # H.264 via the media module
    draw_figure(pose, size, colours) -> RGB uint8 frame            # one frame from one pose
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipelines.common.errors import InputError
from pipelines.dance import skeleton as sk
from pipelines.dance.skeleton import Pose

Point = tuple[float, float]


@dataclass(frozen=True)
class Figure:
    """Proportions (fractions of the standing height) and colours (RGB) of one dancer."""

    torso: float = 0.30
    neck: float = 0.10
    shoulder: float = 0.10  # half width
    hip: float = 0.06  # half width
    upper_arm: float = 0.16
    forearm: float = 0.15
    thigh: float = 0.23
    shin: float = 0.22
    foot: float = 0.055
    head_radius: float = 0.065
    hand: float = 0.1  # wrist to middle fingertip
    skin: tuple[int, int, int] = (224, 172, 140)
    shirt: tuple[int, int, int] = (200, 60, 60)
    trousers: tuple[int, int, int] = (50, 70, 140)
    hair: tuple[int, int, int] = (60, 40, 30)
    background: tuple[int, int, int] = (235, 232, 225)


@dataclass(frozen=True)
class Angles:
    """Joint angles in radians from "hanging straight down"; positive turns towards image +x."""

    lean: float = 0.0  # torso from vertical
    r_upper: float = -0.2
    r_fore: float = -0.1
    l_upper: float = 0.2
    l_fore: float = 0.1
    r_thigh: float = -0.05
    r_shin: float = -0.05
    l_thigh: float = 0.05
    l_shin: float = 0.05


def _step(p: Point, length: float, angle: float) -> Point:
    return p[0] + length * math.sin(angle), p[1] + length * math.cos(angle)


def figure_pose(fig: Figure, height: float, mid_hip: Point, a: Angles) -> Pose:
    """BODY_23, 70 face points and both hands of the figure standing ``height`` px tall with its pelvis at ``mid_hip``."""
    h = height
    neck = _step(mid_hip, fig.torso * h, math.pi + a.lean)  # torso points up
    up = (math.sin(a.lean), -math.cos(a.lean))  # unit vector along the torso, upwards
    side = (-up[1], up[0])  # towards image +x (the figure's left: it faces the camera)
    r_sh = (neck[0] - side[0] * fig.shoulder * h, neck[1] - side[1] * fig.shoulder * h)
    l_sh = (neck[0] + side[0] * fig.shoulder * h, neck[1] + side[1] * fig.shoulder * h)
    r_hip = (mid_hip[0] - side[0] * fig.hip * h, mid_hip[1] - side[1] * fig.hip * h)
    l_hip = (mid_hip[0] + side[0] * fig.hip * h, mid_hip[1] + side[1] * fig.hip * h)
    r_el = _step(r_sh, fig.upper_arm * h, a.r_upper)
    r_wr = _step(r_el, fig.forearm * h, a.r_upper + a.r_fore)
    l_el = _step(l_sh, fig.upper_arm * h, a.l_upper)
    l_wr = _step(l_el, fig.forearm * h, a.l_upper + a.l_fore)
    r_kn = _step(r_hip, fig.thigh * h, a.r_thigh)
    r_an = _step(r_kn, fig.shin * h, a.r_thigh + a.r_shin)
    l_kn = _step(l_hip, fig.thigh * h, a.l_thigh)
    l_an = _step(l_kn, fig.shin * h, a.l_thigh + a.l_shin)
    foot = fig.foot * h
    r_big, r_small = (r_an[0] - foot, r_an[1] + 0.15 * foot), (r_an[0] - 0.6 * foot, r_an[1] + 0.25 * foot)
    l_big, l_small = (l_an[0] + foot, l_an[1] + 0.15 * foot), (l_an[0] + 0.6 * foot, l_an[1] + 0.25 * foot)
    r = fig.head_radius * h
    head = (neck[0] + up[0] * (fig.neck * h + r), neck[1] + up[1] * (fig.neck * h + r))
    nose = (head[0], head[1] + 0.25 * r)
    r_eye, l_eye = (head[0] - 0.38 * r, head[1] - 0.15 * r), (head[0] + 0.38 * r, head[1] - 0.15 * r)
    r_ear, l_ear = (head[0] - 0.95 * r, head[1]), (head[0] + 0.95 * r, head[1])
    joints = {
        sk.NECK: neck, sk.R_SHOULDER: r_sh, sk.R_ELBOW: r_el, sk.R_WRIST: r_wr, sk.L_SHOULDER: l_sh,
        sk.L_ELBOW: l_el, sk.L_WRIST: l_wr, sk.MID_HIP: mid_hip, sk.R_HIP: r_hip, sk.R_KNEE: r_kn,
        sk.R_ANKLE: r_an, sk.R_BIG_TOE: r_big, sk.R_SMALL_TOE: r_small, sk.L_HIP: l_hip, sk.L_KNEE: l_kn,
        sk.L_ANKLE: l_an, sk.L_BIG_TOE: l_big, sk.L_SMALL_TOE: l_small, sk.NOSE: nose, sk.R_EYE: r_eye,
        sk.R_EAR: r_ear, sk.L_EYE: l_eye, sk.L_EAR: l_ear,
    }  # fmt: skip
    body = np.zeros((sk.NUM_BODY, 3))
    for index, (x, y) in joints.items():
        body[index] = x, y, 1.0
    hand = fig.hand * h
    right, left = _hand21(r_el, r_wr, hand, toward_body=+1.0), _hand21(l_el, l_wr, hand, toward_body=-1.0)
    return Pose(body, face=_face70(head, r), hand_right=right, hand_left=left)


# Finger directions (radians from the forearm line, towards the body) and base offsets across the
# palm, thumb first: OpenPose's hand order is wrist, then thumb, index, middle, ring, little (4 each).
_FINGERS = ((0.9, 0.30), (0.25, 0.22), (0.05, 0.05), (-0.15, -0.12), (-0.35, -0.26))
_FINGER_LENGTHS = (0.55, 0.62, 0.68, 0.62, 0.5)  # of the hand length, base to tip


def _hand21(elbow: Point, wrist: Point, length: float, toward_body: float) -> np.ndarray:
    """21 OpenPose hand points of an open hand continuing the forearm (elbow -> wrist), the thumb
    on the body's side (``toward_body`` +1 for the right hand, -1 for the left)."""
    d = np.subtract(wrist, elbow)
    d = d / max(float(np.linalg.norm(d)), 1e-9)
    n = np.array([d[1], -d[0]]) * toward_body
    points = [np.asarray(wrist, dtype=np.float64)]
    for (angle, offset), finger in zip(_FINGERS, _FINGER_LENGTHS, strict=True):
        base = points[0] + 0.42 * length * d + offset * length * n
        if angle > 0.5:  # the thumb starts lower on the palm
            base = points[0] + 0.15 * length * d + offset * length * n
        direction = math.cos(angle) * d + math.sin(angle) * n
        points += [base + direction * finger * length * k / 3 for k in range(4)]
    hand = np.ones((sk.NUM_HAND, 3))
    hand[:, :2] = np.asarray(points)
    return hand


def _face70(c: Point, r: float) -> np.ndarray:
    """Plausible iBUG-68 + 2 pupil points on an oval head of radius ``r`` centred at ``c``."""
    pts: list[Point] = []
    for t in np.linspace(math.pi * 0.95, math.pi * 0.05, 17):  # jaw, image left -> right, below the centre
        pts.append((c[0] + 0.9 * r * math.cos(t), c[1] + 1.1 * r * math.sin(t) * 0.9 + 0.05 * r))
    for x0 in (-0.6, 0.15):  # brows
        pts += [(c[0] + (x0 + 0.11 * k) * r, c[1] - 0.4 * r) for k in range(5)]
    pts += [(c[0], c[1] + (-0.25 + 0.17 * k) * r) for k in range(4)]  # nose bridge down to the tip
    pts += [(c[0] + (-0.2 + 0.1 * k) * r, c[1] + 0.32 * r) for k in range(5)]  # nose base
    for ex in (-0.38, 0.38):  # eyes (6 points each)
        pts += [(c[0] + ex * r + 0.14 * r * math.cos(t), c[1] - 0.15 * r + 0.06 * r * math.sin(t)) for t in np.linspace(math.pi, -math.pi, 6, endpoint=False)]
    pts += [(c[0] + 0.35 * r * math.cos(t), c[1] + 0.6 * r + 0.12 * r * math.sin(t)) for t in np.linspace(math.pi, -math.pi, 12, endpoint=False)]
    pts += [(c[0] + 0.22 * r * math.cos(t), c[1] + 0.6 * r + 0.05 * r * math.sin(t)) for t in np.linspace(math.pi, -math.pi, 8, endpoint=False)]
    pts += [(c[0] - 0.38 * r, c[1] - 0.15 * r), (c[0] + 0.38 * r, c[1] - 0.15 * r)]  # pupils
    face = np.ones((sk.NUM_FACE, 3))
    face[:, :2] = np.asarray(pts)
    return face


def _ip(p: np.ndarray | Sequence[float]) -> tuple[int, int]:
    return round(float(p[0]) * 4), round(float(p[1]) * 4)  # 2 fractional bits (shift=2)


def _capsule(img: np.ndarray, a: np.ndarray, b: np.ndarray, width: float, colour: tuple[int, int, int]) -> None:
    cv2.line(img, _ip(a), _ip(b), colour, max(1, round(width)), cv2.LINE_AA, shift=2)


def draw_figure(pose: Pose, size: tuple[int, int], fig: Figure | None = None) -> np.ndarray:
    """One RGB frame of ``size`` = (width, height) showing the figure in ``pose``."""
    fig = fig or Figure()
    width, height = size
    img = np.empty((height, width, 3), np.uint8)
    img[:] = fig.background
    b = pose.body
    if b is None:
        return img
    scale = float(np.linalg.norm(b[sk.NECK, :2] - b[sk.MID_HIP, :2])) / fig.torso  # figure height in px
    limb = 0.045 * scale
    darker = tuple(int(c * 0.8) for c in fig.trousers)
    # Back to front: left leg and arm (darker), torso, right leg, arms, head.
    for i, j, w, col in ((sk.L_HIP, sk.L_KNEE, 1.2, darker), (sk.L_KNEE, sk.L_ANKLE, 1.0, darker), (sk.L_ANKLE, sk.L_BIG_TOE, 0.7, (40, 40, 40)),
                         (sk.R_HIP, sk.R_KNEE, 1.2, fig.trousers), (sk.R_KNEE, sk.R_ANKLE, 1.0, fig.trousers), (sk.R_ANKLE, sk.R_BIG_TOE, 0.7, (40, 40, 40))):  # fmt: skip
        _capsule(img, b[i], b[j], w * limb, col)
    torso = np.array([b[sk.R_SHOULDER, :2], b[sk.L_SHOULDER, :2], b[sk.L_HIP, :2], b[sk.R_HIP, :2]]) * 4
    cv2.fillConvexPoly(img, np.round(torso).astype(np.int32), fig.shirt, cv2.LINE_AA, shift=2)
    _capsule(img, b[sk.R_SHOULDER], b[sk.L_SHOULDER], limb, fig.shirt)
    _capsule(img, b[sk.R_HIP], b[sk.L_HIP], limb, fig.trousers)
    for i, j, w, col in ((sk.R_SHOULDER, sk.R_ELBOW, 0.9, fig.shirt), (sk.R_ELBOW, sk.R_WRIST, 0.75, fig.skin),
                         (sk.L_SHOULDER, sk.L_ELBOW, 0.9, fig.shirt), (sk.L_ELBOW, sk.L_WRIST, 0.75, fig.skin)):  # fmt: skip
        _capsule(img, b[i], b[j], w * limb, col)
    for wrist in (sk.R_WRIST, sk.L_WRIST):
        cv2.circle(img, _ip(b[wrist]), round(0.5 * limb * 4), fig.skin, -1, cv2.LINE_AA, shift=2)
    for hand in (pose.hand_right, pose.hand_left):
        if hand[:, 2].min() <= 0:
            continue
        for finger in range(5):  # palm to fingertip, thinner towards the tip
            chain = hand[[0, *range(1 + 4 * finger, 5 + 4 * finger)], :2]
            for k in range(4):
                _capsule(img, chain[k], chain[k + 1], (0.4 if k == 0 else 0.25) * limb, fig.skin)
    r = fig.head_radius * scale
    head = (b[sk.R_EAR, :2] + b[sk.L_EAR, :2]) / 2
    _capsule(img, b[sk.NECK], head, 0.6 * limb, fig.skin)
    cv2.ellipse(img, _ip(head), (round(r * 4), round(1.15 * r * 4)), 0, 0, 360, fig.skin, -1, cv2.LINE_AA, shift=2)
    cv2.ellipse(img, _ip(head), (round(r * 4), round(1.15 * r * 4)), 0, 180, 360, fig.hair, -1, cv2.LINE_AA, shift=2)
    for eye in (sk.R_EYE, sk.L_EYE):
        cv2.circle(img, _ip(b[eye]), max(1, round(0.12 * r * 4)), (30, 30, 30), -1, cv2.LINE_AA, shift=2)
    face = pose.face
    mouth = np.round(face[48:60, :2] * 4).astype(np.int32)
    cv2.polylines(img, [mouth], True, (150, 60, 60), 1, cv2.LINE_AA, shift=2)
    return img


# --------------------------------------------------------------------------- choreographies


def _figure_for(seed: int) -> tuple[Figure, np.random.Generator]:
    rng = np.random.default_rng(seed)
    palette = [(200, 60, 60), (60, 140, 80), (70, 90, 190), (210, 150, 40), (140, 70, 160), (30, 150, 160)]
    shirt, trousers = (palette[i] for i in rng.choice(len(palette), 2, replace=False))
    skin = [(224, 172, 140), (198, 134, 66), (141, 85, 36), (241, 194, 160)][int(rng.integers(4))]
    fig = Figure(
        torso=0.30 * rng.uniform(0.95, 1.05), shoulder=0.10 * rng.uniform(0.9, 1.1), thigh=0.23 * rng.uniform(0.95, 1.05),
        skin=skin, shirt=shirt, trousers=trousers,
    )  # fmt: skip
    return fig, rng


def _render(
    seconds: float, fps: float, size: tuple[int, int], seed: int, choreography: Callable[[float, _Params, tuple[int, int]], tuple[float, Point, Angles]]
) -> tuple[list[np.ndarray], list[Pose]]:
    if seconds <= 0 or fps <= 0:
        raise InputError(f"The sample needs a positive duration and frame rate (got {seconds} s at {fps} fps).")
    width, height = (int(v) for v in size)
    if width < 64 or height < 64:
        raise InputError(f"The sample video must be at least 64x64 pixels (got {width}x{height}).")
    fig, rng = _figure_for(seed)
    params = _Params(rng.uniform(0.0, 1.0, 8))
    frames, poses = [], []
    for k in range(max(1, round(seconds * fps))):
        fig_height, mid_hip, angles = choreography(k / fps, params, (width, height))
        pose = figure_pose(fig, fig_height, mid_hip, angles)
        frames.append(draw_figure(pose, (width, height), fig))
        poses.append(pose)
    return frames, poses


class _Params:
    """Per-seed random constants of a choreography (tempo, amplitudes, phases), read by index."""

    def __init__(self, values: np.ndarray):
        self.v = values

    def __getitem__(self, i: int) -> float:
        return float(self.v[i])


def _target_dance(t: float, p: _Params, size: tuple[int, int]) -> tuple[float, Point, Angles]:
    width, height = size
    w = 2 * math.pi * (0.55 + 0.3 * p[0])
    depth = 0.5 + 0.5 * math.sin(w * t / 3 + 2 * math.pi * p[1])  # 0 far .. 1 near
    fig_h = height * (0.62 + 0.18 * depth)
    feet_y = height * (0.86 + 0.1 * depth)
    sway = math.sin(w * t / 2 + p[2])
    mid_hip = (width * (0.5 + 0.06 * sway), feet_y - fig_h * 0.45 * (0.98 + 0.02 * math.cos(w * t)))
    wave = 0.5 + 0.5 * math.sin(w * t)
    angles = Angles(
        lean=0.08 * sway,
        r_upper=-(0.3 + 1.9 * wave), r_fore=-(0.4 + 0.5 * math.sin(w * t + 1.0)),
        l_upper=0.3 + 1.9 * (0.5 + 0.5 * math.sin(w * t + math.pi * (0.6 + 0.4 * p[3]))), l_fore=0.4 + 0.5 * math.sin(w * t + 2.0),
        r_thigh=-0.08 - 0.12 * max(0.0, sway), r_shin=0.1 * max(0.0, sway),
        l_thigh=0.08 + 0.12 * max(0.0, -sway), l_shin=-0.1 * max(0.0, -sway),
    )  # fmt: skip
    return fig_h, mid_hip, angles


def _source_dance(t: float, p: _Params, size: tuple[int, int]) -> tuple[float, Point, Angles]:
    width, height = size
    w = 2 * math.pi * (0.9 + 0.4 * p[4])
    side = math.sin(w * t / 2 + p[5])
    bounce = abs(math.sin(w * t))
    depth = 0.5 + 0.5 * math.sin(w * t / 4 + 2 * math.pi * p[6])
    fig_h = height * (0.42 + 0.1 * depth)
    feet_y = height * (0.7 + 0.06 * depth) - 0.03 * height * bounce
    mid_hip = (width * (0.5 + 0.2 * side), feet_y - fig_h * 0.44)
    alt = math.sin(w * t)
    angles = Angles(
        lean=-0.05 * side,
        r_upper=-(1.2 + 1.0 * alt), r_fore=-0.8 * max(0.0, alt),
        l_upper=1.2 - 1.0 * alt, l_fore=0.8 * max(0.0, -alt),
        r_thigh=-0.15 - 0.2 * bounce, r_shin=0.25 * bounce, l_thigh=0.15 + 0.2 * bounce, l_shin=-0.25 * bounce,
    )  # fmt: skip
    return fig_h, mid_hip, angles


def make_sample_target(seconds: float = 4.0, fps: float = 15, size: tuple[int, int] = (512, 288), seed: int = 0) -> tuple[list[np.ndarray], list[Pose]]:
    """The sample *target* person: RGB frames of ``size`` = (width, height) and their exact poses."""
    return _render(seconds, fps, size, seed, _target_dance)


def make_sample_motion(seconds: float = 4.0, fps: float = 15, size: tuple[int, int] = (512, 288), seed: int = 1) -> tuple[list[np.ndarray], list[Pose]]:
    """The sample *source* motion (another dancer and choreography): frames and exact poses."""
    return _render(seconds, fps, size, seed, _source_dance)


def write_sample_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Save sample frames as a browser-playable MP4 (through the shared media module)."""
    from pipelines.common.media import write_video

    return write_video(frames, path, fps)
