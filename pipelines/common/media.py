"""Image and video I/O for every pipeline and tab.

Images always come out as RGB ``uint8`` arrays (H, W, 3): EXIF orientation applied; grayscale,
palette, RGBA (composited on white), 16-bit and CMYK converted; decompression bombs and unreadable
files refused with a specific :class:`InputError`. Videos are read with imageio-ffmpeg and written
as H.264 yuv420p MP4 (even dimensions, browser-playable) at the source fps, with the source's audio
copied back when it has one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.common.errors import InputError
from pipelines.common.limits import LIMITS

ImageLike = str | os.PathLike | np.ndarray | Image.Image

# --------------------------------------------------------------------------- images


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; alpha composited on white, 16-bit scaled to 8-bit."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(arr * scale), 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGB" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"Expected an image array of shape (H, W[, 1|3|4]); got {arr.shape}.")
    if arr.dtype == np.uint16:
        arr = np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    elif arr.dtype.kind == "f":
        arr = np.clip(np.round(arr * 255.0 if arr.max() <= 1.0 else arr), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        arr = np.round(arr[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(arr)


def load_image(source: ImageLike, *, max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
    """Read any supported image as RGB uint8 (H, W, 3), with EXIF rotation applied."""
    limit = LIMITS.max_pixels if max_pixels is None else max_pixels
    if isinstance(source, np.ndarray):
        arr = _array_to_rgb(source)
        _check_pixels(arr.shape[1], arr.shape[0], limit, name or "image")
        return arr
    if isinstance(source, Image.Image):
        _check_pixels(*source.size, limit, name or "image")
        return np.asarray(_to_rgb(ImageOps.exif_transpose(source))).copy()
    path = Path(source)
    label = name or path.name
    with _decode_errors(label), _open_checked(path, limit, label) as im:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)  # animated GIF/WebP/multi-page TIFF: the first frame is the photo
        im.load()
        im = ImageOps.exif_transpose(im)
        return np.asarray(_to_rgb(im)).copy()


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares about itself, read without decoding its pixels."""

    width: int
    height: int
    format: str
    mode: str
    n_frames: int


def inspect_image(path: str | os.PathLike, *, max_pixels: int | None = None, name: str | None = None) -> ImageHeader:
    """Check an uploaded file by its content (never its extension) without decoding it: it must
    exist, be non-empty, be an image PIL recognises, and declare no more than ``max_pixels``
    pixels. Raises the same :class:`InputError` messages as :func:`load_image`; cheap enough to
    run on every upload before anything else opens the file."""
    limit = LIMITS.max_pixels if max_pixels is None else max_pixels
    path = Path(path)
    label = name or path.name
    with _decode_errors(label), _open_checked(path, limit, label) as im:
        return ImageHeader(im.size[0], im.size[1], str(im.format or "?"), im.mode, int(getattr(im, "n_frames", 1)))


@contextlib.contextmanager
def _open_checked(path: Path, limit: int, label: str) -> Iterator[Image.Image]:
    """``Image.open`` after the existence/emptiness checks, with the pixel limit applied to the
    declared size (before any pixel is decoded)."""
    if not path.exists():
        raise InputError(f"{label}: file not found.")
    if path.stat().st_size == 0:
        raise InputError(f"{label}: the file is empty (0 bytes). Upload the photo again.")
    with Image.open(path) as im:
        _check_pixels(*im.size, limit, label)
        yield im


@contextlib.contextmanager
def _decode_errors(label: str) -> Iterator[None]:
    """PIL's exceptions -> one specific :class:`InputError` each."""
    try:
        yield
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"{label}: the image declares too many pixels ({exc}); refused as a possible decompression bomb."
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{label}: not a readable image (JPEG, PNG, WebP, TIFF, BMP or GIF expected).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{label}: the image is damaged or truncated and cannot be decoded ({exc}).") from exc


