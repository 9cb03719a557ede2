"""The one-click chain: restore, colorize, animate every chosen face of a whole photo.

Like Deep Nostalgia, but each step is a published open model and can be switched off:

1. **Restore** (Bringing Old Photos Back to Life). Scratch mode when the user says so or, in
   ``auto``, when the scratch detector marks more than a small share of the photo
   (:func:`~pipelines.nostalgia.analysis.has_scratches`).
2. **Colorize** (DeOldify) when the user says so or, in ``auto``, when the restored photo is
   grayscale, toned or faded (:func:`~pipelines.nostalgia.analysis.needs_colorization`).
3. **Animate** (TPSMM, vox) the chosen face, or all faces, by a driving video or the offline
   preset motion; the animated faces are pasted back into the whole photo.

Faces are detected on the final still *and* on the input photo, and the detection that finds more
faces is used: restoration and colorization keep the geometry, but can make a face easier or harder
for the HOG detector to see (and with fixture weights they destroy it), so the input's boxes are a
safe fallback. Every step's decision, reason and time is recorded in :attr:`NostalgiaResult.steps`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.animation import crop as crops
from pipelines.animation.pipeline import FaceMotion, animate_faces
from pipelines.common import faces, media
from pipelines.common import precision as precisions
from pipelines.common.errors import InputError
from pipelines.common.progress import ProgressFn
from pipelines.nostalgia import analysis
from pipelines.nostalgia.config import NostalgiaOptions
from pipelines.nostalgia.motion import choose_faces, preset_driving_video

# Share of the progress bar each step takes (the animation dominates on a CPU).
_SPANS = {"restore": (0.0, 0.35), "colorize": (0.35, 0.5), "animate": (0.5, 0.97)}


@dataclass
class Step:
    """What one step did: ``ran`` or not, and why (shown to the user)."""

    name: str
    ran: bool
    reason: str
    seconds: float = 0.0


@dataclass
class NostalgiaResult:
    """The chain's outputs: every intermediate, the animation and the decisions taken."""

    input: np.ndarray  # the photo as read (fitted to max_side), RGB uint8
    restored: np.ndarray | None  # after step 1 (None when switched off)
    colorized: np.ndarray | None  # after step 2 (None when not run)
    image: np.ndarray  # the final still
    face_boxes: np.ndarray  # (N, 4) (left, top, right, bottom) in ``image`` pixels, largest first
    motion: FaceMotion | None = None  # the animated faces (None when not animated)
    video: Path | None = None  # the whole photo, animated (H.264), when animated and written
    steps: list[Step] = field(default_factory=list)
    scratch_mask: np.ndarray | None = None
    color: analysis.ColorStats | None = None

    @property
    def notes(self) -> str:
        """One line per step for the user."""
        return "\n".join(f"- **{s.name}**: {s.reason}" + (f" ({s.seconds:.1f} s)" if s.ran else "") for s in self.steps)

    def face_thumbnails(self) -> list[tuple[np.ndarray, str]]:
        """Each detected face (largest first), whole and numbered, for choosing which to animate."""
        return [(faces.face_thumbnail(self.image, box, i + 1), f"Face {i + 1}") for i, box in enumerate(self.face_boxes)]

    def save(self, folder: str | Path, stem: str, overwrite: bool = False) -> list[Path]:
        """Write the intermediates and the video as ``stem.restored.png``, ``stem.colorized.png``,
        ``stem.animated.mp4`` into ``folder``; refuses to replace files unless ``overwrite``."""
        folder = Path(folder)
        planned: list[tuple[Path, Any]] = []
        if self.restored is not None:
            planned.append((folder / f"{stem}.restored.png", self.restored))
        if self.colorized is not None:
            planned.append((folder / f"{stem}.colorized.png", self.colorized))
        if self.restored is None and self.colorized is None:
            planned.append((folder / f"{stem}.png", self.image))
        if self.video is not None:
            planned.append((folder / f"{stem}.animated.mp4", self.video))
        existing = [p for p, _ in planned if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(", ".join(str(p) for p in existing))
        folder.mkdir(parents=True, exist_ok=True)
        import shutil

        for path, value in planned:
            if isinstance(value, Path):
                shutil.copyfile(value, path)
            else:
                media.save_png(value, path)
        return [p for p, _ in planned]


def _scaled_boxes(boxes: np.ndarray, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> np.ndarray:
    if boxes.size == 0 or src_shape[:2] == dst_shape[:2]:
        return boxes
    sy, sx = dst_shape[0] / src_shape[0], dst_shape[1] / src_shape[1]
    return np.round(boxes * np.array([sx, sy, sx, sy])).astype(np.int64)


def _span(step: str, report: ProgressFn, label: str) -> ProgressFn:
    """Map a step's own 0..1 progress into its share of the bar, prefixed with the step's name."""
    lo, hi = _SPANS[step]

    def sub(fraction: float, message: str = "") -> None:
        report(lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0), f"{label}: {message}" if message else label)

    return sub


class NostalgiaPipeline:
    """Build once, call many times. The networks live in the process-wide model cache of each family,
    so building this object is free and repeated calls reuse the loaded models."""

    def __init__(self, options: NostalgiaOptions | None = None):
        self.options = (options or NostalgiaOptions()).validated()

    @classmethod
    def from_pretrained(cls, options: NostalgiaOptions | None = None) -> NostalgiaPipeline:
        return cls(options)

    @staticmethod
    def checkpoints(options: NostalgiaOptions | None = None) -> list[str]:
        """Registry ids a call with these options may load."""
        from pipelines.animation.config import get_config
        from pipelines.colorization.config import variant
        from pipelines.restoration.pipeline import RestorationPipeline

        opts = options or NostalgiaOptions()
        ids: list[str] = []
        if opts.restore:
            ids += RestorationPipeline.checkpoints(opts.scratches != "no", opts.hr, opts.enhance_faces)
        if opts.colorize != "no":
            ids.append(variant(opts.colorize_model).checkpoint_id)
        if opts.animate:
            ids.append(get_config(opts.animation_model).checkpoint_id)
        return list(dict.fromkeys(ids))

    # ---- steps

    def detect_scratches(self, photo: np.ndarray) -> np.ndarray:
        """The restoration's scratch mask (uint8 0/255) of ``photo``."""
        from pipelines.restoration.pipeline import RestorationPipeline

        return RestorationPipeline().detect_scratches(photo)

    def restore_step(
        self, photo: np.ndarray, opts: NostalgiaOptions, report: ProgressFn
    ) -> tuple[np.ndarray, Step, np.ndarray | None]:
        from pipelines.restoration.pipeline import restore

        start = time.perf_counter()
        mask = None
        if opts.scratches == "auto":
            report(0.0, "looking for scratches")
            mask = self.detect_scratches(photo)
            share = analysis.scratch_fraction(mask)
            with_scratch = analysis.has_scratches(mask, opts.scratch_threshold)
            why = (
                f"scratches detected on {share * 100:.1f}% of the photo: scratch repair on"
                if with_scratch
                else f"no significant scratches ({share * 100:.2f}% marked): quality restoration"
            )
        else:
            with_scratch = opts.scratches == "yes"
            why = "scratch repair on (chosen)" if with_scratch else "quality restoration (scratch repair off)"
        result = restore(photo, with_scratch=with_scratch, hr=opts.hr, enhance_faces=opts.enhance_faces,
                         progress=lambda f, m="": report(0.1 + 0.9 * f, m))  # fmt: skip
        n = len(result.faces)
        if opts.enhance_faces:
            why += f"; {n} face{'s' if n != 1 else ''} enhanced"
        return result.image, Step("Restore", True, why, time.perf_counter() - start), result.scratch_mask

    def colorize_step(
        self, image: np.ndarray, opts: NostalgiaOptions, report: ProgressFn
    ) -> tuple[np.ndarray | None, Step, analysis.ColorStats]:
        from pipelines.colorization.pipeline import Colorizer

        start = time.perf_counter()
        stats = analysis.color_stats(image)
        if opts.colorize == "auto":
            run = stats.residual_chroma < opts.color_threshold
            why = (
                f"the photo is grayscale, toned or faded (colour measure {stats.residual_chroma:.1f} < {opts.color_threshold:g})"
                if run
                else f"the photo already has colour (colour measure {stats.residual_chroma:.1f} >= {opts.color_threshold:g}): skipped"
            )
        else:
            run = opts.colorize == "yes"
            why = "colorized (chosen)" if run else "switched off"
        if not run:
            return None, Step("Colorize", False, why), stats
        report(0.1, f"DeOldify {opts.colorize_model}, render factor {opts.render_factor}")
        colored = Colorizer.from_pretrained(opts.colorize_model)(image, opts.render_factor)
        why = (
            f"{why}; DeOldify {opts.colorize_model}, render factor {opts.render_factor}"
            if opts.colorize == "auto"
            else f"DeOldify {opts.colorize_model}, render factor {opts.render_factor}"
        )
        return colored, Step("Colorize", True, why, time.perf_counter() - start), stats

    def find_faces(self, image: np.ndarray, original: np.ndarray) -> np.ndarray:
        """Face boxes in ``image`` pixels: from the final still or, when the input shows more faces
        (see the module docstring), from the input scaled to the final size."""
        final = faces.detect_faces(image)
        before = _scaled_boxes(faces.detect_faces(original), original.shape, image.shape)
        return before if len(before) > len(final) else final

    def driving(self, opts: NostalgiaOptions) -> tuple[list[np.ndarray], float]:
        """Driving frames and fps: the first ``motion_seconds`` of the uploaded video, else the
        offline preset, ``motion_seconds`` long."""
        if opts.driving is not None and str(opts.driving).strip():
            frames, info = media.read_video(Path(opts.driving), first_seconds=float(opts.motion_seconds))
        else:
            path = preset_driving_video(opts.preset, float(opts.motion_seconds), float(opts.motion_fps))
            frames, info = media.read_video(path)
        return frames, info.fps

    def animate_step(
        self, image: np.ndarray, boxes: np.ndarray, opts: NostalgiaOptions, report: ProgressFn
    ) -> tuple[FaceMotion, Step]:
        start = time.perf_counter()
        numbers = choose_faces(len(boxes), int(opts.face_index), bool(opts.all_faces))
        report(0.0, "preparing the driving motion")
        frames, fps = self.driving(opts)
        motion = animate_faces(image, boxes, numbers, frames, fps, model=opts.animation_model, mode=opts.animation_mode,
                               progress=lambda f, m="": report(0.05 + 0.95 * f, m))  # fmt: skip
        which = "all faces" if opts.all_faces and len(numbers) > 1 else f"face {numbers[0] + 1}"
        why = f"{which} of {len(boxes)} animated, {len(motion)} frames at {fps:g} fps ({'uploaded driving video' if opts.driving else opts.preset + ' preset'})"
        return motion, Step("Animate", True, why, time.perf_counter() - start)

    # ---- the whole chain

    def __call__(
        self,
        image: media.ImageLike,
        options: NostalgiaOptions | None = None,
        *,
        write_video: bool = True,
        allow_no_face: bool = False,
        progress: ProgressFn | None = None,
    ) -> NostalgiaResult:
        """Run the chain on one photo. ``write_video=False`` keeps the animation as frames only
        (the story composes its own video); ``allow_no_face`` skips the animation, instead of
        refusing the photo, when no face is found."""
        opts = (options or self.options).validated()
        with precisions.using(opts.precision):
            return self._run(image, opts, write_video, allow_no_face, progress)

    def _run(
        self,
        image: media.ImageLike,
        opts: NostalgiaOptions,
        write_video: bool,
        allow_no_face: bool,
        progress: ProgressFn | None,
    ) -> NostalgiaResult:
        report = progress or (lambda f, m="": None)
        photo = crops.fit(media.load_image(image, name="photo"), int(opts.max_side))
        if min(photo.shape[:2]) < 32:
            raise InputError(
                f"The photo is too small ({photo.shape[1]}x{photo.shape[0]}); it needs at least 32 px per side."
            )
        steps: list[Step] = []
        current, restored, mask = photo, None, None
        if opts.restore:
            restored, step, mask = self.restore_step(photo, opts, _span("restore", report, "Step 1/3 Restoring"))
            current = restored
        else:
            step = Step("Restore", False, "switched off")
        steps.append(step)

        colorized, step, stats = self.colorize_step(current, opts, _span("colorize", report, "Step 2/3 Colorizing"))
        steps.append(step)
        if colorized is not None:
            current = colorized

        report(_SPANS["animate"][0], "Step 3/3 Animating: finding faces")
        boxes = self.find_faces(current, photo)
        result = NostalgiaResult(
            photo, restored, colorized, current, boxes, steps=steps, scratch_mask=mask, color=stats
        )
        if opts.animate and allow_no_face and not len(boxes):
            steps.append(Step("Animate", False, "no face found: nothing to animate"))
        elif opts.animate:
            motion, step = self.animate_step(current, boxes, opts, _span("animate", report, "Step 3/3 Animating"))
            result.motion = motion
            steps.append(step)
            if write_video:
                report(_SPANS["animate"][1], "Encoding the video")
                path = media.new_output_path(".mp4", prefix="nostalgia")
                # An uploaded driving video's sound goes with its motion; the preset is silent.
                audio = Path(opts.driving) if opts.driving else None
                media.write_video(motion.frames(), path, motion.fps, audio_from=audio)
                result.video = path
        else:
            steps.append(
                Step("Animate", False, f"switched off ({len(boxes)} face{'s' if len(boxes) != 1 else ''} found)")
            )
        report(1.0, "Done")
        return result


_DEFAULT: dict[str, NostalgiaPipeline] = {}


def nostalgia(
    image: media.ImageLike,
    options: NostalgiaOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    **kwargs: Any,
) -> NostalgiaResult:
    """Restore, colorize and animate one photo in one call; keywords are :class:`NostalgiaOptions`
    fields (``nostalgia("grandma.jpg", all_faces=True, colorize="yes")``)."""
    if options is not None and kwargs:
        options = options.but(**kwargs).validated()
    elif options is None:
        options = NostalgiaOptions.from_kwargs(**kwargs)
    pipe = _DEFAULT.setdefault("pipe", NostalgiaPipeline())
    return pipe(image, options, progress=progress)
