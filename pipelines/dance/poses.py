"""Everything OpenPose gives EDN for one person per frame: body (COCO-18 -> BODY_23), 70 face points
and 21 points per hand, in frame pixels.

The body comes from :mod:`pipelines.dance.openpose` (the dancer picked and tracked with
``pick_person``), the face from :mod:`pipelines.dance.face_points`, the hands from
:mod:`pipelines.dance.hands` in the boxes the body's arms give (``handDetect``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from pipelines.common.progress import stop_point
from pipelines.dance.face_points import face_points
from pipelines.dance.hands import HandEstimator, detect_hands
from pipelines.dance.openpose import BodyEstimator, people_to_coco18, pick_person
from pipelines.dance.skeleton import Pose, coco18_to_body23


def estimate_poses(
    frames_rgb: Iterable[np.ndarray],
    *,
    estimator: BodyEstimator | None = None,
    faces: bool = True,
    hands: HandEstimator | None = None,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> list[Pose]:
    """One :class:`Pose` (BODY_23, frame pixels) per RGB frame: the dancer (see :func:`pick_person`),
    or an empty pose. ``faces=True`` adds the 70 face points (:mod:`pipelines.dance.face_points`);
    ``hands`` (a :class:`~pipelines.dance.hands.HandEstimator`) adds 21 points per hand in the
    boxes the body's arms give; ``None``: no hands."""
    estimator = estimator or BodyEstimator.from_pretrained()
    frames = [np.asarray(f) for f in frames_rgb]
    poses: list[Pose] = []
    previous: np.ndarray | None = None
    for start in range(0, len(frames), batch_size):
        chunk = frames[start : start + batch_size]
        bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in chunk]
        results = estimator.detect_batch(bgr, batch_size)
        for frame, frame_bgr, (candidate, subset) in zip(chunk, bgr, results, strict=True):
            stop_point()  # face points and hands cost up to seconds per frame on a CPU
            person = pick_person(people_to_coco18(candidate, subset), previous)
            if person is None:
                poses.append(Pose.empty())
                continue
            previous = person
            body = coco18_to_body23(person)
            face = face_points(frame, body) if faces else None
            right, left = detect_hands(frame_bgr, person, hands) if hands is not None else (None, None)
            poses.append(Pose(body, face=face, hand_right=right, hand_left=left))
        if progress:
            progress(min(start + batch_size, len(frames)), len(frames))
    return poses