def _check_pixels(width: int, height: int, limit: int, label: str) -> None:
    if width < 1 or height < 1:
        raise InputError(f"{label}: the image has no pixels.")
    if width * height > limit:
        raise InputError(
            f"{label}: {width}x{height} = {width * height / 1e6:.1f} MP exceeds the limit of {limit / 1e6:g} MP. "
            "Downscale the photo and try again."
        )


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    path = Path(path)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG")
    return path


# --------------------------------------------------------------------------- video


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class VideoInfo:
    fps: float
    n_frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


def probe_video(path: str | os.PathLike, *, max_seconds: float | None = None) -> VideoInfo:
    """Read a video's size, fps, frame count, duration and whether it has audio; refuse past the
    duration or per-frame pixel limit or when it has no video frames."""
    import imageio_ffmpeg

    path = Path(path)
    label = path.name
    if not path.exists() or path.stat().st_size == 0:
        raise InputError(f"{label}: the video file is empty or missing.")
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
    except (RuntimeError, OSError, StopIteration) as exc:
        streams = video_streams(path)
        if streams and "video" not in streams:
            raise InputError(f"{label}: the file has no video stream (only {', '.join(streams)}); upload a video.") from exc
        raise InputError(
            f"{label}: not a readable video ({str(exc).splitlines()[0] if str(exc) else 'no video stream'})."
        ) from exc
    width, height = meta.get("size", (0, 0))
    fps = float(meta.get("fps") or 0.0)
    duration = float(meta.get("duration") or 0.0)
    if not width or not height or fps <= 0:
        raise InputError(f"{label}: the file has no video stream.")
    if width * height > LIMITS.max_video_pixels:
        raise InputError(
            f"{label}: {width}x{height} frames exceed the limit of {LIMITS.max_video_pixels / 1e6:.1f} MP per frame. "
            "Downscale the video and try again."
        )
    try:
        n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError):
        n_frames = round(duration * fps)
    if n_frames <= 0:
        raise InputError(f"{label}: the video has no frames.")
    duration = duration or n_frames / fps
    limit = LIMITS.max_video_seconds if max_seconds is None else max_seconds
    if duration > limit + 1e-6:
        raise InputError(
            f"{label}: the video is {duration:.1f} s long; the limit is {limit:g} s. Trim it and try again."
        )
    return VideoInfo(fps, n_frames, int(width), int(height), duration, _has_audio(path))


def _has_audio(path: Path) -> bool:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return any("Audio:" in line for line in proc.stderr.splitlines() if "Stream #" in line)


def iter_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video, decoded one at a time."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    width, height = meta["size"]
    try:
        for raw in reader:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
    finally:
        reader.close()


def read_video(path: str | os.PathLike, *, max_seconds: float | None = None) -> tuple[list[np.ndarray], VideoInfo]:
    """All frames (RGB uint8) and the video's info, after the limit checks."""
    info = probe_video(path, max_seconds=max_seconds)
    frames = list(iter_frames(path))
    if not frames:
        raise InputError(f"{Path(path).name}: the video has no decodable frames.")
    info.n_frames = len(frames)
    return frames, info


