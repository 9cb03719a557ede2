"""Restore an old photo end to end, as ``run.py`` of "Bringing Old Photos Back to Life" does, in one call.

Stages (the original's numbering): 1a optional scratch detection, 1b global restoration (quality, or
scratch-aware with the mask; ``hr`` switches to the patch-attention mapping and 512-pixel faces),
2 dlib face detection and 5-point alignment, 3 SPADE face enhancement, 4 warp back with histogram
matching and the feathered blend. Models are built once per process through :func:`cached_network`;
nothing runs in a subprocess or depends on the working directory. A photo without faces skips stages
2-4 (its stage-1 result is final); a grayscale photo comes back grayscale.

Large photos: the global stage's cost grows with the pixel count (and its scratch attention with the
square of it, which is why the original cannot restore a 1 MP photo with scratches in 23 GiB). A photo
above the working budget (:class:`WorkingResolution`) is restored at a bounded working resolution,
upscaled, and the fine detail that the working resolution cannot hold is carried over from the
original photo everywhere except on detected scratches. Faces are then detected, enhanced and blended
at full resolution. :attr:`RestoreResult.strategy` says which path ran, for the UI.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from PIL import Image

from pipelines.common import precision as precisions
from pipelines.common.device import cached_network, oom_guard, pick_device
from pipelines.common.errors import InputError
from pipelines.common.media import ImageLike, load_image
from pipelines.common.progress import ProgressFn
from pipelines.restoration import faces as face_ops
from pipelines.restoration import stage1
from pipelines.restoration.config import (
    DETECTOR_CHECKPOINT,
    FACE_CHECKPOINTS,
    QUALITY,
    SCRATCH,
    SCRATCH_HR,
    GlobalCheckpoints,
    Stage1Config,
)


@dataclass(frozen=True)
class WorkingResolution:
    """Largest photo (in pixels) the global stage runs on directly; larger photos are restored at this
    size and their fine detail is transferred from the original (see the module docstring).

    1 MP is the size of the original's published CPU timing (28 s for quality mode) and about where its scratch
    mode stops fitting in 23 GiB. With the chunked attention a 2560x1920 scratched photo then needs about 230
    CPU-seconds (2.4 GiB peak RSS) and a 24 MP one about the same (only the resampling, detail transfer and dlib grow); photos up to this size are
    processed exactly as the original would."""

    quality_pixels: int = 1_000_000
    scratch_pixels: int = 1_000_000
    detail_strength: float = 1.0  # 0 = plain upscale of the restoration, 1 = all fine detail of the original
    scratch_detail_dilation: int = 2  # 3x3 dilations of the upscaled mask where no detail is transferred


@dataclass
class FaceResult:
    """One face: the aligned crop before and after enhancement (``face_size`` squares)."""

    index: int
    rect: tuple[int, int, int, int]
    before: np.ndarray
    after: np.ndarray


@dataclass
class RestoreResult:
    """Final photo and every intermediate the UI shows."""

    image: np.ndarray  # final RGB uint8
    input: np.ndarray  # the photo as read (RGB uint8)
    global_restored: np.ndarray  # after stage 1, at the final size (RGB uint8)
    scratch_mask: np.ndarray | None = None  # (H, W) uint8 0/255 at the final size, when scratches were detected
    faces: list[FaceResult] = field(default_factory=list)
    strategy: str = ""
    working_size: tuple[int, int] | None = None  # (width, height) the global stage ran at
    grayscale: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def notes(self) -> str:
        """One line for the user: what was done."""
        parts = [self.strategy]
        if self.scratch_mask is not None:
            share = float((self.scratch_mask > 0).mean()) * 100
            parts.append(f"scratches detected on {share:.1f}% of the photo")
        parts.append(
            f"{len(self.faces)} face{'s' if len(self.faces) != 1 else ''} enhanced"
            if self.faces
            else "no face enhanced"
        )
        if self.grayscale:
            parts.append("kept in grayscale")
        return "; ".join(p for p in parts if p) + "."


# --------------------------------------------------------------------------- pure helpers


def is_grayscale(image: np.ndarray) -> bool:
    """True when the three channels are equal (a grey photo read as RGB)."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (PIL ``"L"``) replicated to three channels."""
    luma = np.asarray(Image.fromarray(image).convert("L"))
    return np.repeat(luma[..., None], 3, axis=2)


def working_size(width: int, height: int, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) with the aspect ratio kept and at most ``max_pixels``, or None if the photo fits."""
    if width * height <= max_pixels:
        return None
    scale = math.sqrt(max_pixels / (width * height))
    return max(16, int(width * scale)), max(16, int(height * scale))


def resize(image: np.ndarray, size: tuple[int, int], resample: int = Image.BICUBIC) -> np.ndarray:
    """PIL resize to (width, height) (PIL filters are antialiased when shrinking)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(size, resample))


