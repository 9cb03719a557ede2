"""Global pose normalisation (EDN ``graph_posenorm.py``): fit the source dancer into the target's frame.

The generator only knows the target person at the sizes and floor positions of its training video.
The source dancer may be filmed closer, further or higher in the frame, so every source frame is
scaled and shifted by amounts that depend on how far down the frame its feet are:

* per video (:func:`video_stats`): over every frame where head, right ankle and left ear are found,
  the lowest toe position ``maxtoe``, the median toe position, a "horizon" toe position a bit
  above the median, and the body heights seen at each toe position;
* :func:`norm_params`: target/source (maxtoe, horizon) pairs (the target's range shrunk to the
  source's width when the source moves less) and the near/far height ratios (scale_close, scale_far);
* per source frame: ``p = (toe - horizon_S) / (maxtoe_S - horizon_S)``,
  ``shift = horizon_T + p (maxtoe_T - horizon_T) - toe``, ``scale = far + p (close - far)``; every
  point is scaled about (W/2, y of the lower ankle of the first usable frame) and shifted down;
* a 7-frame sliding adaptive median; one smoothed pose per full window (N - 6 outputs, each
  aligned with the 4th frame of its window).

Poses are BODY_23 in the coordinates of the 1080x1920 label canvas (see ``render.fit_pose_to_canvas``).
The original draws its statistics frames at random with replacement; here it is one deterministic
pass over every frame, so results are reproducible. Where the original would crash (no frame with
head, ankle and left ear; a dancer whose feet never move) a specific :class:`InputError` or a
documented fallback is used instead.

API::

    pose_stats(body) -> (height, min_toe, max_toe) | None
    video_stats(poses, median_frac=0.5) -> VideoStats
    norm_params(target_stats, source_stats, frac=0.05) -> NormParams
    normalize_sequence(source_poses, target_poses, ...) -> Normalization   # poses + alignment + details
    normalize_poses(source_poses, target_poses, ...) -> list[Pose]         # just the smoothed poses
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import sqrt

import numpy as np

from pipelines.common.errors import InputError
from pipelines.dance.render import CANVAS_SHAPE
from pipelines.dance.skeleton import L_ANKLE, L_EAR, NOSE, R_ANKLE, R_EAR, Pose
from pipelines.dance.smoothing import median_pose

PoseSeq = Sequence[Pose] | Mapping[int, Pose]


def pose_stats(body: np.ndarray | None) -> tuple[float, float, float] | None:
    """(height, min toe y, max toe y) of a BODY_23 pose, or None when it cannot be measured.

    Needs the head (nose, else both ears' midpoint), the right ankle and - a quirk kept from the
    original, which tests the left *ear* where the left ankle was meant - the left ear.
    """
    if body is None:
        return None
    head_ok = body[NOSE, 2] > 0
    head_x, head_y = body[NOSE, 0], body[NOSE, 1]
    if not head_ok:
        head_ok = body[R_EAR, 2] > 0 and body[L_EAR, 2] > 0
        head_x = 0.5 * (body[R_EAR, 0] + body[L_EAR, 0])
        head_y = 0.5 * (body[R_EAR, 1] + body[L_EAR, 1])
    if not (head_ok and body[R_ANKLE, 2] > 0 and body[L_EAR, 2] > 0):
        return None
    foot_x = (body[R_ANKLE, 0] + body[L_ANKLE, 0]) * 0.5
    foot_y = (body[R_ANKLE, 1] + body[L_ANKLE, 1]) * 0.5
    height = sqrt((head_x - foot_x) ** 2 + (head_y - foot_y) ** 2)
    toes = (float(body[R_ANKLE, 1]), float(body[L_ANKLE, 1]))
    return float(height), min(toes), max(toes)


@dataclass
class VideoStats:
    """Toe/height statistics of one video (target = the trained person, source = the motion)."""

    maxheight: float
    mintoe: float
    maxtoe: float
    median: float
    horizon: float
    tiptoe_to_height: dict[float, list[float]]
    frames_used: int


def _frames(poses: PoseSeq) -> list[tuple[int, Pose]]:
    items = poses.items() if isinstance(poses, Mapping) else enumerate(poses)
    return sorted(((int(n), p) for n, p in items), key=lambda t: t[0])


def video_stats(poses: PoseSeq, median_frac: float = 0.5, frame_height: int = CANVAS_SHAPE[0], what: str = "video") -> VideoStats:
    """Statistics over every measurable frame (:func:`pose_stats`), in frame order."""
    maxheight, mintoe, maxtoe = 0.0, float(frame_height), 0.0
    toes: list[float] = []
    t2h: dict[float, list[float]] = {}
    for _, pose in _frames(poses):
        if pose.body_format != "BODY_23":
            continue  # EDN normalises BODY_23 only (69 numbers); anything else counts as "EMPTY"
        check = pose_stats(pose.body)
        if check is None:
            continue
        height, min_toe, max_toe = check
        maxheight = max(maxheight, height)
        mintoe = min(mintoe, min_toe)
        maxtoe = max(maxtoe, max_toe)
        toes.append(max_toe)
        t2h.setdefault(max_toe, []).append(height)
    if not toes:
        raise InputError(
            f"The {what} has no frame where the head, the right ankle and the left ear are all visible, "
            "so its size and floor position cannot be measured. Use a clip where the whole body is in view."
        )
    median = float(np.median(toes))
    above = median - np.asarray(toes)
    kept = above[(above > 0) & (above < median_frac * (maxtoe - median))]
    # The original crashes (argmax of nothing) when no toe lies just above the median; then the
    # dancer never moves towards the camera and the median itself is the horizon.
    horizon = (kept.max() - median) * -1 if kept.size else median
    return VideoStats(maxheight, mintoe, maxtoe, median, float(horizon), t2h, len(toes))


@dataclass
class NormParams:
    """``norm_params.txt``: scale_close, scale_far and the (maxtoe, horizon) pairs."""

    scale_close: float
    scale_far: float
    target: tuple[float, float]  # (maxtoe, horizon), possibly shrunk to the source's range
    source: tuple[float, float]

    def text(self) -> str:
        return f"{self.scale_close} {self.scale_far}\n{self.target[0]} {self.target[1]} {self.source[0]} {self.source[1]}"

    def shift_and_scale(self, toe: float) -> tuple[float, float]:
        """(y shift, scale) of a source frame whose lower ankle is at ``toe`` (calculate_translation)."""
        t_maxtoe, t_horizon = self.source
        m_maxtoe, m_horizon = self.target
        span = float(t_maxtoe - t_horizon)
        percentage = (toe - t_horizon) / span if span != 0 else 0.0  # feet never moved: use the far end
        m_coord = m_horizon + percentage * float(m_maxtoe - m_horizon)
        scale = self.scale_far + percentage * float(self.scale_close - self.scale_far)
        return m_coord - toe, scale


def _largest_height(t2h: Mapping[float, list[float]], centre: float, reach: float) -> float:
    best = 0.0
    for key, heights in t2h.items():
        if abs(key - centre) <= reach and max(heights) > best:
            best = max(heights)
    return best


def norm_params(target: VideoStats, source: VideoStats, frac: float = 0.05) -> NormParams:
    """Translation pairs and near/far scales from the two videos' statistics (get_minmax_scales)."""
    m_pair = (target.maxtoe, target.horizon)
    t_pair = (source.maxtoe, source.horizon)
    if t_pair[0] - t_pair[1] < m_pair[0] - m_pair[1]:
        middle = 0.5 * (m_pair[0] + m_pair[1])
        half = 0.5 * (t_pair[0] - t_pair[1])
        m_pair = (middle + half, middle - half)
    heights = []
    for stats, (maxtoe, horizon) in ((target, m_pair), (source, t_pair)):
        reach = (maxtoe - horizon) * frac
        close = _largest_height(stats.tiptoe_to_height, maxtoe, reach)
        far = _largest_height(stats.tiptoe_to_height, horizon, reach)
        max_all = max(stats.tiptoe_to_height.values())[0]
        if max_all - close > 0.1 * max_all:
            close = max_all
        heights.append((close, far))
    (close_m, far_m), (close_t, far_t) = heights
    scale_close = close_m / float(close_t)
    # No source frame near its horizon (the original divides by zero): use the near ratio.
    scale_far = far_m / float(far_t) if far_t > 0 and far_m > 0 else scale_close
    return NormParams(scale_close, scale_far, m_pair, t_pair)


@dataclass
class FrameTransform:
    """What happened to one source frame (for inspection and the parity case)."""

    frame: int
    measured: bool  # False: statistics failed, the previous shift and scale were reused
    diff: float
    scale: float
    min_coords: tuple[float, float]
    translateback: tuple[float, float]
    pose: Pose


@dataclass
class Normalization:
    """Result of :func:`normalize_sequence`: smoothed poses and the source frame each belongs to."""

    poses: list[Pose]
    frames: list[int]  # source frame number of each pose (the centre of its window)
    windows: list[list[int]]
    params: NormParams
    target_stats: VideoStats
    source_stats: VideoStats
    transforms: list[FrameTransform] = field(default_factory=list)


def normalize_sequence(
    source_poses: PoseSeq,
    target_poses: PoseSeq,
    *,
    window: int = 7,
    target_median_frac: float = 0.5,
    source_median_frac: float = 0.5,
    scale_frac: float = 0.05,
    canvas_shape: tuple[int, int] = CANVAS_SHAPE,
    source_stats_frames: Sequence[int] | None = None,
    target_stats_frames: Sequence[int] | None = None,
    source_frames: Sequence[int] | None = None,
) -> Normalization:
    """Normalise the source poses to the target video and median-smooth them (transform_interp).

    Poses are given as a list (frame number = index) or a ``{frame number: Pose}`` mapping.
    ``*_stats_frames`` restrict which frames feed the statistics and ``source_frames`` which are
    transformed (default: all); the original uses ``[start, end)`` for the former and
    ``start..end`` inclusive for the latter.
    """
    if window < 1:
        raise InputError(f"The smoothing window must be at least 1 frame, got {window}.")
    source = dict(_frames(source_poses))
    target = dict(_frames(target_poses))
    if not source:
        raise InputError("The source video has no poses to transfer.")

    def pick(poses: dict[int, Pose], frames: Sequence[int] | None) -> dict[int, Pose]:
        return poses if frames is None else {n: poses[n] for n in frames if n in poses}

    t_stats = video_stats(pick(target, target_stats_frames), target_median_frac, canvas_shape[0], "target video")
    s_stats = video_stats(pick(source, source_stats_frames), source_median_frac, canvas_shape[0], "source video")
    params = norm_params(t_stats, s_stats, scale_frac)

    out = Normalization([], [], [], params, t_stats, s_stats)
    min_coords: tuple[float, float] | None = None
    last = (0.0, 0.0)
    pending: list[tuple[int, Pose]] = []
    for n in sorted(source) if source_frames is None else source_frames:
        pose = source.get(n)
        if pose is None or pose.body_format != "BODY_23":
            continue  # no single BODY_23 person in this frame: ignored, as the original's "EMPTY"
        check = pose_stats(pose.body)
        if check is None and min_coords is None:
            continue
        diff, scale = last if check is None else params.shift_and_scale(check[2])
        last = (diff, scale)
        if min_coords is None:
            body = pose.body
            lower = R_ANKLE if body[R_ANKLE, 1] > body[L_ANKLE, 1] else L_ANKLE
            min_coords = (canvas_shape[1] // 2, float(body[lower, 1]))
        translateback = (min_coords[0] - scale * min_coords[0], min_coords[1] - scale * min_coords[1] + diff)
        moved = pose.transformed(scale, translateback)
        out.transforms.append(FrameTransform(n, check is not None, diff, scale, min_coords, translateback, moved))
        pending.append((n, moved))
        if len(pending) >= window:
            out.poses.append(median_pose([p for _, p in pending]))
            out.frames.append(pending[window // 2][0])
            out.windows.append([m for m, _ in pending])
            pending = pending[1:]
    return out


def normalize_poses(source_poses: PoseSeq, target_poses: PoseSeq, **options: object) -> list[Pose]:
    """The smoothed, normalised source poses (one per full 7-frame window: N - 6 of N frames).

    Use :func:`normalize_sequence` for the source frame each pose belongs to (``.frames``).
    """
    return normalize_sequence(source_poses, target_poses, **options).poses  # type: ignore[arg-type]
