"""A person's photos -> DreamBooth training images: checked, aligned, de-duplicated, captioned.

Pure functions on arrays (no model beyond dlib's face detector and 68-point landmarks from
:mod:`pipelines.common.faces`). Each photo must show exactly one face; it is rotated so the eyes
are level and cropped to a square around the face (head and a little of the shoulders, as
DreamBooth portrait sets are), then compared with the ones kept so far by a 64-bit difference
hash, so the same photo uploaded twice (or resized, recompressed) counts once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipelines.common import faces
from pipelines.common.errors import InputError
from pipelines.common.media import load_image

MIN_FACE_PX = 48  # smaller faces carry too little of the person to learn from
CROP_EYE_DISTANCES = 4.2  # side of the square crop, in eye distances
DUPLICATE_BITS = 6  # difference hashes this close (of 64 bits) are the same photo


@dataclass
class PreparedPhoto:
    name: str
    image: np.ndarray  # (S, S, 3) uint8, aligned
    fingerprint: int


@dataclass
class PhotoReport:
    kept: list[PreparedPhoto] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    def summary(self) -> str:
        lines = [f"{len(self.kept)} photo(s) kept"]
        lines += [f"{name}: {reason}" for name, reason in self.rejected]
        return "; ".join(lines)


def caption(token: str, class_noun: str) -> str:
    """The DreamBooth instance prompt: the rare token names this person, the class noun keeps
    the model's prior of what a person looks like."""
    return f"a photo of {token} {class_noun}"


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Rotate so the eyes are level and crop a square of ``CROP_EYE_DISTANCES`` eye distances
    around the face (centred a little below the eyes), resized to ``size``."""
    left_eye = landmarks[36:42].mean(axis=0)
    right_eye = landmarks[42:48].mean(axis=0)
    dx, dy = right_eye - left_eye
    eye_distance = max(math.hypot(dx, dy), 1.0)
    angle = math.degrees(math.atan2(dy, dx))
    eyes = (left_eye + right_eye) / 2
    mouth = landmarks[48:68].mean(axis=0)
    centre = eyes + 0.35 * (mouth - eyes)
    side = CROP_EYE_DISTANCES * eye_distance
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, size / side)
    matrix[:, 2] += np.array([size / 2, size / 2]) - centre
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def fingerprint(image: np.ndarray) -> int:
    """64-bit difference hash: the sign of horizontal brightness steps on a 9x8 thumbnail."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def prepare_photo(path: str | Path, size: int, name: str | None = None) -> PreparedPhoto:
    """One photo -> its aligned face crop; :class:`InputError` says why a photo cannot be used."""
    label = name or Path(path).name
    image = load_image(path, name=label)
    boxes = faces.detect_faces(image, upsample=1)
    if len(boxes) == 0:
        raise InputError(f"{label}: no face found (use a photo where the face is clearly visible, facing the camera)")
    if len(boxes) > 1:
        raise InputError(f"{label}: {len(boxes)} faces found (crop it to the one person)")
    box = boxes[0]
    if min(box[2] - box[0], box[3] - box[1]) < MIN_FACE_PX:
        raise InputError(f"{label}: the face is only {box[2] - box[0]} px wide (at least {MIN_FACE_PX} px needed)")
    aligned = align_face(image, faces.landmarks68(image, box), size)
    return PreparedPhoto(label, aligned, fingerprint(aligned))


def prepare_photos(paths: Sequence[str | Path], size: int, names: Sequence[str] | None = None) -> PhotoReport:
    """Every photo checked and aligned; unusable ones and duplicates are listed with a reason."""
    report = PhotoReport()
    for i, path in enumerate(paths):
        name = names[i] if names else Path(path).name
        try:
            photo = prepare_photo(path, size, name)
        except InputError as exc:
            report.rejected.append((name, str(exc).split(": ", 1)[-1]))
            continue
        twin = next((k for k in report.kept if hamming(k.fingerprint, photo.fingerprint) <= DUPLICATE_BITS), None)
        if twin is not None:
            report.rejected.append((name, f"the same photo as {twin.name}"))
            continue
        report.kept.append(photo)
    return report


def require_enough(report: PhotoReport, minimum: int) -> None:
    if len(report.kept) < minimum:
        reasons = "".join(f"\n- {name}: {reason}" for name, reason in report.rejected)
        raise InputError(
            f"Only {len(report.kept)} usable photo(s); at least {minimum} different photos of the person are "
            f"needed, each with one clearly visible face.{reasons}"
        )
