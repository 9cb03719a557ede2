"""Stick-figure label images, drawn exactly as Everybody Dance Now's data preparation draws them.

The GAN learns "label image -> person", so labels at transfer time must be pixel-compatible with
the labels it was trained on; hence this module reproduces ``graph_train.py`` /
``renderopenpose.py`` (renderpose23, renderface_sparse, renderhand, aveface, makebox128) down to
OpenCV's rounding: BGR colour tables (BODY_23; COCO-18 and BODY_25 files too), a 1920x1080 white canvas, joints as radius-8 dots, limbs as
1-degree ``ellipse2Poly`` polygons blended 60 % over the canvas one by one, 8 black face dots, hand
skeletons, then RGB and PIL LANCZOS to 1024x512. The face box is the 128x128 square in label
pixels around the nose that the face GAN crops.

Speed: each blended stick touches only the bounding box of its polygon (pixels outside keep their
value under the 0.4/0.6 blend), which gives the same pixels as blending the full canvas.

API::

    render_label(pose, size=(1024, 512), *, num_face_keypoints=8, frame_shape=None)
        -> (label_rgb_uint8 (H, W, 3), face_box (miny, maxy, minx, maxx))
    render_canvas(pose, *, num_face_keypoints=8, stages=False) -> canvas RGB uint8 (1080, 1920, 3)
    face_box(body, size=(1024, 512)) -> (miny, maxy, minx, maxx)
    fit_pose_to_canvas(pose, frame_shape) -> Pose;  fit_frame_to_canvas(frame) -> frame on 1080x1920
    resize_to_label(image_rgb, size=(1024, 512)) -> image (PIL LANCZOS, as the labels)
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from pipelines.common.errors import InputError
from pipelines.dance.skeleton import L_EAR, NOSE, R_EAR, Pose

CANVAS_SHAPE = (1080, 1920)  # rows, cols: EDN draws everything on a 1080p canvas
LABEL_SIZE = (1024, 512)  # (width, height) of the label images the GAN sees
FACE_BOX = 128
BOX_BUFFER = 70

# OpenCV colour tables (B, G, R), as in renderopenpose.py. Joint 16 is (0, 212.5, 255) there;
# OpenCV rounds the 212.5 half to even when it builds the Scalar, so it draws 212.
BODY23_COLORS_BGR = (
    (255, 0, 0), (255, 55, 0), (255, 110, 0), (255, 165, 0), (255, 215, 0), (255, 235, 0),
    (255, 255, 0), (255, 0, 0), (175, 255, 0), (85, 255, 0), (0, 255, 0), (0, 255, 85),
    (0, 255, 170), (25, 25, 128), (0, 85, 255), (0, 170, 255), (0, 212, 255), (0, 255, 255),
    (255, 0, 0), (255, 0, 255), (238, 130, 238), (138, 43, 226), (75, 0, 130),
)  # fmt: skip
BODY23_LIMBS = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10), (10, 11),
    (10, 12), (7, 13), (13, 14), (14, 15), (15, 16), (15, 17), (0, 18), (18, 19), (19, 20),
    (18, 21), (21, 22),
)  # fmt: skip
# renderposeCOCO: Hzzone/OpenPose COCO palette, 17 limbs (no ear-shoulder sticks).
COCO_COLORS_BGR = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
COCO_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# renderpose25 (BODY_25 files drawn without --map_25_to_23).
BODY25_COLORS_BGR = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255), (0, 0, 255),
    (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
)  # fmt: skip
BODY25_LIMBS = (
    (0, 1), (0, 15), (0, 16), (1, 2), (1, 5), (1, 8), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (8, 12),
    (9, 10), (10, 11), (11, 22), (11, 24), (12, 13), (13, 14), (14, 19), (14, 21), (15, 17), (16, 18),
    (19, 20), (22, 23),
)  # fmt: skip
BODY_STYLES = {  # joints -> (colours, limbs)
    23: (BODY23_COLORS_BGR, BODY23_LIMBS),
    25: (BODY25_COLORS_BGR, BODY25_LIMBS),
    18: (COCO_COLORS_BGR, COCO_LIMBS),
}
HAND_COLORS_BGR = (
    (230, 53, 40), (231, 115, 64), (233, 136, 31), (213, 160, 13), (217, 200, 19), (170, 210, 35),
    (139, 228, 48), (83, 214, 45), (77, 192, 46), (83, 213, 133), (82, 223, 190), (80, 184, 197),
    (78, 140, 189), (86, 112, 208), (83, 73, 217), (123, 46, 183), (189, 102, 255), (218, 83, 232),
    (229, 65, 189), (236, 61, 141), (255, 102, 145),
)  # fmt: skip
# Bones per finger (a, a+1), (a+1, a+2), (a+2, a+3), then wrist -> finger base (0, a).
HAND_BONES = tuple(
    bone for a in (1, 5, 9, 13, 17) for bone in ((a, a + 1), (a + 1, a + 2), (a + 2, a + 3), (0, a))
)
FACE_POINTS_8 = (27, 30, 8, 0, 16, 33, 68, 69)  # nose top, nose tip, chin, jaw ends, nose base, pupils
FACE_POINTS_22 = (27, 30, 8, 0, 16, 31, 33, 35, 68, 69, 36, 39, 42, 45, 17, 21, 22, 26, 48, 51, 54, 57)
FACE_MIN_MEAN_CONFIDENCE = 0.2
HAND_THRESHOLD = 0.05


def face_point_list(num_face_keypoints: int) -> tuple[int, ...]:
    """The face points drawn for ``--num_face_keypoints`` (22, 9, or the default 8 for anything else)."""
    if num_face_keypoints == 22:
        return FACE_POINTS_22
    if num_face_keypoints == 9:
        return (*FACE_POINTS_8, 62)
    return FACE_POINTS_8


# --------------------------------------------------------------------------- drawing primitives


def _blend_stick(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, half_width: int, color: tuple[int, ...]) -> np.ndarray:
    """One 60 %-opaque stick from point a to b (EDN's ellipse-polygon limb), in place."""
    xa, ya, xb, yb = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    mean_x, mean_y = (xa + xb) / 2, (ya + yb) / 2  # np.mean of two values
    length = ((ya - yb) ** 2 + (xa - xb) ** 2) ** 0.5
    angle = math.degrees(math.atan2(ya - yb, xa - xb))
    polygon = cv2.ellipse2Poly((int(mean_x), int(mean_y)), (int(length / 2), half_width), int(angle), 0, 360, 1)
    h, w = canvas.shape[:2]
    x0, y0 = max(int(polygon[:, 0].min()) - 1, 0), max(int(polygon[:, 1].min()) - 1, 0)
    x1, y1 = min(int(polygon[:, 0].max()) + 2, w), min(int(polygon[:, 1].max()) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return canvas  # entirely off the canvas: the full-canvas blend would change nothing
    roi = canvas[y0:y1, x0:x1]
    painted = roi.copy()
    cv2.fillConvexPoly(painted, np.ascontiguousarray(polygon - np.array([x0, y0], dtype=polygon.dtype)), color)
    canvas[y0:y1, x0:x1] = cv2.addWeighted(roi, 0.4, painted, 0.6, 0)
    return canvas


def draw_body(canvas_bgr: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Joints (radius 8, no blending), then the limbs (blended, colour of their first joint), on a
    BGR canvas, in place; BODY_23, BODY_25 or COCO-18 by the number of joints (EDN's renderpose)."""
    if len(body) not in BODY_STYLES:
        raise InputError(f"A pose of {len(body)} joints cannot be drawn (BODY_23, BODY_25 or COCO-18 expected).")
    colours, limbs = BODY_STYLES[len(body)]
    for i, (x, y, c) in enumerate(body):
        if c > 0:
            cv2.circle(canvas_bgr, (int(x), int(y)), 8, colours[i], thickness=-1)
    for ia, ib in limbs:
        if body[ia, 2] > 0 and body[ib, 2] > 0:
            _blend_stick(canvas_bgr, body[ia], body[ib], 4, colours[ia])
    return canvas_bgr


def draw_face_sparse(canvas_bgr: np.ndarray, face: np.ndarray, num_face_keypoints: int = 8) -> np.ndarray:
    """Black radius-4 dots at the sparse face points, skipped when mean confidence < 0.2."""
    if face[:, 2].sum() / 70.0 < FACE_MIN_MEAN_CONFIDENCE:
        return canvas_bgr
    for i in face_point_list(num_face_keypoints):
        x, y, c = face[i]
        if c > 0:
            cv2.circle(canvas_bgr, (int(x), int(y)), 4, (0, 0, 0), thickness=-1)
    return canvas_bgr


def draw_hand(canvas_bgr: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """Hand dots (radius 3) then bones (blended, colour of the bone's second point), in place."""
    for i, (x, y, c) in enumerate(hand):
        if c > HAND_THRESHOLD:
            cv2.circle(canvas_bgr, (int(x), int(y)), 3, HAND_COLORS_BGR[i], thickness=-1)
    for ia, ib in HAND_BONES:
        if hand[ia, 2] > HAND_THRESHOLD and hand[ib, 2] > HAND_THRESHOLD:
            _blend_stick(canvas_bgr, hand[ia], hand[ib], 2, HAND_COLORS_BGR[ib])
    return canvas_bgr


# --------------------------------------------------------------------------- labels


def render_canvas(
    pose: Pose, *, num_face_keypoints: int = 8, canvas_shape: tuple[int, int] = CANVAS_SHAPE, stages: bool = False
) -> np.ndarray | dict[str, np.ndarray]:
    """The full-resolution label canvas (RGB uint8) before the resize.

    With ``stages=True`` returns ``{"pose", "pose_face", "full"}`` RGB canvases after the body, the
    face dots and both hands, which is what the parity case checks pixel for pixel.
    """
    if pose.is_empty:
        raise InputError("No person in this frame: there is no pose to draw.")
    canvas = np.full((*canvas_shape, 3), 255, dtype=np.uint8)
    out: dict[str, np.ndarray] = {}
    draw_body(canvas, pose.body)
    if stages:
        out["pose"] = canvas[:, :, ::-1].copy()
    draw_face_sparse(canvas, pose.face, num_face_keypoints)
    if stages:
        out["pose_face"] = canvas[:, :, ::-1].copy()
    draw_hand(canvas, pose.hand_right)
    draw_hand(canvas, pose.hand_left)
    rgb = np.ascontiguousarray(canvas[:, :, ::-1])
    if stages:
        out["full"] = rgb
        return out
    return rgb


def resize_to_label(image_rgb: np.ndarray, size: tuple[int, int] = LABEL_SIZE) -> np.ndarray:
    """PIL LANCZOS (the old ``Image.ANTIALIAS``) to ``size`` = (width, height), as EDN resizes
    both labels and training frames."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(image_rgb)).resize(tuple(size), Image.LANCZOS))


def make_box(miny: int, maxy: int, minx: int, maxx: int, size: tuple[int, int] = LABEL_SIZE, box: int = FACE_BOX) -> tuple[int, int, int, int]:
    """Grow/shrink a box to ``box`` x ``box`` and keep it inside the label (EDN's makebox128)."""
    width, height = size
    miny, maxy = _fit_span(miny, maxy, box, height)
    minx, maxx = _fit_span(minx, maxx, box, width)
    return miny, maxy, minx, maxx


def _fit_span(low: int, high: int, box: int, limit: int) -> tuple[int, int]:
    """One axis of :func:`make_box`: a span of another length is re-centred (EDN's integer
    rounding: the end moves by half the difference) to ``box`` long, then moved inside ``0..limit``."""
    if high - low == box:
        return low, high
    high = high + (box - (high - low)) // 2
    low = high - box
    if high > limit:
        low, high = limit - box, limit
    if low < 0:
        low, high = 0, box
    return low, high


def face_centre(body: np.ndarray) -> tuple[float, float]:
    """Nose if found, else the ear midpoint, else the right ear, else the left ear (EDN's aveface)."""
    nose, r_ear, l_ear = {23: (NOSE, R_EAR, L_EAR), 25: (0, 17, 18)}.get(len(body), (0, 16, 17))
    if body[nose, 2] > 0:
        return float(body[nose, 0]), float(body[nose, 1])
    if body[r_ear, 2] > 0 and body[l_ear, 2] > 0:
        return 0.5 * (body[r_ear, 0] + body[l_ear, 0]), 0.5 * (body[r_ear, 1] + body[l_ear, 1])
    if body[r_ear, 2] > 0:
        return float(body[r_ear, 0]), float(body[r_ear, 1])
    return float(body[l_ear, 0]), float(body[l_ear, 1])


def face_box(
    body: np.ndarray,
    size: tuple[int, int] = LABEL_SIZE,
    canvas_shape: tuple[int, int] = CANVAS_SHAPE,
    buffer: int = BOX_BUFFER,
    box: int = FACE_BOX,
    limits: tuple[int, int] | None = None,
) -> tuple[int, int, int, int]:
    """The face crop ``(miny, maxy, minx, maxx)`` in label pixels (``train_facetexts128``).

    ``limits`` = (width, height) the box is kept inside (default: the label ``size``; the
    original scripts always clamp to 1024x512, whatever their ``--output_dim``).
    """
    cx, cy = face_centre(body)
    scalex = float(size[0]) / float(canvas_shape[1])
    scaley = float(size[1]) / float(canvas_shape[0])
    minx = int(max(cx - buffer, 0) * scalex)
    miny = int(max(cy - buffer, 0) * scaley)
    maxx = int(min(cx + buffer, canvas_shape[1]) * scalex)
    maxy = int(min(cy + buffer, canvas_shape[0]) * scaley)
    return make_box(miny, maxy, minx, maxx, limits or size, box)


def render_label(
    pose: Pose,
    size: tuple[int, int] = LABEL_SIZE,
    *,
    num_face_keypoints: int = 8,
    frame_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A pose -> (label RGB uint8 of ``size`` = (width, height), face box in label pixels).

    ``frame_shape`` = (rows, cols) of the frame the keypoints come from, when it is not 1080x1920:
    the keypoints are first fitted onto the 1080p canvas as EDN fits the frames.
    """
    if frame_shape is not None:
        pose = fit_pose_to_canvas(pose, frame_shape)
    canvas = render_canvas(pose, num_face_keypoints=num_face_keypoints)
    return resize_to_label(canvas, size), face_box(pose.body, size)


# --------------------------------------------------------------------------- frame size


def canvas_transform(frame_shape: tuple[int, ...], canvas_shape: tuple[int, int] = CANVAS_SHAPE) -> tuple[float, tuple[float, float]] | None:
    """Scale and (tx, ty) that fit a frame of ``frame_shape`` (rows, cols) onto the canvas, keeping
    the aspect and centring the short side (EDN's scale_resize); ``None`` when it already fits."""
    rows, cols = int(frame_shape[0]), int(frame_shape[1])
    if rows <= 0 or cols <= 0:
        raise InputError(f"Invalid frame size {rows}x{cols}.")
    if (rows, cols) == tuple(canvas_shape):
        return None
    s_rows = canvas_shape[0] / float(rows)
    s_cols = canvas_shape[1] / float(cols)
    if s_rows == s_cols:
        return s_rows, (0.0, 0.0)
    if s_cols > s_rows:
        return s_rows, ((canvas_shape[1] - s_rows * float(cols)) / 2.0, 0.0)
    return s_cols, (0.0, (canvas_shape[0] - s_cols * float(rows)) / 2.0)


def fit_pose_to_canvas(pose: Pose, frame_shape: tuple[int, ...], canvas_shape: tuple[int, int] = CANVAS_SHAPE) -> Pose:
    """Keypoints of a frame of another size -> canvas coordinates (every point, absent ones too)."""
    fit = canvas_transform(frame_shape, canvas_shape)
    return pose.copy() if fit is None else pose.transformed(fit[0], fit[1])


def fit_frame_to_canvas(frame: np.ndarray, canvas_shape: tuple[int, int] = CANVAS_SHAPE) -> np.ndarray:
    """A frame warped onto the 1080x1920 canvas the same way as its keypoints (black borders)."""
    fit = canvas_transform(frame.shape, canvas_shape)
    if fit is None:
        return frame.copy()
    scale, (tx, ty) = fit
    matrix = np.float32([[scale, 0, tx], [0, scale, ty]])
    return cv2.warpAffine(frame, matrix, (canvas_shape[1], canvas_shape[0]))
