"""Animate a photo by a driving video with the Thin-Plate Spline Motion Model.

:class:`TPSMMPipeline` is built once per model (networks loaded through the shared model cache)
and called many times. It reproduces the original ``demo.py`` maths (keypoint normalisation,
relative motion scaled by convex-hull areas, TPS warps, occlusion masks) but runs the driving
frames through the networks in batches and does the source-side work once: the source keypoints,
the down-sampled source and its heatmaps, and the inpainting encoder features.

:func:`animate` is the whole-photo path the app uses: find the face(s) in the photo, crop like
the training data, animate the crop, paste it back into the full-resolution photo with a
feathered blend, and write H.264 at the driving video's fps with its audio (plus an optional
side-by-side video). :func:`animate_faces` is the same for several faces and decoded driving
frames, kept as crops (:class:`FaceMotion`) for the Nostalgia chain; both run the one multi-face
loop, :func:`iter_photo_animation`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import ConvexHull

from pipelines.animation import crop as crops
from pipelines.animation.config import TPSMMConfig, get_config
from pipelines.animation.networks import (
    AVDNetwork,
    DenseMotionNetwork,
    DenseMotionSource,
    InpaintingNetwork,
    KPDetector,
)
from pipelines.animation.preprocess import resize_like_skimage_0183, to_uint8_like_skimage
from pipelines.common import media
from pipelines.common import precision as precisions
from pipelines.common.device import cached_network, oom_guard, pick_device
from pipelines.common.errors import InputError, ModelUnavailableError
from pipelines.common.progress import ProgressFn, stop_point

MODES = ("relative", "standard", "avd")
MAX_OUTPUT_SIDE = 1920  # default cap on the long side of the whole-photo video (browser-playable H.264)


@dataclass
class AnimationResult:
    """Frames (T, S, S, 3) float32 in [0, 1] and the keypoints that produced them."""

    frames: np.ndarray
    kp_source: torch.Tensor | None = None  # (1, N, 2)
    kp_driving: torch.Tensor | None = None  # (T, N, 2)
    kp_norm: torch.Tensor | None = None  # (T, N, 2)


@dataclass
class _Source:
    image: torch.Tensor  # (1, 3, S, S)
    kp: torch.Tensor  # (1, N, 2)
    motion: DenseMotionSource
    encoder_maps: list[torch.Tensor]


def hull_scale(kp_source: torch.Tensor, kp_initial: torch.Tensor) -> float:
    """sqrt(area(hull(source kps))) / sqrt(area(hull(initial driving kps))), batch item 0."""
    try:
        source_area = ConvexHull(kp_source[0].detach().cpu().numpy()).volume
        driving_area = ConvexHull(kp_initial[0].detach().cpu().numpy()).volume
    except Exception as exc:  # scipy's QhullError: degenerate (collinear) keypoints
        raise InputError("The keypoints of the source or the first driving frame are degenerate; try mode 'standard'.") from exc
    return float(np.sqrt(source_area) / np.sqrt(driving_area))


def normalize_kp(kp_norm_mode: str, kp_source: torch.Tensor, kp_driving: torch.Tensor, kp_initial: torch.Tensor | None,
                 avd: AVDNetwork | None, scale: float | None = None) -> torch.Tensor:  # fmt: skip
    """The keypoints the dense motion network is driven by, per the demo's three modes."""
    if kp_norm_mode == "standard":
        return kp_driving
    if kp_norm_mode == "relative":
        if kp_initial is None:
            raise ValueError("relative mode needs the initial driving keypoints")
        scale = hull_scale(kp_source, kp_initial) if scale is None else scale
        return (kp_driving - kp_initial) * scale + kp_source
    if kp_norm_mode == "avd":
        if avd is None:
            raise InputError("This checkpoint has no AVD network; choose mode 'relative' or 'standard'.")
        return avd(kp_source, kp_driving)
    raise InputError(f"Unknown mode {kp_norm_mode!r}; choose one of {', '.join(MODES)}.")