def transfer_detail(
    original: np.ndarray,
    restored_small: np.ndarray,
    work: tuple[int, int],
    strength: float,
    no_detail: np.ndarray | None = None,
    rows: int = 512,
) -> np.ndarray:
    """Upscale ``restored_small`` to the original's size and add the original's detail band that the
    working size ``work`` cannot hold (``original - up(down(original))``), except where ``no_detail``
    (scratches) is set. Processed in row strips so the float temporaries stay small."""
    height, width = original.shape[:2]
    up = resize(restored_small, (width, height))
    low = resize(resize(original, work), (width, height))
    out = np.empty_like(original)
    for y in range(0, height, rows):
        sl = slice(y, min(y + rows, height))
        detail = original[sl].astype(np.float32) - low[sl].astype(np.float32)
        if no_detail is not None:
            detail *= (no_detail[sl] == 0)[..., None]
        out[sl] = np.clip(up[sl].astype(np.float32) + strength * detail + 0.5, 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- the pipeline


class RestorationPipeline:
    """Build once, call many times. Networks load lazily, on first use, through the shared cache."""

    def __init__(
        self,
        device: torch.device | str | None = None,
        working: WorkingResolution | None = None,
        stage1: Stage1Config | None = None,
    ):
        self.device = torch.device(device) if device is not None else pick_device()
        self.working = working or WorkingResolution()
        self.stage1 = stage1 or Stage1Config()

    @classmethod
    def from_pretrained(cls, device: torch.device | str | None = None, **kwargs: object) -> RestorationPipeline:
        return cls(device=device, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def checkpoints(with_scratch: bool = True, hr: bool = True, enhance_faces: bool = True) -> list[str]:
        """Registry ids a call with these options may load."""
        ids = list(dict.fromkeys([*vars_of(QUALITY)]))
        if with_scratch:
            ids = list(
                dict.fromkeys([*ids, DETECTOR_CHECKPOINT, *vars_of(SCRATCH), *(vars_of(SCRATCH_HR) if hr else [])])
            )
        if enhance_faces:
            ids += [FACE_CHECKPOINTS[256]] + ([FACE_CHECKPOINTS[512]] if hr else [])
        return ids

    # -- networks

    def network(self, checkpoint_id: str) -> torch.nn.Module:
        return cached_network(checkpoint_id, None, self.device)

    # -- stages

    def detect_scratches(self, image: np.ndarray) -> np.ndarray:
        """Stage 1a: (H16, W16) uint8 0/255 scratch mask of the multiple-of-16 resized photo."""
        return stage1.ScratchDetector.from_pretrained(self.device, self.stage1)(image).mask

    def restore_global(self, image: np.ndarray, mask: np.ndarray | None, hr: bool) -> np.ndarray:
        """Stage 1b: quality restoration, or scratch-aware restoration with ``mask`` (``hr``: patch attention)."""
        mode = "quality" if mask is None else "scratch"
        return stage1.GlobalRestorer.from_pretrained(mode, hr and mask is not None, self.device, self.stage1)(
            image, mask
        )

    def global_input(self, photo: np.ndarray, with_scratch: bool) -> tuple[np.ndarray, tuple[int, int] | None]:
        """(the image stage 1 sees, its working size or None when the photo fits the budget)."""
        if min(photo.shape[:2]) < 32:
            raise InputError(
                f"The photo is too small ({photo.shape[1]}x{photo.shape[0]}); it needs at least 32 px per side."
            )
        budget = self.working.scratch_pixels if with_scratch else self.working.quality_pixels
        work = working_size(photo.shape[1], photo.shape[0], budget)
        return (resize(photo, work) if work else photo), work

    def restore_global_many(self, sources: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 1b in quality mode for several :meth:`global_input` images: those that share a working size
        (after rounding to multiples of 4) go through the networks in one batch."""
        restorer = stage1.GlobalRestorer.from_pretrained("quality", False, self.device, self.stage1)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, source in enumerate(sources):
            groups.setdefault(restorer.prepare(source, None)[0].shape, []).append(i)
        results: list[np.ndarray] = [np.empty(0, np.uint8)] * len(sources)
        with oom_guard("Try a smaller batch."):
            for indices in groups.values():
                for i, restored in zip(indices, restorer.restore_many([sources[i] for i in indices]), strict=True):
                    results[i] = restored
        return results

    def enhance_face(self, crop: np.ndarray, load_size: int) -> np.ndarray:
        """Stage 3 on one aligned crop: the SPADE generator at ``load_size``; uint8 ``load_size`` square."""
        plan = precisions.plan("bopbtl.face_enhancer", self.device)
        net = plan.prepare(self.network(FACE_CHECKPOINTS[load_size]))
        x = face_ops.face_to_tensor(crop, load_size).to(self.device)
        with plan.autocast():
            y = net(None, plan.input(x))
        return face_ops.tensor_to_face(y.float())

    # -- the whole call

    @torch.no_grad()
    def __call__(
        self,
        image: ImageLike,
        with_scratch: bool = False,
        hr: bool = False,
        enhance_faces: bool = True,
        progress: ProgressFn | None = None,
        *,
        restored_global: np.ndarray | None = None,
        precision: str | None = None,
    ) -> RestoreResult:
        """``restored_global``: this photo's stage-1 result computed beforehand (batch jobs:
        :meth:`restore_global_many`); quality mode only. ``precision``: ``auto`` or ``exact``
        (:mod:`pipelines.common.precision`; None = the current mode)."""
        with precisions.using(precision):
            return self._run(image, with_scratch, hr, enhance_faces, progress, restored_global)

    def _run(
        self,
        image: ImageLike,
        with_scratch: bool,
        hr: bool,
        enhance_faces: bool,
        progress: ProgressFn | None,
        restored_global: np.ndarray | None,
    ) -> RestoreResult:
        report = progress or (lambda fraction, message: None)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        photo = load_image(image, name="photo")
        if restored_global is not None and with_scratch:
            raise ValueError("a precomputed stage-1 result is for quality mode only")
        gray = is_grayscale(photo)
        height, width = photo.shape[:2]
        source, work = self.global_input(photo, with_scratch)

        hint = "Try without 'high resolution', or a smaller photo."
        mask_small = None
        with oom_guard(hint):
            if with_scratch:
                report(0.05, "Detecting scratches")
                t = time.perf_counter()
                mask_small = self.detect_scratches(source)
                timings["scratch_detection"] = time.perf_counter() - t
            report(0.2, "Restoring the whole photo")
            t = time.perf_counter()
            restored = self.restore_global(source, mask_small, hr) if restored_global is None else restored_global
            timings["global_restoration"] = time.perf_counter() - t

        mask_full = None
        if work:
            t = time.perf_counter()
            if mask_small is not None:
                mask_full = resize(mask_small, (width, height), Image.NEAREST)
            no_detail = None
            if mask_full is not None and self.working.scratch_detail_dilation:
                kernel = np.ones((3, 3), np.uint8)
                no_detail = cv2.dilate(mask_full, kernel, iterations=self.working.scratch_detail_dilation)
            restored = transfer_detail(photo, restored, work, self.working.detail_strength, no_detail)
            timings["detail_transfer"] = time.perf_counter() - t
            strategy = (
                f"Large photo: restored at {work[0]}x{work[1]} ({work[0] * work[1] / 1e6:.1f} MP), upscaled to "
                f"{width}x{height} with the original's fine detail carried over"
                + (" except on scratches" if mask_full is not None else "")
            )
        else:
            mask_full = mask_small
            strategy = f"Restored at full resolution ({restored.shape[1]}x{restored.shape[0]}), as the original"

        result = RestoreResult(
            image=restored,
            input=photo,
            global_restored=restored,
            scratch_mask=mask_full,
            strategy=strategy,
            working_size=work,
            grayscale=gray,
            timings=timings,
        )
        if enhance_faces:
            face_size = 512 if hr else 256
            report(0.7, "Finding faces")
            t = time.perf_counter()
            found = face_ops.align_faces(restored, face_size)
            timings["face_alignment"] = time.perf_counter() - t
            if found:
                enhanced = []
                t = time.perf_counter()
                with oom_guard(hint):
                    for i, face in enumerate(found):
                        report(0.75 + 0.2 * i / len(found), f"Enhancing face {i + 1} of {len(found)}")
                        enhanced.append(self.enhance_face(face.crop, face_size))
                timings["face_enhancement"] = time.perf_counter() - t
                t = time.perf_counter()
                result.image = face_ops.paste_faces(restored, found, enhanced, face_size)
                timings["face_blending"] = time.perf_counter() - t
                result.faces = [FaceResult(f.index, f.rect, f.crop, e) for f, e in zip(found, enhanced, strict=True)]
        if gray:
            result.image = to_grayscale(result.image)
            result.global_restored = to_grayscale(result.global_restored)
        timings["total"] = time.perf_counter() - start
        report(1.0, "Done")
        return result


def vars_of(ids: GlobalCheckpoints) -> list[str]:
    return [ids.vae_a, ids.mapping, ids.vae_b]


_DEFAULT: dict[str, RestorationPipeline] = {}


def restore(
    image: ImageLike,
    with_scratch: bool = False,
    hr: bool = False,
    enhance_faces: bool = True,
    progress: ProgressFn | None = None,
    precision: str | None = None,
) -> RestoreResult:
    """Restore one photo with the process-wide pipeline (networks are loaded once and kept);
    ``precision`` ``auto`` (default) or ``exact``, see :mod:`pipelines.common.precision`."""
    pipe = _DEFAULT.get("pipe")
    if pipe is None:
        pipe = _DEFAULT.setdefault("pipe", RestorationPipeline())
    return pipe(
        image, with_scratch=with_scratch, hr=hr, enhance_faces=enhance_faces, progress=progress, precision=precision
    )
