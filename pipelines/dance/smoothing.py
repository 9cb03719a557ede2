"""Temporal median of pose tracks: EDN's ``getmedians_adapt`` and a centred smoother built on it.

Detected keypoints jitter from frame to frame and the GAN turns jitter into flicker, so poses are
median-filtered over a short window. The rule is EDN's adaptive median: per keypoint the
component-wise median of (x, y, confidence) over the window; if that median confidence is positive,
the median is taken again over only the frames where the point was found, so a point missing in a
few frames neither drags the position towards (0, 0) nor disappears.

API::

    adaptive_median(points_window) -> (n, 3)          # EDN's getmedians_adapt on one point set
    median_pose(poses) -> Pose                        # all four point sets of a window of poses
    smooth_tracks(poses, window=7) -> list[Pose]      # centred, same length (windows shrink at the ends)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.common.errors import InputError
from pipelines.dance.skeleton import Pose


def adaptive_median(window: Sequence[np.ndarray] | np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Window of ``(n, 3)`` point sets (one per frame) -> their adaptive median ``(n, 3)``."""
    stack = np.asarray(window, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[-1] != 3 or stack.shape[0] == 0:
        raise InputError(f"Expected a non-empty window of (n, 3) keypoint arrays, got shape {stack.shape}.")
    med = np.median(stack, axis=0)
    confident = stack[:, :, 2] > threshold  # (frames, n)
    # Only points whose median confidence is positive and that are missing somewhere need the
    # second median; for the others it equals the first.
    redo = np.nonzero((med[:, 2] > 0) & ~confident.all(axis=0))[0]
    for j in redo:
        rows = stack[confident[:, j], j, :]
        med[j] = np.median(rows, axis=0) if len(rows) else 0.0
    return med


def median_pose(poses: Sequence[Pose]) -> Pose:
    """Adaptive median of a window of (non-empty) poses, point set by point set."""
    if not poses or any(p.is_empty for p in poses):
        raise InputError("Cannot take the median of a window that contains frames without a person.")
    return Pose(
        adaptive_median([p.body for p in poses]),
        adaptive_median([p.face for p in poses]),
        adaptive_median([p.hand_right for p in poses]),
        adaptive_median([p.hand_left for p in poses]),
    )


def smooth_tracks(poses: Sequence[Pose], window: int = 7) -> list[Pose]:
    """Centred temporal median over ``window`` frames (odd), same length as the input.

    Frames without a person stay empty and are left out of their neighbours' windows; near the
    ends the window shrinks symmetrically so the first and last frames stay in place.
    """
    if window < 1 or window % 2 == 0:
        raise InputError(f"The smoothing window must be a positive odd number of frames, got {window}.")
    half = window // 2
    out: list[Pose] = []
    for i, pose in enumerate(poses):
        if pose.is_empty:
            out.append(pose.copy())
            continue
        reach = min(half, i, len(poses) - 1 - i)
        members = [p for p in poses[i - reach : i + reach + 1] if not p.is_empty]
        out.append(median_pose(members))
    return out
