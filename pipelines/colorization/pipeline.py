"""DeOldify colorization: still images, batches, render-factor sweeps and video.

The still-image path is the original ``ModelImageVisualizer.get_transformed_image`` (watermark
off), step for step, so that the reference cases in ``shared/reference/deoldify`` pass:

1. stretch the photo to a ``render_factor*16`` square with PIL BILINEAR (anti-aliased when
   shrinking; OpenCV's resize is *not* equivalent), then gray it with Pillow's integer formula;
2. ``/255`` and ImageNet-normalise the gray image replicated to three channels;
3. run the generator; denormalise, ``*255`` and cast to 8 bits (see :func:`to_uint8`);
4. resize the square back to the photo's size with PIL BILINEAR (``raw_color``);
5. post-process: keep the photo's own luminance and take only the chrominance from ``raw_color``
   (OpenCV 8-bit YUV), so the result is as sharp as the input whatever the render factor.

Beyond the original: batches share one forward, failures are errors (never the gray input
returned as if it were a result), and video can smooth the chrominance over time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from pipelines.colorization.config import (
    DEFAULT_RENDER_FACTOR_IMAGE,
    DEFAULT_RENDER_FACTOR_VIDEO,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RENDER_BASE,
    GeneratorConfig,
    variant,
)
from pipelines.colorization.networks import DeOldifyGenerator
from pipelines.common import precision as precisions
from pipelines.common.device import cached_network, oom_guard, pick_device
from pipelines.common.errors import InputError
from pipelines.common.limits import LIMITS
from pipelines.common.media import (
    ImageLike,
    discard_on_failure,
    frames_in_first,
    iter_frames,
    load_image,
    new_output_path,
    probe_video,
    write_video,
)
from pipelines.common.progress import ProgressFn, stop_point

# Render factors the pipeline accepts (the UI offers 7..45; the original accepts any positive one).
RENDER_FACTOR_LIMITS = (1, 64)
DEFAULT_SWEEP = (10, 15, 20, 25, 30, 35, 40, 45)

# --------------------------------------------------------------------------- pure pre/post-processing


def render_size(render_factor: int) -> int:
    """Side of the square the network sees (the original's ``render_factor * render_base``)."""
    if isinstance(render_factor, bool) or not isinstance(render_factor, (int, np.integer)):
        if isinstance(render_factor, float) and render_factor.is_integer():
            render_factor = int(render_factor)
        else:
            raise InputError(f"render_factor must be a whole number, got {render_factor!r}.")
    low, high = RENDER_FACTOR_LIMITS
    if not low <= int(render_factor) <= high:
        raise InputError(f"render_factor must be between {low} and {high} (got {render_factor}); 35 suits most photos.")
    return int(render_factor) * RENDER_BASE


def pil_gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``convert('L')``/``convert('LA')`` luminance, exactly: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16).astype(np.uint8)


def model_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """The square gray uint8 image the original feeds the network (aspect ratio ignored)."""
    square = Image.fromarray(rgb).resize((size, size), Image.BILINEAR)
    return pil_gray(np.asarray(square))


def to_network(grays: Sequence[np.ndarray]) -> torch.Tensor:
    """Gray uint8 squares -> float32 [B, 3, S, S], /255 and ImageNet-normalised per channel."""
    x = torch.from_numpy(np.stack(grays)).float().div_(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def to_uint8(y: torch.Tensor, *, overflow: str = "clip") -> np.ndarray:
    """Network output [B, 3, S, S] (normalised) -> uint8 [B, S, S, 3]: ``(y*std + mean) * 255``, then 8 bits.

    The original casts with numpy ``astype(uint8)``: truncation toward zero and, out of range,
    wrap-around modulo 256 (``-1.5 -> 255``, ``300.7 -> 44``) which paints dark specks into
    saturated highlights. ``overflow="clip"`` (the pipeline's choice) truncates the same way but
    clamps to 0..255 instead; ``overflow="wrap"`` reproduces the original bit for bit. Both are
    identical whenever the values stay in [0, 256), as in every reference case (the parity
    handler uses ``"wrap"`` so that cases whose values leave the range are reproduced too).
    """
    mean = torch.tensor(IMAGENET_MEAN, device=y.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=y.device).view(1, 3, 1, 1)
    v = ((y.float() * std + mean) * 255.0).permute(0, 2, 3, 1).cpu().numpy()
    if overflow == "wrap":
        return np.mod(np.trunc(v).astype(np.int64), 256).astype(np.uint8)
    if overflow == "clip":
        return np.clip(np.trunc(v), 0, 255).astype(np.uint8)
    raise ValueError(f"overflow must be 'clip' or 'wrap', not {overflow!r}")


def resize_back(square: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL BILINEAR resize of the square network colours to the photo's size (``raw_color``)."""
    return np.asarray(Image.fromarray(square).resize((width, height), Image.BILINEAR))


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit fixed-point RGB -> YUV (the original post-process uses it)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV)


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(yuv), cv2.COLOR_YUV2RGB)


