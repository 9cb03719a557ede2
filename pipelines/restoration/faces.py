"""Stages 2 and 4 of "Bringing Old Photos Back to Life": find, align and paste back faces.

Stage 2 (``Face_Detection/detect_all_dlib.py``): dlib's HOG detector (no upsampling, dlib's own
order), the 68-point predictor, five points (eye centres as *int-truncated* means of 36/39 and
42/45, nose tip 30, mouth corners 48/54), a similarity transform (Umeyama least squares, as
``skimage.transform.SimilarityTransform``) from the 1.3-scaled template to those points, and a
bilinear scikit-image warp to a ``face_size`` square.

Stage 4 (``Face_Detection/align_warp_back_multiple_dlib.py``): per face, histogram matching of the
enhanced face to the truncated aligned crop, a Catmull-Rom warp back with the inverse transform, a
nearest-neighbour warp of the validity mask, erosion (9x9, 3 times), Gaussian blur (25x25) and an
alpha blend onto the running float image.

Every warp runs on a *window* of the photo around the face instead of the whole photo (the original
warps full-size float64 copies, which for a 24 MP photo is ~0.6 GB per warp and per face). The
window holds the face's whole footprint plus a margin wider than the interpolation, erosion and blur
reach, so the result equals the full-size computation up to float rounding of the transform's
translation (~1e-13 px).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from PIL import Image
from skimage.transform import SimilarityTransform, warp
from skimage.util import img_as_ubyte

from pipelines.common import faces as common_faces

# The original's 5-point template on a 512 grid (float32, as ``_standard_face_pts``).
TEMPLATE_512 = ((196.0, 226.0), (316.0, 226.0), (256.0, 286.0), (220.0, 360.4), (292.0, 360.4))
TARGET_FACE_SCALE = 1.3
# Stage-4 blend constants (``blur_blending_cv2``).
ERODE_KERNEL = 9
ERODE_ITERATIONS = 3
BLUR_KERNEL = 25
# Window margin around a face footprint: erosion reach (3 x 4 px) + blur reach (12 px) + bicubic support (2 px).
_WINDOW_MARGIN = ERODE_ITERATIONS * (ERODE_KERNEL // 2) + BLUR_KERNEL // 2 + 8

_FALLBACK_LOCK = threading.Lock()


@dataclass(frozen=True)
class AlignedFace:
    """One detected face: where it is and how the ``face_size`` crop maps onto the photo."""

    index: int  # 1-based, dlib's detection order (the order the original numbers and blends faces)
    rect: tuple[int, int, int, int]  # dlib rectangle (left, top, right, bottom)
    landmarks: np.ndarray  # (68, 2) float64 (x, y)
    five_points: np.ndarray  # (5, 2) int64 (x, y)
    transform: np.ndarray  # (3, 3) crop (x, y) -> photo (x, y)
    crop: np.ndarray  # (face_size, face_size, 3) uint8, the stage-2 output

    @property
    def inverse(self) -> np.ndarray:
        """(3, 3) photo (x, y) -> crop (x, y), computed as scikit-image's ``.inverse`` does."""
        return SimilarityTransform(matrix=self.transform).inverse.params


@dataclass
class BlendTrace:
    """Intermediate values of stage 4 for one face (for the parity check and the UI)."""

    index: int
    window: tuple[int, int, int, int]  # (y0, y1, x0, x1) in photo pixels
    matched: np.ndarray  # (S, S, 3) uint8 enhanced face after histogram matching
    mask_blur: np.ndarray  # (y1-y0, x1-x0) float64 eroded + blurred blend mask in [0, 1]


@dataclass
class BlendResult:
    """Stage-4 output: the blended float image on ``region`` (everything else is the input)."""

    region: tuple[int, int, int, int]  # (y0, y1, x0, x1)
    blended: np.ndarray  # (y1-y0, x1-x0, 3) float64 in 0..255, before the final rounding
    traces: list[BlendTrace] = field(default_factory=list)


