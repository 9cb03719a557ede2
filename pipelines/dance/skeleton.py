"""Keypoint formats of the Dance pipeline and readers for OpenPose keypoint files.

Everybody Dance Now draws its labels from OpenPose **BODY_23** keypoints (23 joints, each
``x, y, confidence``) plus 70 face points and 21 points per hand, in the pixel coordinates of a
1920x1080 frame. That is the one format this package passes around (:class:`Pose`). Other
formats are converted at the edges:

* COCO-18 (what the Hzzone OpenPose body network finds, :mod:`pipelines.dance.openpose`):
  ``coco18_to_body23`` / ``body23_to_coco18``.
* BODY_25 (newer OpenPose releases): ``body25_to_body23``, the mapping of the original
  ``map_25_to_23``.

Readers: ``read_keypoints_yml`` (OpenCV FileStorage text as OpenPose writes it, parsed exactly like
the original ``readkeypointsfile_yml``), ``read_keypoints_json`` (OpenPose JSON) and
``load_frame_keypoints`` for the ``<frame>_{pose,face,hand_right,hand_left}`` layout of the
sample data.

API::

    Pose(body, face=None, hand_right=None, hand_left=None)   # (23,3) / (70,3) / (21,3) float64
    Pose.from_flat(pose, face, hand_right, hand_left)        # flat OpenPose lists (BODY_25 -> BODY_23)
    # COCO-18 / BODY_25 bodies can also be kept as read (body (18,3) / (25,3)): the label renderer
    # draws them like EDN's renderposeCOCO / renderpose25; everything else expects BODY_23.
    coco18_to_body23(coco) -> (23, 3);  body23_to_coco18(body) -> (18, 3)
    body25_to_body23(body25) -> (23, 3)
    read_keypoints_yml(path) -> list[float];  read_keypoints_json(path) -> dict[str, list[float]]
    load_frame_keypoints(folder, frame_name) -> Pose
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.common.errors import InputError

# BODY_23 joint indices (OpenPose "POSE_BODY_23" as used by EDN).
NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = 0, 1, 2, 3, 4, 5, 6
MID_HIP, R_HIP, R_KNEE, R_ANKLE, R_BIG_TOE, R_SMALL_TOE = 7, 8, 9, 10, 11, 12
L_HIP, L_KNEE, L_ANKLE, L_BIG_TOE, L_SMALL_TOE = 13, 14, 15, 16, 17
NOSE, R_EYE, R_EAR, L_EYE, L_EAR = 18, 19, 20, 21, 22

BODY23_NAMES = (
    "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "mid_hip", "r_hip", "r_knee", "r_ankle", "r_big_toe", "r_small_toe",
    "l_hip", "l_knee", "l_ankle", "l_big_toe", "l_small_toe",
    "nose", "r_eye", "r_ear", "l_eye", "l_ear",
)  # fmt: skip
COCO18_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip

#: COCO-18 joint i is BODY_23 joint ``COCO18_FROM_BODY23[i]``.
COCO18_FROM_BODY23 = (18, 0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 13, 14, 15, 19, 21, 20, 22)
#: BODY_23 joint i is BODY_25 joint ``BODY23_FROM_BODY25[i]`` (the original ``map_25_to_23``).
BODY23_FROM_BODY25 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 23, 12, 13, 14, 19, 20, 0, 15, 17, 16, 18)

NUM_BODY, NUM_FACE, NUM_HAND = 23, 70, 21


def _points(values: object, count: int, what: str) -> np.ndarray:
    """Flat ``[x, y, c, ...]`` or ``(count, 3)`` -> float64 ``(count, 3)``; empty -> zeros."""
    arr = np.asarray(values if values is not None else [], dtype=np.float64)
    if arr.size == 0:
        return np.zeros((count, 3), dtype=np.float64)
    if arr.size != count * 3:
        raise InputError(f"{what}: expected {count} keypoints (x, y, confidence), got {arr.size} numbers.")
    return arr.reshape(count, 3).copy()


@dataclass
class Pose:
    """One person in one frame: BODY_23 body, 70 face points, 21 points per hand.

    Arrays are float64 ``(n, 3)`` rows of ``(x, y, confidence)`` in frame pixels; a point with
    confidence 0 is absent (its x, y are still carried along, as OpenPose and EDN do). ``body`` is
    ``None`` when no person was found in the frame (EDN skips such frames).
    """

    body: np.ndarray | None
    face: np.ndarray = field(default_factory=lambda: np.zeros((NUM_FACE, 3)))
    hand_right: np.ndarray = field(default_factory=lambda: np.zeros((NUM_HAND, 3)))
    hand_left: np.ndarray = field(default_factory=lambda: np.zeros((NUM_HAND, 3)))

    def __post_init__(self) -> None:
        if self.body is not None:
            arr = np.asarray(self.body, dtype=np.float64)
            joints = arr.size // 3 if arr.size in (54, 75) else NUM_BODY  # COCO-18 / BODY_25 kept when given
            self.body = _points(arr, joints, "body")
        self.face = _points(self.face, NUM_FACE, "face")
        self.hand_right = _points(self.hand_right, NUM_HAND, "right hand")
        self.hand_left = _points(self.hand_left, NUM_HAND, "left hand")

    @classmethod
    def from_flat(
        cls,
        pose: list[float] | np.ndarray | None,
        face: list[float] | np.ndarray | None = None,
        hand_right: list[float] | np.ndarray | None = None,
        hand_left: list[float] | np.ndarray | None = None,
        *,
        map_25_to_23: bool = True,
    ) -> Pose:
        """From OpenPose flat lists. BODY_25 (75 numbers) is mapped to BODY_23 unless
        ``map_25_to_23=False`` (then kept, as EDN's ``graph_train.py`` without ``--map_25_to_23``);
        COCO-18 (54) is kept as is; other lengths mean "no single person" (EDN's "EMPTY")."""
        body = np.asarray(pose if pose is not None else [], dtype=np.float64).ravel()
        if body.size == 75 and map_25_to_23:
            body = body25_to_body23(body.reshape(25, 3))
        elif body.size not in (54, 69, 75):
            body = None
        return cls(body, face, hand_right, hand_left)

    @classmethod
    def empty(cls) -> Pose:
        return cls(None)

    @property
    def is_empty(self) -> bool:
        return self.body is None

    @property
    def body_format(self) -> str:
        """"BODY_23" (what the pipeline uses), "BODY_25" or "COCO" (read from files, drawable), or ""."""
        return {23: "BODY_23", 25: "BODY_25", 18: "COCO"}.get(0 if self.body is None else len(self.body), "")

    def copy(self) -> Pose:
        return Pose(
            None if self.body is None else self.body.copy(),
            self.face.copy(),
            self.hand_right.copy(),
            self.hand_left.copy(),
        )

    def parts(self) -> dict[str, np.ndarray]:
        """The four point sets by the names EDN's files use (body as ``pose``)."""
        body = self.body if self.body is not None else np.zeros((0, 3))
        return {"pose": body, "face": self.face, "hand_right": self.hand_right, "hand_left": self.hand_left}

    def transformed(self, scale: float, translate: tuple[float, float]) -> Pose:
        """Every x, y (absent points too) -> ``x * scale + tx``, ``y * scale + ty`` (EDN's
        ``apply_transformation``/``fix_scale_coords``); confidences unchanged."""
        out = self.copy()
        for arr in (out.body, out.face, out.hand_right, out.hand_left):
            if arr is not None:
                arr[:, 0] = arr[:, 0] * scale + translate[0]
                arr[:, 1] = arr[:, 1] * scale + translate[1]
        return out


def coco18_to_body23(coco: np.ndarray, *, synthesize_mid_hip: bool = True) -> np.ndarray:
    """COCO-18 ``(18, 3)`` -> BODY_23 ``(23, 3)``.

    COCO has no mid hip and no toes. The toes stay absent (confidence 0). The mid hip, which the
    BODY_23 label needs for the neck-hip and hip-hip sticks, is taken as the midpoint of both hips
    when both are found (with the lower of their confidences) - the approximation that makes labels
    from the COCO stand-in detector look like the authors' BODY_23 labels; pass
    ``synthesize_mid_hip=False`` to leave it absent.
    """
    coco = np.asarray(coco, dtype=np.float64).reshape(18, 3)
    body = np.zeros((NUM_BODY, 3), dtype=np.float64)
    body[list(COCO18_FROM_BODY23)] = coco
    if synthesize_mid_hip and body[R_HIP, 2] > 0 and body[L_HIP, 2] > 0:
        body[MID_HIP, :2] = 0.5 * (body[R_HIP, :2] + body[L_HIP, :2])
        body[MID_HIP, 2] = min(body[R_HIP, 2], body[L_HIP, 2])
    return body


def body23_to_coco18(body: np.ndarray) -> np.ndarray:
    """BODY_23 ``(23, 3)`` -> COCO-18 ``(18, 3)`` (mid hip and toes dropped)."""
    return np.asarray(body, dtype=np.float64).reshape(NUM_BODY, 3)[list(COCO18_FROM_BODY23)].copy()


def body25_to_body23(body25: np.ndarray) -> np.ndarray:
    """BODY_25 ``(25, 3)`` -> BODY_23 ``(23, 3)`` (the original ``map_25_to_23``)."""
    return np.asarray(body25, dtype=np.float64).reshape(25, 3)[list(BODY23_FROM_BODY25)].copy()


# --------------------------------------------------------------------------- files


def read_keypoints_yml(path: str | Path) -> list[float]:
    """Numbers of an OpenPose ``.yml`` keypoint file (OpenCV FileStorage text).

    Parsed like the original reader: everything from the first line starting with ``data`` to the
    end, stripped, concatenated, ``data: [`` and the trailing `` ]`` removed, split on commas.
    A file without a data line (no person) gives ``[]``.
    """
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except OSError as exc:
        raise InputError(f"Cannot read keypoint file {path}: {exc}") from exc
    start = next((i for i, line in enumerate(lines) if line.startswith("data")), None)
    if start is None:
        return []
    text = "".join(lines[start:])
    body = text[len("data: ["): len(text) - 2]
    if not body.strip():
        return []
    try:
        return [float(x.strip()) for x in body.split(",")]
    except ValueError as exc:
        raise InputError(f"Keypoint file {path} is not an OpenPose yml file: {exc}") from exc


def read_keypoints_json(path: str | Path) -> dict[str, list[float]]:
    """OpenPose JSON (``people[*].pose_keypoints_2d`` etc.). Like the original, the lists of all
    people are concatenated, so a file with two people gives a pose of the wrong length, which the
    pipeline treats as "no single person"."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read OpenPose JSON file {path}: {exc}") from exc
    out: dict[str, list[float]] = {"pose": [], "face": [], "hand_right": [], "hand_left": []}
    for person in data.get("people", []):
        out["pose"] += list(person.get("pose_keypoints_2d", []))
        out["face"] += list(person.get("face_keypoints_2d", []))
        out["hand_right"] += list(person.get("hand_right_keypoints_2d", []))
        out["hand_left"] += list(person.get("hand_left_keypoints_2d", []))
    return out


def load_frame_keypoints(folder: str | Path, frame_name: str, *, map_25_to_23: bool = True) -> Pose:
    """``<folder>/<frame_name>_{pose,face,hand_right,hand_left}.yml`` (or ``<frame_name>_keypoints.json``)."""
    folder = Path(folder)
    yml = {part: folder / f"{frame_name}_{part}.yml" for part in ("pose", "face", "hand_right", "hand_left")}
    if yml["pose"].exists():
        parts = {part: (read_keypoints_yml(p) if p.exists() else []) for part, p in yml.items()}
    else:
        js = folder / f"{frame_name}_keypoints.json"
        if not js.exists():
            raise InputError(f"No keypoint file for {frame_name} in {folder} (expected {yml['pose'].name} or {js.name}).")
        parts = read_keypoints_json(js)
    return Pose.from_flat(
        parts["pose"], parts["face"] or None, parts["hand_right"] or None, parts["hand_left"] or None, map_25_to_23=map_25_to_23
    )