def merge_luminance(photo: np.ndarray, color: np.ndarray, chroma: np.ndarray | None = None) -> np.ndarray:
    """The original post-process: Y of ``photo`` with U, V of ``color`` (or the given ``chroma``)."""
    yuv = rgb_to_yuv(photo)
    yuv[..., 1:] = rgb_to_yuv(color)[..., 1:] if chroma is None else chroma
    return yuv_to_rgb(yuv)


def chroma_flicker(frames: Iterable[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of the chrominance (U, V of OpenCV YUV, 0..255 scale).

    0 means perfectly steady colours; it is the number reported with and without smoothing.
    """
    total, count, previous = 0.0, 0, None
    for frame in frames:
        uv = rgb_to_yuv(frame)[..., 1:].astype(np.float32)
        if previous is not None:
            total += float(np.abs(uv - previous).mean())
            count += 1
        previous = uv
    return total / count if count else 0.0


class ChromaSmoother:
    """Motion-gated exponential moving average of the chrominance over time, reset at scene cuts.

    DeOldify colours each frame independently, so colours can shimmer from frame to frame. Each
    pixel's U, V are blended with their running average, with the weight of the past equal to
    ``strength`` where the luminance did not change and falling to 0 where it changed by
    ``motion_levels`` or more after compensating a global exposure change (moving content keeps its
    own colour instead of leaving a trail; old-film exposure flicker is still smoothed).
    A scene cut (luminance histograms further apart than ``cut_distance`` in half-L1) restarts the
    average, so colours never bleed across cuts. Luminance is never touched.
    """

    def __init__(self, strength: float = 0.6, motion_levels: float = 24.0, cut_distance: float = 0.5) -> None:
        if not 0.0 <= strength < 1.0:
            raise InputError(f"Temporal smoothing must be in [0, 1), got {strength}.")
        self.strength = strength
        self.motion_levels = motion_levels
        self.cut_distance = cut_distance
        self._uv: np.ndarray | None = None
        self._luma: np.ndarray | None = None
        self._hist: np.ndarray | None = None

    def __call__(self, luma: np.ndarray, uv: np.ndarray) -> np.ndarray:
        uv_f = uv.astype(np.float32)
        luma_f = luma.astype(np.float32)
        hist = np.bincount(luma.reshape(-1) >> 3, minlength=32) / luma.size
        cut = (
            self._uv is None
            or self._uv.shape != uv_f.shape
            or 0.5 * float(np.abs(hist - self._hist).sum()) > self.cut_distance
        )
        if cut:
            self._uv = uv_f
        else:
            # old film flickers in exposure: compare against the previous frame scaled to this one's
            # mean brightness, so a global exposure change does not count as motion
            exposure = (float(luma_f.mean()) + 1.0) / (float(self._luma.mean()) + 1.0)
            # blur the signed difference before taking its size: film grain averages out, motion does not
            change = np.abs(cv2.blur(luma_f - exposure * self._luma, (5, 5)))
            weight = (self.strength * np.clip(1.0 - change / self.motion_levels, 0.0, 1.0))[..., None]
            self._uv = weight * self._uv + (1.0 - weight) * uv_f
        self._luma, self._hist = luma_f, hist
        return np.clip(np.rint(self._uv), 0, 255).astype(np.uint8)


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------- the pipeline


@dataclass
class SweepResult:
    render_factor: int
    image: np.ndarray


def _oom_hint(render_factor: int) -> str:
    lower = max(RENDER_FACTOR_LIMITS[0], math.floor(render_factor * 0.6))
    return (
        f"Render factor {render_factor} needs a {render_factor * RENDER_BASE}x{render_factor * RENDER_BASE} pass "
        f"through the network. Lower the render factor (try {lower}) or use fewer images/frames at once."
    )



#: Frames per forward pass of the video path, by device type (others: 1). On a CPU a batch gains
#: little and a Stop would wait for all its frames.
VIDEO_BATCH_SIZES = {"cuda": 4}


def video_batch_size(device: torch.device) -> int:
    """Frames per forward pass when colorizing a video on ``device``."""
    return VIDEO_BATCH_SIZES.get(device.type, 1)

class Colorizer:
    """One DeOldify generator, loaded once, called many times.

    Build with :meth:`from_pretrained` (weights through the shared model cache). ``precision``:
    ``"auto"`` / ``"exact"`` (None = the current mode), see :mod:`pipelines.common.precision`;
    ``exact`` reproduces the original (tensors channels_last, exact up to float rounding).
    """

    def __init__(
        self,
        network: DeOldifyGenerator,
        config: GeneratorConfig,
        device: torch.device,
        *,
        precision: str | None = None,
        channels_last: bool = True,
        overflow: str = "clip",
    ) -> None:
        self.network = network.to(memory_format=torch.channels_last) if channels_last else network
        self.config = config
        self.device = device
        self.precision = precision and precisions.check_mode(precision)
        self.channels_last = channels_last
        self.overflow = overflow

    @classmethod
    def from_pretrained(cls, model: str = "artistic", device: torch.device | str | None = None, **kwargs) -> Colorizer:
        """The published generator ``model`` (artistic, stable, video) on ``device``.

        Raises :class:`ModelUnavailableError` with download instructions when the file is missing.
        """
        config = variant(model)
        dev = pick_device(str(device) if device is not None else None)
        network = cached_network(config.checkpoint_id, "generator", dev)
        return cls(network, config, dev, **kwargs)  # type: ignore[arg-type]

    # ---- network step

    def render(self, grays: Sequence[np.ndarray], render_factor: int) -> np.ndarray:
        """Gray squares -> the network's colours as uint8 squares [B, S, S, 3] (one forward)."""
        x = to_network(grays).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        plan = precisions.plan("deoldify.generator", self.device, self.precision)
        with oom_guard(_oom_hint(render_factor)), torch.inference_mode(), plan.autocast():
            y = plan.prepare(self.network)(plan.input(x))
        return to_uint8(y.float(), overflow=self.overflow)

    def raw_colors(self, photos: Sequence[np.ndarray], render_factor: int) -> list[np.ndarray]:
        """``raw_color`` of each photo: network colours resized back to the photo's size."""
        size = render_size(render_factor)
        squares = self.render([model_input(p, size) for p in photos], render_factor)
        return [resize_back(sq, p.shape[1], p.shape[0]) for sq, p in zip(squares, photos, strict=True)]

    # ---- stills

    def colorize_arrays(
        self, photos: Sequence[np.ndarray], render_factor: int = DEFAULT_RENDER_FACTOR_IMAGE, post_process: bool = True
    ) -> list[np.ndarray]:
        """RGB uint8 photos (any sizes) -> colorized photos of the same sizes, one network pass."""
        raws = self.raw_colors(photos, render_factor)
        if not post_process:
            return raws
        return [merge_luminance(p, raw) for p, raw in zip(photos, raws, strict=True)]

    def __call__(
        self, image: ImageLike, render_factor: int = DEFAULT_RENDER_FACTOR_IMAGE, post_process: bool = True
    ) -> np.ndarray:
        return self.colorize_arrays([load_image(image)], render_factor, post_process)[0]

    def batch(
        self,
        images: Sequence[ImageLike],
        render_factor: int = DEFAULT_RENDER_FACTOR_IMAGE,
        post_process: bool = True,
        *,
        batch_size: int = 4,
    ) -> list[np.ndarray]:
        """Several photos; ``batch_size`` of them share each forward pass."""
        if not images:
            raise InputError("No images given.")
        out: list[np.ndarray] = []
        for chunk in _batched(images, max(1, batch_size)):
            out += self.colorize_arrays([load_image(i) for i in chunk], render_factor, post_process)
        return out

    def sweep(
        self,
        image: ImageLike,
        render_factors: Sequence[int] = DEFAULT_SWEEP,
        post_process: bool = True,
        progress: ProgressFn | None = None,
    ) -> list[SweepResult]:
        """The same photo at several render factors (the original's "try a few" advice, in one call)."""
        factors = list(dict.fromkeys(int(f) for f in render_factors))
        if not factors:
            raise InputError("Choose at least one render factor for the sweep.")
        for f in factors:
            render_size(f)  # validate all before spending time on any
        photo = load_image(image)
        results = []
        for i, f in enumerate(factors):
            if progress:
                progress(i / len(factors), f"render factor {f}")
            results.append(SweepResult(f, self.colorize_arrays([photo], f, post_process)[0]))
        if progress:
            progress(1.0, "done")
        return results

    # ---- video

    def colorize_frames(
        self,
        frames: Iterable[np.ndarray],
        render_factor: int = DEFAULT_RENDER_FACTOR_VIDEO,
        post_process: bool = True,
        *,
        smoothing: float = 0.0,
        batch_size: int | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """Colorize a stream of RGB frames lazily, ``batch_size`` frames per forward pass (None: 4
        on a GPU, 1 on a CPU, where a batch gains little and a Stop would wait for all its frames:
        measured 30 s for a batch of 4 at render factor 21 on a loaded 2-core CPU).

        ``smoothing`` in [0, 1) blends each frame's chrominance with the previous frames'
        (:class:`ChromaSmoother`); 0 gives exactly the still-image result for every frame.
        """
        render_size(render_factor)
        smoother = ChromaSmoother(smoothing) if smoothing > 0 else None
        done = 0
        if batch_size is None:
            batch_size = video_batch_size(self.device)
        for chunk in _batched(frames, max(1, batch_size)):
            stop_point()
            photos = [np.ascontiguousarray(f) for f in chunk]
            raws = self.raw_colors(photos, render_factor)
            for photo, raw in zip(photos, raws, strict=True):
                if smoother is None:
                    out = merge_luminance(photo, raw) if post_process else raw
                else:
                    raw_yuv = rgb_to_yuv(raw)
                    luma = rgb_to_yuv(photo)[..., 0] if post_process else raw_yuv[..., 0]
                    raw_yuv[..., 0] = luma
                    raw_yuv[..., 1:] = smoother(luma, raw_yuv[..., 1:])
                    out = yuv_to_rgb(raw_yuv)
                done += 1
                if on_frame:
                    on_frame(done)
                yield out

    def colorize_video(
        self,
        path: str | Path,
        output: str | Path | None = None,
        render_factor: int = DEFAULT_RENDER_FACTOR_VIDEO,
        post_process: bool = True,
        *,
        smoothing: float = 0.0,
        batch_size: int | None = None,
        first_seconds: float | None = None,
        progress: ProgressFn | None = None,
    ) -> Path:
        """Colorize every frame of a video (only its first ``first_seconds`` when given); H.264 MP4
        at the source fps with the source audio (cut to match)."""
        info = probe_video(path)
        if info.width * info.height > LIMITS.max_video_pixels:
            raise InputError(
                f"{Path(path).name}: frames of {info.width}x{info.height} exceed the limit of "
                f"{LIMITS.max_video_pixels / 1e6:.1f} MP per frame. Downscale the video and try again."
            )
        limit = frames_in_first(first_seconds, info.fps)
        total = max(min(info.n_frames, limit or info.n_frames), 1)

        def on_frame(done: int) -> None:
            if progress:
                progress(min(done / total, 1.0), f"frame {done}/{total}")

        out = Path(output) if output is not None else new_output_path(".mp4", prefix="colorized")
        frames = self.colorize_frames(
            itertools.islice(iter_frames(path), limit), render_factor, post_process, smoothing=smoothing,
            batch_size=batch_size, on_frame=on_frame,
        )
        with discard_on_failure(out):
            return write_video(frames, out, info.fps, audio_from=path)


# --------------------------------------------------------------------------- convenience functions


def colorize(
    image: ImageLike | Sequence[ImageLike],
    model: str = "artistic",
    render_factor: int = DEFAULT_RENDER_FACTOR_IMAGE,
    post_process: bool = True,
    precision: str | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Colorize one photo (returns an RGB uint8 array of the input's size) or a list of photos
    (returns a list), with the published generator ``model``; ``precision`` auto/exact."""
    colorizer = Colorizer.from_pretrained(model, precision=precision)
    if isinstance(image, (list, tuple)):
        return colorizer.batch(image, render_factor, post_process)
    return colorizer(image, render_factor, post_process)


def colorize_sweep(
    image: ImageLike,
    model: str = "artistic",
    render_factors: Sequence[int] = DEFAULT_SWEEP,
    post_process: bool = True,
    progress: ProgressFn | None = None,
    precision: str | None = None,
) -> list[SweepResult]:
    """One photo at several render factors."""
    return Colorizer.from_pretrained(model, precision=precision).sweep(image, render_factors, post_process, progress)


def colorize_video(
    path: str | Path,
    model: str = "video",
    render_factor: int = DEFAULT_RENDER_FACTOR_VIDEO,
    post_process: bool = True,
    *,
    smoothing: float = 0.0,
    output: str | Path | None = None,
    first_seconds: float | None = None,
    progress: ProgressFn | None = None,
    precision: str | None = None,
) -> Path:
    """Colorize a video file (only its first ``first_seconds`` when given); returns the MP4's path."""
    return Colorizer.from_pretrained(model, precision=precision).colorize_video(
        path, output, render_factor, post_process, smoothing=smoothing, first_seconds=first_seconds, progress=progress
    )