# --------------------------------------------------------------------------- stage 2


def template_points(
    face_size: int = 256, scale: float = TARGET_FACE_SCALE, template_512: Sequence[Sequence[float]] = TEMPLATE_512
) -> np.ndarray:
    """The five template points in crop pixels: ``((p/256 - 1) * scale + 1) / 2 * face_size``,
    in float32 exactly as the original (the float32 rounding shows in the transform's 7th digit)."""
    std = np.array(template_512, np.float32).reshape(-1) / 256.0 - 1.0
    return ((std * scale + 1) / 2 * float(face_size)).reshape(5, 2)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres (int-truncated means of 36/39 and 42/45), nose tip 30, mouth corners 48 and 54."""
    pts = [[int(v) for v in p] for p in np.asarray(landmarks)]

    def mid(a: int, b: int) -> list[int]:
        return [int((pts[a][0] + pts[b][0]) / 2), int((pts[a][1] + pts[b][1]) / 2)]

    return np.array([mid(36, 39), mid(42, 45), pts[30], pts[48], pts[54]], dtype=np.int64)


def similarity_transform(template: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """Umeyama least-squares similarity mapping ``template`` onto ``points`` (3x3), or None when the
    points are degenerate (for example all equal)."""
    tform = SimilarityTransform.from_estimate(template, points)
    if not tform:
        return None
    params = np.asarray(tform.params, dtype=np.float64)
    return params if np.all(np.isfinite(params)) else None


def detect_faces(image: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """dlib HOG faces at full resolution without upsampling, in dlib's order, with 68 landmarks each.

    The shared detector in :mod:`pipelines.common.faces` sorts by size and may downscale; the
    original numbers and blends faces in dlib's own order at full size, so the raw detector is called
    here (under the shared call lock, dlib objects being used from several threads)."""
    rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    lock = getattr(common_faces, "_CALL_LOCK", _FALLBACK_LOCK)
    with lock:
        rects = common_faces.detector()(rgb, 0)
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
    return [(box, common_faces.landmarks68(rgb, box)) for box in boxes]


def _footprint(transform: np.ndarray, size: int) -> tuple[float, float, float, float]:
    """Bounding box (x_min, x_max, y_min, y_max) of the ``size`` square's pixel centres under ``transform``."""
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], dtype=np.float64)
    mapped = corners @ transform.T
    xy = mapped[:, :2] / mapped[:, 2:3]
    return float(xy[:, 0].min()), float(xy[:, 0].max()), float(xy[:, 1].min()), float(xy[:, 1].max())