def write_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float,
    *,
    audio_from: str | os.PathLike | None = None,
    crf: int = 18,
) -> Path:
    """Write RGB uint8 frames as H.264 yuv420p MP4 (browser-playable), padding odd sizes to even,
    then copy the audio of ``audio_from`` (if it has any) into it, cut to the video's length."""
    import imageio_ffmpeg

    path = Path(path)
    frames_iter = iter(frames)
    try:
        first = np.asarray(next(frames_iter))
    except StopIteration:
        raise InputError("No frames to write.") from None
    height, width = first.shape[:2]
    out_w, out_h = width + width % 2, height + height % 2
    silent = path.with_name(f".{path.stem}.video.mp4") if audio_from else path
    writer = imageio_ffmpeg.write_frames(
        str(silent),
        (out_w, out_h),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        output_params=["-crf", str(crf), "-preset", "veryfast", "-movflags", "+faststart"],
        macro_block_size=1,
        ffmpeg_log_level="error",
    )
    writer.send(None)

    def pad(frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame, dtype=np.uint8)
        if frame.shape[:2] != (height, width):
            raise ValueError(f"frame size {frame.shape[:2]} differs from the first frame {(height, width)}")
        if (out_h, out_w) != (height, width):
            frame = np.pad(frame, ((0, out_h - height), (0, out_w - width), (0, 0)), mode="edge")
        return np.ascontiguousarray(frame[..., :3])

    n_written = 0
    try:
        writer.send(pad(first))
        n_written = 1
        for frame in frames_iter:
            writer.send(pad(frame))
            n_written += 1
    finally:
        writer.close()
    if audio_from:
        if _has_audio(Path(audio_from)):
            mux_audio(silent, audio_from, path, duration=n_written / fps)
            silent.unlink(missing_ok=True)
        else:
            os.replace(silent, path)
    return path


def mux_audio(
    video: str | os.PathLike, audio_source: str | os.PathLike, out: str | os.PathLike, *, duration: float | None = None
) -> Path:
    """Copy the video stream of ``video`` and the first audio stream of ``audio_source`` (AAC).

    The audio is cut at the video's duration (``-t``), never the other way round: ffmpeg's
    ``-shortest`` would drop the last video frames when the audio ends first.
    """
    if duration is None:
        info = probe_video(video, max_seconds=float("inf"))
        duration = info.n_frames / info.fps
    cmd = [
        ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
        "-i", str(video), "-i", str(audio_source),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "160k",
        "-t", f"{duration:.6f}", "-movflags", "+faststart", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not add the audio track: {proc.stderr.strip()[-400:]}")
    return Path(out)


def video_streams(path: str | os.PathLike) -> dict[str, str]:
    """Codec names of the first video and audio stream (for tests and diagnostics)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    found: dict[str, str] = {}
    for line in proc.stderr.splitlines():
        if "Stream #" in line:
            for kind in ("Video", "Audio"):
                marker = f"{kind}: "
                if marker in line and kind.lower() not in found:
                    found[kind.lower()] = line.split(marker, 1)[1].split()[0].rstrip(",")
    return found


# --------------------------------------------------------------------------- per-request work dirs


def outputs_root() -> Path:
    root = Path(os.environ.get("NOSTALGIA_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "nostalgia-outputs")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def scratch_dir(prefix: str = "job") -> Iterator[Path]:
    """A private temporary directory for one request's intermediate files, always removed."""
    path = Path(tempfile.mkdtemp(prefix=f"nostalgia-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_PRUNE_EVERY_S = 600.0
_last_prune = [0.0]


def prune_outputs(max_age_hours: float | None = None) -> int:
    """Remove per-request result folders (32-hex names) older than ``max_age_hours``
    (``NOSTALGIA_OUTPUT_TTL_HOURS``, default 24). Gradio serves its own copy of every returned
    file, so these are leftovers; examples and other named folders are kept. Returns the count."""
    hours = float(os.environ.get("NOSTALGIA_OUTPUT_TTL_HOURS") or 24) if max_age_hours is None else max_age_hours
    cutoff = time.time() - hours * 3600
    removed = 0
    for folder in outputs_root().iterdir():
        if len(folder.name) == 32 and all(c in "0123456789abcdef" for c in folder.name) and folder.is_dir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def new_output_path(suffix: str, prefix: str = "result") -> Path:
    """A fresh, unique path for a result file that the UI will serve (never shared by requests).
    Every few minutes, old result folders are pruned first (:func:`prune_outputs`)."""
    now = time.monotonic()
    if now - _last_prune[0] > _PRUNE_EVERY_S:
        _last_prune[0] = now
        prune_outputs()
    folder = outputs_root() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / f"{prefix}{suffix}"