class TPSMMPipeline:
    """Build once (:meth:`from_pretrained`), call :meth:`animate_arrays` many times."""

    def __init__(
        self,
        config: TPSMMConfig,
        kp_detector: KPDetector,
        dense_motion_network: DenseMotionNetwork,
        inpainting_network: InpaintingNetwork,
        avd_network: AVDNetwork | None = None,
        device: torch.device | None = None,
        batch_size: int | None = None,
        precision: str | None = None,
    ):
        self.config = config
        self.device = device or pick_device()
        self.kp_detector = kp_detector.to(self.device).eval()
        self.dense_motion = dense_motion_network.to(self.device).eval()
        self.inpainting = inpainting_network.to(self.device).eval()
        self.avd = avd_network.to(self.device).eval() if avd_network is not None else None
        # Frames go through the networks in batches on GPUs; on CPUs a batch of frames costs MORE
        # per frame (measured: the decoder's 64-512 channel maps fall out of cache), so 1 there.
        self.batch_size = max(1, int(batch_size or (8 if self.device.type == "cuda" else 1)))
        # auto/exact (None: the current mode at each call); the policies keep the keypoints, the
        # TPS solve and the dense motion float32 and let the inpainting network run low.
        self.precision = precision and precisions.check_mode(precision)

    @classmethod
    def from_pretrained(cls, model: str = "vox", device: torch.device | None = None, **kwargs: object) -> TPSMMPipeline:
        """The networks of a released model from the weights cache (loaded once per process)."""
        cfg = get_config(model)
        device = device or pick_device()

        def net(component: str) -> torch.nn.Module:
            return cached_network(cfg.checkpoint_id, component, device)

        try:
            avd = net("avd_network")
        except ModelUnavailableError:
            avd = None  # the demo loads it only "if present"; mode 'avd' then says so
        return cls(cfg, net("kp_detector"), net("dense_motion_network"), net("inpainting_network"), avd,
                   device=device, **kwargs)  # type: ignore[arg-type]  # fmt: skip

    # ------------------------------------------------------------------ tensors

    def _tensor(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """HWC float frames in [0, 1] -> (B, 3, S, S) float32 (the demo casts float64 -> float32)."""
        arr = np.stack([np.asarray(f, dtype=np.float32) for f in frames])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).to(self.device).contiguous()

    def _plan(self, network: str) -> precisions.Plan:
        return precisions.plan(network, self.device, self.precision)

    def prepare_source(self, source: np.ndarray) -> _Source:
        """Everything that depends on the source only: keypoints, dense-motion source pieces,
        inpainting encoder features."""
        image = self._tensor([source])
        kp = self.keypoints_of(image)
        dense, inpaint = self._plan("tpsmm.dense_motion"), self._plan("tpsmm.inpainting")
        with dense.autocast():
            motion = dense.prepare(self.dense_motion).prepare_source(dense.input(image), kp)
        with inpaint.autocast():
            encoded = inpaint.prepare(self.inpainting).encode(inpaint.input(image))
        return _Source(image, kp, motion, encoded)

    def keypoints_of(self, image: torch.Tensor) -> torch.Tensor:
        plan = self._plan("tpsmm.kp_detector")
        with plan.autocast():
            return precisions.to_float32(plan.prepare(self.kp_detector)(plan.input(image)))

    def keypoints(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        return self.keypoints_of(self._tensor(frames))

    def _generate(self, src: _Source, kp_norm: torch.Tensor) -> torch.Tensor:
        dense, inpaint = self._plan("tpsmm.dense_motion"), self._plan("tpsmm.inpainting")
        with dense.autocast():
            motion = dense.prepare(self.dense_motion)(src.motion, kp_norm, keep_intermediates=False)
        with inpaint.autocast():
            prediction, _ = inpaint.prepare(self.inpainting).decode(
                inpaint.input(src.image), src.encoder_maps, motion.deformation, motion.occlusion_map
            )
        return prediction.float()

    def iter_animation(
        self,
        src: _Source,
        frame_at: Callable[[int], np.ndarray],
        order: Sequence[int],
        mode: str,
        kp_initial: torch.Tensor | None,
        stages: dict[str, list[torch.Tensor]] | None = None,
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield ``(indices, frames)`` batches in ``order``; ``frame_at(i)`` gives driving frame i
        as float (S, S, 3) in [0, 1]. ``kp_initial`` is the reference driving pose (relative)."""
        for idx, (frames,) in self.iter_animations([src], frame_at, order, mode, kp_initial, stages):
            yield idx, frames

    def iter_animations(
        self,
        sources: Sequence[_Source],
        frame_at: Callable[[int], np.ndarray],
        order: Sequence[int],
        mode: str,
        kp_initial: torch.Tensor | None,
        stages: dict[str, list[torch.Tensor]] | None = None,
    ) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """:meth:`iter_animation` for several sources driven by the same frames: each batch of
        driving frames is read and its keypoints detected once, then every source is animated by
        it; yields ``(indices, [frames of each source])``. ``stages`` records the first source's."""
        scales = [hull_scale(src.kp, kp_initial) if mode == "relative" and kp_initial is not None else None
                  for src in sources]  # fmt: skip
        for start in range(0, len(order), self.batch_size):
            stop_point()  # each batch (one frame on a CPU) takes seconds there: every caller, every face
            idx = list(order[start : start + self.batch_size])
            kp_driving = self.keypoints([frame_at(i) for i in idx])
            batches = []
            for k, (src, scale) in enumerate(zip(sources, scales, strict=True)):
                if k:
                    stop_point()  # and each further face of the batch
                kp_norm = normalize_kp(mode, src.kp, kp_driving, kp_initial, self.avd, scale)
                batches.append(self._generate(src, kp_norm).permute(0, 2, 3, 1).float().cpu().numpy())
                if stages is not None and k == 0:
                    stages.setdefault("kp_driving", []).append(kp_driving)
                    stages.setdefault("kp_norm", []).append(kp_norm)
            yield idx, batches

    @torch.inference_mode()
    def animate_arrays(
        self,
        source: np.ndarray,
        driving: Sequence[np.ndarray],
        mode: str = "relative",
        best_frame: int | None = None,
        return_stages: bool = False,
        progress: ProgressFn | None = None,
    ) -> AnimationResult:
        """The demo's ``make_animation`` on pre-resized float frames (S, S, 3) in [0, 1].

        With ``best_frame`` i the demo's find-best-frame order is used: frames i..end forwards and
        i..0 backwards, both relative to frame i, joined as ``backward[::-1] + forward[1:]``.
        """
        if mode not in MODES:
            raise InputError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
        if not len(driving):
            raise InputError("The driving video has no frames.")
        src = self.prepare_source(source)
        start = 0 if best_frame is None else int(best_frame)
        kp_initial = self.keypoints([driving[start]])
        order = list(range(start, len(driving))) + list(range(start - 1, -1, -1))
        frames = np.empty((len(driving), *np.asarray(source).shape[:2], 3), dtype=np.float32)
        stages: dict[str, list[torch.Tensor]] | None = {} if return_stages else None
        done = 0
        for idx, batch in self.iter_animation(src, lambda i: driving[i], order, mode, kp_initial, stages):
            frames[idx] = batch
            done += len(idx)
            if progress:
                progress(done / len(order), f"frame {done}/{len(order)}")
        result = AnimationResult(frames)
        if stages is not None:
            inverse = np.argsort(np.asarray(order))
            result.kp_source = src.kp.cpu()
            result.kp_driving = torch.cat(stages["kp_driving"]).cpu()[inverse]
            result.kp_norm = torch.cat(stages["kp_norm"]).cpu()[inverse]
        return result


# --------------------------------------------------------------------------- best frame


def frame_landmarks(frames: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """68-point landmarks of the largest face of each uint8 frame (None where no face), from
    face-alignment when its weights are in the weights cache (what the original uses), else from
    dlib; only that face is fitted (one FAN pass pair per frame)."""
    from pipelines.common import faces

    out: list[np.ndarray | None] = []
    for f in frames:
        stop_point()
        found = faces.best_face_landmarks(f, max_faces=1)
        out.append(found[0] if found else None)
    return out


def _normalized(kp: np.ndarray) -> np.ndarray:
    kp = kp - kp.mean(axis=0, keepdims=True)
    return kp / np.sqrt(ConvexHull(kp[:, :2]).volume)


def best_frame_index(source: np.ndarray, driving: Iterable[np.ndarray], chunk: int = 64) -> int:
    """Index of the driving frame whose normalised landmarks are closest to the source's (the
    demo's ``find_best_frame``); 0 when the source has no detectable face. ``driving`` may be a
    stream: ``chunk`` frames are held at a time."""
    source_marks = frame_landmarks([source])[0]
    if source_marks is None:
        return 0
    ref = _normalized(source_marks)
    best, best_norm, offset = 0, float("inf"), 0
    for part in _chunks(driving, chunk):
        for i, kp in enumerate(frame_landmarks(part)):
            if kp is None:
                continue
            norm = float((np.abs(ref - _normalized(kp)) ** 2).sum())
            if norm < best_norm:
                best, best_norm = offset + i, norm
        offset += len(part)
    return best


def _chunks(items: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    part: list[np.ndarray] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


# --------------------------------------------------------------------------- the faces of a whole photo


def driving_input(side: int, square: crops.CropSquare | None) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a driving frame (uint8, any size) to the model's input: the frame cropped
    to the driving video's face ``square`` (None: whole) and resized like the demo, float (S, S, 3)."""

    def model_input(frame: np.ndarray) -> np.ndarray:
        cropped = crops.extract(frame, square) if square is not None else frame
        return resize_like_skimage_0183(cropped, (side, side))[..., :3]

    return model_input


@dataclass
class PhotoPlacement:
    """Where animated crops come from and go back to in a photo: the training-style ``squares``
    of its faces (pasted back through feathered masks), or ``None`` for the whole photo (animated
    resized to the model's square and resized back)."""

    photo: np.ndarray  # RGB uint8 (H, W, 3)
    squares: list[crops.CropSquare] | None

    def __post_init__(self) -> None:
        self._masks = [crops.feather_mask(square.side) for square in self.squares or []]

    def sources(self, side: int) -> list[np.ndarray]:
        """The model inputs, one per face (or the whole photo): float (side, side, 3)."""
        regions = [crops.extract(self.photo, sq) for sq in self.squares] if self.squares is not None else [self.photo]
        return [resize_like_skimage_0183(region, (side, side))[..., :3] for region in regions]

    def compose(self, animated: Sequence[np.ndarray]) -> np.ndarray:
        """The whole photo with the animated uint8 crops (one per source) put back."""
        if self.squares is None:
            height, width = self.photo.shape[:2]
            return crops.resize_uint8(animated[0], (width, height))
        out = self.photo
        for square, crop, mask in zip(self.squares, animated, self._masks, strict=True):
            out = crops.paste(out, crop, square, mask)
        return out


def iter_photo_animation(
    pipe: TPSMMPipeline,
    placement: PhotoPlacement,
    frame_at: Callable[[int], np.ndarray],
    n_frames: int,
    mode: str,
    reference: np.ndarray,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """The multi-face loop: every face of ``placement`` (or the whole photo) driven by the same
    driving frames ``frame_at(0 .. n_frames - 1)`` (model inputs, see :func:`driving_input`), in
    frame order, motion relative to the driving frame ``reference``.

    Yields ``(indices, crops)``: ``crops[k]`` is the (B, S, S, 3) uint8 batch of face k, ready for
    :meth:`PhotoPlacement.compose`. The source side of every face is prepared once and held while
    the frames stream through (about 33 MB per face for vox at 256 px, measured); ``progress(done / n_frames, ...)``
    is called after each batch, which is where a Stop request ends the job. Run it under
    ``torch.inference_mode()``; the precision is the current mode (:func:`precisions.using`).
    """
    sources = [pipe.prepare_source(source) for source in placement.sources(pipe.config.img_size)]
    kp_initial = pipe.keypoints([reference])
    done = 0
    for idx, batches in pipe.iter_animations(sources, frame_at, range(n_frames), mode, kp_initial):
        yield idx, [to_uint8_like_skimage(batch) for batch in batches]
        done += len(idx)
        if progress:
            progress(done / n_frames, f"frame {done}/{n_frames}")


@dataclass
class FaceMotion:
    """A still photo plus animated face crops kept in memory (``T x S x S`` per face, small);
    :meth:`frame` composes whole-photo frame ``i`` on demand, so a caller can keep editing or
    looping the animation (the Nostalgia chain and its story)."""

    placement: PhotoPlacement
    clips: list[np.ndarray]  # per face (T, S, S, 3) uint8
    fps: float
    face_numbers: list[int]  # 0-based indices (largest first) of the animated faces

    def __len__(self) -> int:
        return len(self.clips[0]) if self.clips else 0

    def frame(self, i: int) -> np.ndarray:
        return self.placement.compose([clip[i] for clip in self.clips])

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.frame(i)


def animate_faces(
    photo: np.ndarray,
    boxes: np.ndarray,
    face_numbers: Sequence[int],
    driving_frames: Sequence[np.ndarray],
    fps: float,
    *,
    model: str = "vox",
    mode: str = "relative",
    crop_driving: bool = True,
    batch_size: int | None = None,
    pipeline: TPSMMPipeline | None = None,
    progress: ProgressFn | None = None,
    precision: str | None = None,
) -> FaceMotion:
    """Animate the faces ``face_numbers`` (rows of ``boxes``) of ``photo`` by the decoded driving
    frames, motion relative to the first one, and keep the result as crops (:class:`FaceMotion`).
    The same loop as :func:`animate` (:func:`iter_photo_animation`), for frames already in memory."""
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    cfg = pipeline.config if pipeline is not None else get_config(model)
    if not cfg.face:
        raise InputError(f"The {cfg.name} model is not a face model; faces are animated with 'vox'.")
    if not len(driving_frames):
        raise InputError("The driving video has no frames.")
    with precisions.using(precision):
        model_input = driving_input(cfg.img_size, crops.driving_square(driving_frames) if crop_driving else None)
        pipe = pipeline or TPSMMPipeline.from_pretrained(cfg.name, batch_size=batch_size)
        placement = PhotoPlacement(photo, [crops.crop_square(boxes[number]) for number in face_numbers])
        n, side = len(driving_frames), cfg.img_size
        clips = [np.empty((n, side, side, 3), dtype=np.uint8) for _ in face_numbers]
        with torch.inference_mode(), oom_guard("Try a shorter driving motion or fewer faces."):
            frames = iter_photo_animation(pipe, placement, lambda i: model_input(driving_frames[i]), n, mode,
                                          model_input(driving_frames[0]), progress)  # fmt: skip
            for idx, batches in frames:
                for clip, batch in zip(clips, batches, strict=True):
                    clip[idx] = batch
    return FaceMotion(placement, clips, fps, list(face_numbers))


# --------------------------------------------------------------------------- whole-photo animation


@dataclass
class AnimateOutput:
    video: Path
    side_by_side: Path | None
    n_frames: int
    fps: float
    model: str
    mode: str
    faces_found: int
    face_index: int | None
    best_frame: int | None
    driving_cropped: bool
    seconds: float
    notes: list[str] = field(default_factory=list)


class _Sequential:
    """``frame_at(i)`` over a stream, for indices asked in increasing order: one decoded frame is
    held, plus (``keep_raw``) the raw frames asked since the last :meth:`take`."""

    def __init__(self, frames: Iterable[np.ndarray], transform: Callable[[np.ndarray], np.ndarray],
                 keep_raw: bool = False) -> None:  # fmt: skip
        self.frames = iter(frames)
        self.transform = transform
        self.keep_raw = keep_raw
        self.index = -1
        self.current: np.ndarray | None = None
        self.raw: dict[int, np.ndarray] = {}

    def __call__(self, i: int) -> np.ndarray:
        if i < self.index:
            raise ValueError(f"frame {i} asked after frame {self.index}: the stream only moves forwards")
        while self.index < i:
            try:
                self.current = next(self.frames)
            except StopIteration:
                raise InputError(f"The driving video ended at frame {self.index + 1}, before frame {i + 1}.") from None
            self.index += 1
        if self.keep_raw:
            self.raw[i] = self.current  # type: ignore[assignment]
        return self.transform(self.current)  # type: ignore[arg-type]

    def take(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self.raw.pop(i) for i in indices]


def animate(
    source_image: media.ImageLike,
    driving_video: str | Path,
    model: str = "vox",
    mode: str = "relative",
    find_best_frame: bool = False,
    *,
    face_index: int = 0,
    crop_faces: bool = True,
    crop_driving: bool = True,
    side_by_side: bool = True,
    batch_size: int | None = None,
    max_side: int = MAX_OUTPUT_SIDE,
    first_seconds: float | None = None,
    pipeline: TPSMMPipeline | None = None,
    progress: ProgressFn | None = None,
    precision: str | None = None,
) -> AnimateOutput:
    """Animate ``source_image`` by ``driving_video`` and write the result videos.

    For face models (vox) with ``crop_faces`` the face number ``face_index`` (largest first) is
    cropped like the training data, animated and pasted back into the whole photo; the driving
    video is cropped around its face when ``crop_driving``. Other models animate the whole photo
    resized to their square input and resize the result back. Output: H.264 at the driving fps
    with the driving audio; ``side_by_side`` adds a (driving | result) video. ``pipeline`` reuses
    an already built pipeline (its config then decides the model). Photos larger than
    ``max_side`` on their long side are scaled down to it first (the video would not play in a
    browser otherwise); smaller photos keep their full resolution. ``first_seconds`` animates only
    the start of the driving video (None: the whole clip); its sound is cut to match.
    ``precision``: ``auto`` or
    ``exact`` (:mod:`pipelines.common.precision`; None = the current mode).
    """
    with precisions.using(precision):
        return _animate(source_image, driving_video, model, mode, find_best_frame, face_index, crop_faces,
                        crop_driving, side_by_side, batch_size, max_side, first_seconds, pipeline, progress)  # fmt: skip


def _animate(
    source_image: media.ImageLike,
    driving_video: str | Path,
    model: str,
    mode: str,
    find_best_frame: bool,
    face_index: int,
    crop_faces: bool,
    crop_driving: bool,
    side_by_side: bool,
    batch_size: int | None,
    max_side: int,
    first_seconds: float | None,
    pipeline: TPSMMPipeline | None,
    progress: ProgressFn | None,
) -> AnimateOutput:
    started = time.perf_counter()
    report = progress or (lambda f, m="": None)
    cfg = pipeline.config if pipeline is not None else get_config(model)
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    if driving_video is None or not str(driving_video).strip():
        raise InputError("Please provide a driving video.")
    photo = crops.fit(media.load_image(source_image, name="photo"), max_side)
    report(0.02, "reading the driving video")
    info = media.probe_video(driving_video)  # every limit checked before any frame is decoded
    n_frames = min(info.n_frames, media.frames_in_first(first_seconds, info.fps) or info.n_frames)
    notes: list[str] = []
    if n_frames < info.n_frames:
        notes.append(f"Used the first {n_frames / info.fps:.1f} s of the {info.duration:.1f} s driving video "
                     f"({n_frames} of {info.n_frames} frames).")  # fmt: skip

    faces_found, square, chosen = 0, None, None
    if cfg.face and crop_faces:
        from pipelines.common import faces

        boxes = faces.detect_faces(photo)
        faces_found = len(boxes)
        if not faces_found:
            raise InputError("No face was found in the photo. Use a photo with a clearly visible, frontal face, or turn off face cropping.")
        if not 0 <= face_index < faces_found:
            raise InputError(f"Face {face_index + 1} was requested but the photo has {faces_found} face(s) (numbered from 1, largest first).")
        chosen = face_index
        square = crops.crop_square(boxes[face_index])
    placement = PhotoPlacement(photo, [square] if square is not None else None)
    drive_square = crops.driving_square(media.iter_frames(driving_video)) if (cfg.face and crop_driving) else None
    if cfg.face and crop_driving and drive_square is None:
        notes.append("No face found in the driving video; its whole frames were used.")
    model_input = driving_input(cfg.img_size, drive_square)

    report(0.05, "loading the model")
    pipe = pipeline or TPSMMPipeline.from_pretrained(cfg.name, batch_size=batch_size)

    best = None
    if find_best_frame and cfg.face:
        report(0.07, "finding the best-matching driving frame")
        first = itertools.islice(media.iter_frames(driving_video), n_frames)
        small = (to_uint8_like_skimage(model_input(f)) for f in first)
        best = best_frame_index(to_uint8_like_skimage(placement.sources(cfg.img_size)[0]), small)
    elif find_best_frame:
        notes.append("Best-frame search needs faces; it applies to the vox model only.")

    # Each output frame depends only on its own driving frame and the reference (initial or best)
    # frame, so frames are animated in their natural order, streamed from the decoder to the
    # encoders: one driving frame and one batch of results in memory, whatever the video's length.
    start = best or 0
    ph = photo.shape[0]
    out_path = media.new_output_path(".mp4", prefix="animation")
    sbs_path = media.new_output_path(".mp4", prefix="side_by_side") if side_by_side else None

    def beside(drv: np.ndarray, result: np.ndarray) -> np.ndarray:
        dw = max(2, round(drv.shape[1] * ph / drv.shape[0]))
        return np.concatenate([crops.resize_uint8(drv, (dw, ph)), result], axis=1)

    def animating(fraction: float, message: str = "") -> None:
        report(0.1 + 0.85 * fraction, f"animating {message}")

    def outputs() -> Iterator[tuple[np.ndarray, ...]]:
        reference = _Sequential(media.iter_frames(driving_video), model_input)(start)
        stream = _Sequential(media.iter_frames(driving_video), model_input, keep_raw=sbs_path is not None)
        for idx, batches in iter_photo_animation(pipe, placement, stream, n_frames, mode, reference, animating):
            raw = stream.take(idx) if sbs_path is not None else []
            for k in range(len(idx)):
                result = placement.compose([batch[k] for batch in batches])
                yield (result,) if sbs_path is None else (result, beside(raw[k], result))

    with torch.inference_mode(), oom_guard("Try a shorter driving video or a smaller batch size."):
        paths = [out_path] if sbs_path is None else [out_path, sbs_path]
        with media.discard_on_failure(out_path), media.discard_on_failure(paths[-1]):
            media.write_videos(outputs(), paths, info.fps, audio_from=driving_video)
    report(1.0, "done")
    return AnimateOutput(out_path, sbs_path, n_frames, info.fps, cfg.name, mode, faces_found, chosen, best,
                         drive_square is not None, time.perf_counter() - started, notes)  # fmt: skip