def _window(transform: np.ndarray, size: int, height: int, width: int, margin: int) -> tuple[int, int, int, int]:
    """Photo window (y0, y1, x0, x1) holding the footprint plus ``margin``, clamped to the photo."""
    x_min, x_max, y_min, y_max = _footprint(transform, size)

    def clamp(lo: float, hi: float, n: int) -> tuple[int, int]:
        a = min(max(math.floor(lo) - margin, 0), n - 1)
        b = max(min(math.ceil(hi) + margin + 1, n), a + 1)
        return a, b

    y0, y1 = clamp(y_min, y_max, height)
    x0, x1 = clamp(x_min, x_max, width)
    return y0, y1, x0, x1


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _crop_window(image: np.ndarray, transform: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The photo window a ``size`` crop reads from, the transform into that window, and its offset."""
    y0, y1, x0, x1 = _window(transform, size, image.shape[0], image.shape[1], margin=4)
    return image[y0:y1, x0:x1], _translate(-x0, -y0) @ transform, x0, y0


def warp_crop(image: np.ndarray, transform: np.ndarray, size: int, *, preserve_range: bool) -> np.ndarray:
    """``skimage.transform.warp(image, transform, (size, size, 3))`` (bilinear, outside = 0), float64:
    in [0, 1] (stage 2) or, with ``preserve_range``, in 0..255 (stage 4's histogram reference)."""
    sub, local, _, _ = _crop_window(image, transform, size)
    return warp(sub, local, output_shape=(size, size, image.shape[2]), order=1, preserve_range=preserve_range)


def validity_mask(image_shape: tuple[int, ...], transform: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float64: 1 where the crop's nearest source pixel lies inside the photo
    (the original warps ``ones_like(image)`` with order 0)."""
    y0, y1, x0, x1 = _window(transform, size, image_shape[0], image_shape[1], margin=4)
    tform = SimilarityTransform(matrix=transform)
    offset = np.array([x0, y0], dtype=np.float64)

    def to_window(xy: np.ndarray) -> np.ndarray:
        return tform(xy) - offset  # exact: the same photo coordinates as the original, shifted by integers

    ones = np.ones((y1 - y0, x1 - x0), dtype=np.uint8)
    return warp(ones, to_window, output_shape=(size, size), order=0, preserve_range=True).astype(np.float64)


def align_faces(
    image: np.ndarray,
    face_size: int = 256,
    scale: float = TARGET_FACE_SCALE,
    template_512: Sequence[Sequence[float]] = TEMPLATE_512,
) -> list[AlignedFace]:
    """Stage 2 on an RGB uint8 photo: every dlib face with its transform and ``face_size`` crop."""
    template = template_points(face_size, scale, template_512)
    faces: list[AlignedFace] = []
    for box, landmarks in detect_faces(image):
        points = five_points(landmarks)
        transform = similarity_transform(template, points)
        if transform is None:
            continue
        crop = img_as_ubyte(warp_crop(image, transform, face_size, preserve_range=False))
        faces.append(AlignedFace(len(faces) + 1, box, landmarks, points, transform, crop))
    return faces


# --------------------------------------------------------------------------- stage 4


def match_histograms(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel CDF matching of uint8 ``source`` to uint8 ``reference`` (the original's
    ``match_histograms``): ``lut[s]`` = the smallest ``r`` with ``ref_cdf[r] >= src_cdf[s]``,
    or the previous entry when there is none."""
    out = np.empty_like(source, dtype=np.uint8)
    for c in range(source.shape[2]):
        src_hist = np.bincount(source[..., c].ravel(), minlength=256)[:256]
        ref_hist = np.bincount(reference[..., c].ravel(), minlength=256)[:256]
        src_cdf = np.cumsum(src_hist) / float(np.cumsum(src_hist).max())
        ref_cdf = np.cumsum(ref_hist) / float(np.cumsum(ref_hist).max())
        lut = np.searchsorted(ref_cdf, src_cdf, side="left")
        for s in range(256):  # no r found: keep the previous value (0 for the first)
            if lut[s] >= 256:
                lut[s] = lut[s - 1] if s else 0
        out[..., c] = lut.astype(np.uint8)[source[..., c]]
    return out


def blend_mask(mask: np.ndarray) -> np.ndarray:
    """The soft blend mask: ``erode(mask*255, 9x9 ones, 3 iterations)``, ``GaussianBlur(25x25, sigma 0)``, /255."""
    m = mask * 255.0
    m = cv2.erode(m, np.ones((ERODE_KERNEL, ERODE_KERNEL), np.uint8), iterations=ERODE_ITERATIONS)
    m = cv2.GaussianBlur(m, (BLUR_KERNEL, BLUR_KERNEL), 0)
    return m / 255.0


def blend_faces(
    image: np.ndarray, faces: Sequence[AlignedFace], enhanced: Sequence[np.ndarray], face_size: int = 256
) -> BlendResult:
    """Stage 4: paste every enhanced face (uint8, ``face_size`` square, same order as ``faces``) back.

    Only the union of the faces' windows is held in float64; outside it the photo is unchanged."""
    if len(enhanced) != len(faces):
        raise ValueError(f"{len(faces)} faces but {len(enhanced)} enhanced faces")
    height, width = image.shape[:2]
    windows = [_window(f.transform, face_size, height, width, _WINDOW_MARGIN) for f in faces]
    if not windows:
        return BlendResult((0, 0, 0, 0), np.zeros((0, 0, 3)))
    ry0, ry1 = min(w[0] for w in windows), max(w[1] for w in windows)
    rx0, rx1 = min(w[2] for w in windows), max(w[3] for w in windows)
    blended = image[ry0:ry1, rx0:rx1, :3].astype(np.float64)
    result = BlendResult((ry0, ry1, rx0, rx1), blended)
    for face, new_face, (y0, y1, x0, x1) in zip(faces, enhanced, windows, strict=True):
        new_face = np.asarray(new_face)
        if new_face.shape != (face_size, face_size, 3) or new_face.dtype != np.uint8:
            raise ValueError(
                f"enhanced face {face.index} must be uint8 {(face_size, face_size, 3)}, got {new_face.shape}"
            )
        aligned = warp_crop(image, face.transform, face_size, preserve_range=True)
        forward_mask = validity_mask(image.shape, face.transform, face_size)
        matched = match_histograms(new_face, aligned.astype(np.uint8))

        inverse = SimilarityTransform(matrix=face.transform).inverse
        local = inverse.params @ _translate(x0, y0)
        out_shape = (y1 - y0, x1 - x0)
        warped_back = warp(matched, local, output_shape=(*out_shape, 3), order=3, preserve_range=True)
        offset = np.array([x0, y0], dtype=np.float64)

        def from_window(
            xy: np.ndarray, inverse: SimilarityTransform = inverse, offset: np.ndarray = offset
        ) -> np.ndarray:
            return inverse(xy + offset)  # exact photo coordinates, as the full-size warp computes them

        back_mask = warp(forward_mask, from_window, output_shape=out_shape, order=0, preserve_range=True)
        soft = blend_mask(back_mask.astype(np.float64))[..., None]

        view = blended[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0]
        composite = warped_back * soft + (1 - soft) * view
        view[...] = np.clip(composite / 255.0, 0.0, 1.0) * 255.0
        result.traces.append(BlendTrace(face.index, (y0, y1, x0, x1), matched, soft[..., 0]))
    return result


def paste_faces(
    image: np.ndarray, faces: Sequence[AlignedFace], enhanced: Sequence[np.ndarray], face_size: int = 256
) -> np.ndarray:
    """Stage 4 as a uint8 RGB photo (``img_as_ubyte(blended / 255)``, round half to even)."""
    out = np.array(image[..., :3], dtype=np.uint8, copy=True)
    if not faces:
        return out
    res = blend_faces(image, faces, enhanced, face_size)
    y0, y1, x0, x1 = res.region
    out[y0:y1, x0:x1] = img_as_ubyte(res.blended / 255.0)
    return out


# --------------------------------------------------------------------------- stage 3 pre/post-processing


def face_to_tensor(crop: np.ndarray, load_size: int) -> torch.Tensor:
    """Stage-3 input: PIL BICUBIC resize to ``load_size`` (only if needed), ToTensor, Normalize(0.5, 0.5)."""
    im = Image.fromarray(np.ascontiguousarray(crop[..., :3], dtype=np.uint8))
    if im.size != (load_size, load_size):
        im = im.resize((load_size, load_size), Image.BICUBIC)
    t = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().div(255.0)
    return ((t - 0.5) / 0.5).unsqueeze(0)


def tensor_to_face(y: torch.Tensor) -> np.ndarray:
    """Stage-3 output as the original saves it: ``save_image((y + 1) / 2)`` without normalisation,
    i.e. ``x * 255 + 0.5`` clamped to [0, 255] and truncated."""
    x = (y.detach().float().cpu()[0] + 1) / 2
    return x.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
