"""The 70 face points of an Everybody Dance Now label, in OpenPose's face layout.

OpenPose's face output is the 68 iBUG-300W landmarks (jaw 0-16, brows 17-26, nose 27-35, eyes
36-47, mouth 48-67) plus the two pupils: 68 = the right eye's (the person's right, points 36-41),
69 = the left eye's (42-47). The pupils are placed at the centre of their eye contour, where
OpenPose's face network puts them for a subject looking ahead. The 68 landmarks come from
face-alignment when its weights are in the weights cache, else from dlib's 68-point predictor
(:func:`pipelines.common.faces.best_face_landmarks`).

The face is searched around EDN's face box: the square of ``2 * BOX_BUFFER`` canvas pixels
around the face centre (nose, else the ears; ``render.face_centre``) that the face GAN crops,
brought back to frame pixels and widened so the detector sees the whole head, or a head-sized
square from the nose-neck distance when that is larger (close-ups); the face nearest the face
centre wins, so a bystander's face is never taken. A face the frontal detector misses (a profile,
a small face) is fitted in a rectangle placed from the head keypoints (:func:`head_box`), as
OpenPose places its face rectangle from the body, when the nose and an eye are visible.
"""

from __future__ import annotations

import numpy as np

from pipelines.dance.render import BOX_BUFFER, canvas_transform, face_centre
from pipelines.dance.skeleton import L_EAR, L_EYE, NECK, NOSE, R_EAR, R_EYE

NUM_FACE_POINTS = 70
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
HEAD_FRACTION_OF_NECK = 0.55  # face rectangle side / nose-neck distance
SEARCH_MARGIN = 1.5
SEARCH_MAX_FACES = 2  # the search square holds this person's head and at most a neighbour's: the largest two
FITTED_CONFIDENCE = 0.5  # points fitted in the head box without a detector's confirmation  # the search square is this many times EDN's face box (the detector needs the whole head)


def face70_from_landmarks(landmarks68: np.ndarray, confidence: float = 1.0) -> np.ndarray:
    """iBUG 68 landmarks -> OpenPose's 70 face points (68 + right pupil + left pupil), ``(70, 3)``."""
    lm = np.asarray(landmarks68, dtype=np.float64).reshape(68, 2)
    pts = np.vstack([lm, lm[RIGHT_EYE].mean(0), lm[LEFT_EYE].mean(0)])
    return np.hstack([pts, np.full((NUM_FACE_POINTS, 1), confidence)])


def face_search_box(body: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) in frame pixels where the face is searched, or None without a head point."""
    if not any(body[i, 2] > 0 for i in (NOSE, R_EAR, L_EAR)):
        return None
    cx, cy = face_centre(body)
    fit = canvas_transform(frame_shape)
    canvas_scale = fit[0] if fit is not None else 1.0
    half = SEARCH_MARGIN * BOX_BUFFER / canvas_scale  # EDN's box: BOX_BUFFER canvas px each side
    if body[NOSE, 2] > 0 and body[NECK, 2] > 0:
        half = max(half, 1.6 * float(np.linalg.norm(body[NOSE, :2] - body[NECK, :2])))
    half = max(half, 24.0)
    h, w = int(frame_shape[0]), int(frame_shape[1])
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1, y1 = int(min(cx + half, w)), int(min(cy + half, h))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return x0, y0, x1, y1


def head_box(body: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """A face rectangle (left, top, right, bottom) from the head keypoints alone, for faces a
    frontal detector misses (profiles, small faces), as OpenPose places its face rectangle from
    the body: centred on the visible nose/eyes/ears, its side a fraction of the nose-neck
    distance (the head is about half of it), or of the ear span when the neck is missing. None
    unless the nose and an eye are visible."""
    if not (body[NOSE, 2] > 0 and (body[R_EYE, 2] > 0 or body[L_EYE, 2] > 0)):
        return None  # the face is not turned towards the camera (a head seen from behind shows ears only)
    head = [body[i, :2] for i in (NOSE, R_EYE, L_EYE, R_EAR, L_EAR) if body[i, 2] > 0]
    centre = np.mean(head, axis=0)
    if body[NOSE, 2] > 0 and body[NECK, 2] > 0:
        side = HEAD_FRACTION_OF_NECK * float(np.linalg.norm(body[NOSE, :2] - body[NECK, :2]))
    elif body[R_EAR, 2] > 0 and body[L_EAR, 2] > 0:
        side = 1.1 * float(np.linalg.norm(body[R_EAR, :2] - body[L_EAR, :2]))
    else:
        return None
    h, w = int(frame_shape[0]), int(frame_shape[1])
    x0, y0 = round(float(centre[0]) - side / 2), round(float(centre[1]) - side / 2 + 0.1 * side)
    x1, y1 = x0 + round(side), y0 + round(side)
    if side < 12 or x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        return None
    return x0, y0, x1, y1


def face_points(frame_rgb: np.ndarray, body: np.ndarray) -> np.ndarray | None:
    """The 70 face points of the person whose BODY_23 ``body`` is given (frame pixels), or None
    when it has no head keypoints. A face the detector finds in the search square wins (the one
    nearest the face centre); else the landmarks are fitted in :func:`head_box` (confidence
    :data:`FITTED_CONFIDENCE`)."""
    from pipelines.common import faces

    box = face_search_box(body, frame_rgb.shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    offset = np.array([x0, y0], dtype=np.float64)
    found = [lm + offset for lm in faces.best_face_landmarks(frame_rgb[y0:y1, x0:x1], max_faces=SEARCH_MAX_FACES)]
    centre = np.asarray(face_centre(body))
    if found:
        return face70_from_landmarks(min(found, key=lambda lm: float(np.linalg.norm(lm[30] - centre))))
    rect = head_box(body, frame_rgb.shape)
    if rect is None:
        return None
    return face70_from_landmarks(faces.best_landmarks_in_box(frame_rgb, rect), confidence=FITTED_CONFIDENCE)
