"""Image and video I/O for every pipeline and tab.

Images always come out as RGB ``uint8`` arrays (H, W, 3): EXIF orientation applied; grayscale,
palette, RGBA (composited on white), 16-bit and CMYK converted; decompression bombs and unreadable
files refused with a specific :class:`InputError`. Videos are read with imageio-ffmpeg and written
as H.264 yuv420p MP4 (even dimensions, browser-playable) at the source fps, with the source's audio
copied back when it has one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont, ImageOps, UnidentifiedImageError

from pipelines.common import disk
from pipelines.common.errors import InputError
from pipelines.common.limits import LIMITS, DiskBudgets

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


FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size`` px when installed (fonts-dejavu-core), else PIL's default font
    (captions of stories, numbers on face thumbnails)."""
    for path in FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    path = Path(path)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG")
    return path


# --------------------------------------------------------------------------- video


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _limit_output_size(max_bytes: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def run_tool(
    cmd: Sequence[str], *, what: str, timeout: float | None = None, max_output_mb: float | None = None
) -> subprocess.CompletedProcess:
    """Run an external tool (ffmpeg, espeak-ng) with an argument list (never a shell), a timeout
    (``NOSTALGIA_TOOL_TIMEOUT_S``) and a bound on the size of every file it writes
    (``NOSTALGIA_TOOL_OUTPUT_MB``, enforced by the kernel: RLIMIT_FSIZE). Past either bound the
    tool is killed and a specific :class:`InputError` says which; other failures are returned
    (``returncode``, ``stderr``) for the caller to explain."""
    seconds = LIMITS.tool_timeout_s if timeout is None else timeout
    limit_mb = LIMITS.tool_output_mb if max_output_mb is None else max_output_mb
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, errors="replace", timeout=seconds,
            preexec_fn=_limit_output_size(int(limit_mb * 1e6)),
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"{what} took longer than {seconds:g} s and was stopped; use a shorter or smaller file.") from exc
    if proc.returncode == -signal.SIGXFSZ:
        raise InputError(f"{what} would write more than {limit_mb:g} MB and was stopped; use a shorter or smaller file.")
    return proc


@dataclass(frozen=True)
class MediaHeader:
    """What a media file's container declares (ffmpeg's header read; nothing is decoded)."""

    duration: float  # seconds, 0 when unknown
    width: int = 0  # first video stream; 0 when there is none
    height: int = 0
    fps: float = 0.0
    video_codec: str = ""
    audio_codec: str = ""

    @property
    def has_video(self) -> bool:
        return bool(self.video_codec)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codec)


_RATE = re.compile(r"([\d.]+)(k?) (fps|tbr)")


def _rate(text: str, unit: str) -> float:
    for value, kilo, found in _RATE.findall(text):
        if found == unit:
            return float(value) * (1000.0 if kilo else 1.0)
    return 0.0


def probe_media(path: str | os.PathLike) -> MediaHeader:
    """Duration, first video stream (size, frame rate) and audio presence of any media file,
    from its header only: cheap and safe on any upload (one bounded ffmpeg run, no decoding)."""
    proc = run_tool([ffmpeg_exe(), "-hide_banner", "-i", str(path)], what="Reading the file's header", timeout=30)
    duration, width, height, fps, vcodec, acodec = 0.0, 0, 0, 0.0, "", ""
    for line in proc.stderr.splitlines():
        line = line.strip()
        if line.startswith("Duration:"):
            stamp = line.split(",", 1)[0].split(":", 1)[1].strip()
            with contextlib.suppress(ValueError):
                h, m, sec = stamp.split(":")
                duration = int(h) * 3600 + int(m) * 60 + float(sec)
        elif "Stream #" in line and "Video: " in line and not vcodec:
            vcodec = line.split("Video: ", 1)[1].split()[0].rstrip(",")
            size = re.search(r", (\d{1,6})x(\d{1,6})[ ,]", line)
            if size:
                width, height = int(size.group(1)), int(size.group(2))
            fps = _rate(line, "fps") or _rate(line, "tbr")
        elif "Stream #" in line and "Audio: " in line and not acodec:
            acodec = line.split("Audio: ", 1)[1].split()[0].rstrip(",")
    return MediaHeader(duration, width, height, fps, vcodec, acodec)


@dataclass
class VideoInfo:
    fps: float
    n_frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


def count_frames(path: str | os.PathLike) -> int:
    """Frames in the first video stream, counted from its packets (stream copy: nothing is decoded,
    a second even for tens of thousands of frames); 0 when they cannot be counted."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    proc = run_tool(cmd, what="Counting the video's frames", timeout=60)
    found = re.findall(r"frame=\s*(\d+)", proc.stderr)
    return int(found[-1]) if found and proc.returncode == 0 else 0


def probe_video(path: str | os.PathLike, *, max_seconds: float | None = None) -> VideoInfo:
    """Read a video's size, fps, frame count, duration and whether it has audio, and refuse it
    before any frame is decoded when it breaks a limit: duration, pixels per frame, frame rate,
    total frames (fps x duration) or decoded bytes (frames x width x height x 3). Each refusal
    names the limit and its value. The frame rate is the measured one (frames / duration) when
    the declared one disagrees (variable-rate recordings declare e.g. "1k tbr")."""
    path = Path(path)
    label = path.name
    if not path.exists() or path.stat().st_size == 0:
        raise InputError(f"{label}: the video file is empty or missing.")
    header = probe_media(path)
    if not header.has_video:
        if header.has_audio:
            raise InputError(f"{label}: the file has no video stream (only audio); upload a video.")
        raise InputError(f"{label}: not a readable video (no video stream found).")
    width, height = header.width, header.height
    if not width or not height:
        raise InputError(f"{label}: the video stream declares no frame size; it cannot be read.")
    if width * height > LIMITS.max_video_pixels:
        raise InputError(
            f"{label}: {width}x{height} frames exceed the limit of {LIMITS.max_video_pixels / 1e6:.1f} MP per frame. "
            "Downscale the video and try again."
        )
    limit = LIMITS.max_video_seconds if max_seconds is None else max_seconds
    if header.duration > limit + 1e-6:
        raise InputError(
            f"{label}: the video is {header.duration:.1f} s long; the limit is {limit:g} s. Trim it and try again."
        )
    n_frames = count_frames(path)
    if n_frames <= 0:
        raise InputError(f"{label}: the video has no frames.")
    fps = header.fps
    # The container's duration is the video's only without an audio track (a longer soundtrack
    # would make a 10 fps clip look like 1.7 fps): otherwise the declared rate stands.
    if header.duration > 0 and (fps <= 0 or not header.has_audio):
        measured = n_frames / header.duration
        if fps <= 0 or abs(measured - fps) > 0.05 * fps + 1.0:
            fps = measured
    if fps <= 0:
        raise InputError(f"{label}: the video declares no frame rate; re-encode it at a usual rate (e.g. 30 fps).")
    if fps > LIMITS.max_video_fps + 1e-6:
        raise InputError(
            f"{label}: {fps:g} frames per second is above the limit of {LIMITS.max_video_fps:g} fps. "
            "Re-encode it at a usual rate (e.g. 30 fps) and try again."
        )
    _check_frame_budget(label, n_frames, width, height)
    duration = header.duration or n_frames / fps
    if duration > limit + 1e-6:
        raise InputError(f"{label}: the video is {duration:.1f} s long; the limit is {limit:g} s. Trim it and try again.")
    return VideoInfo(fps, n_frames, int(width), int(height), duration, header.has_audio)


def _check_frame_budget(label: str, n_frames: int, width: int, height: int) -> None:
    if n_frames > LIMITS.max_video_frames:
        raise InputError(
            f"{label}: {n_frames} frames (frame rate x duration) exceed the limit of {LIMITS.max_video_frames} frames. "
            "Trim the video or lower its frame rate and try again."
        )
    decoded_mb = n_frames * width * height * 3 / 1e6
    if decoded_mb > LIMITS.max_decoded_mb:
        raise InputError(
            f"{label}: {n_frames} frames of {width}x{height} decode to {decoded_mb / 1000:.1f} GB, above the limit of "
            f"{LIMITS.max_decoded_mb / 1000:g} GB. Use a shorter or smaller video."
        )


def _has_audio(path: Path) -> bool:
    return probe_media(path).has_audio


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


def frames_in_first(seconds: float | None, fps: float) -> int | None:
    """How many frames the first ``seconds`` of a video at ``fps`` hold (at least 1); None for
    the whole clip (``seconds`` None or 0)."""
    if not seconds or seconds <= 0:
        return None
    return max(1, round(float(seconds) * fps))


def read_video(
    path: str | os.PathLike, *, max_seconds: float | None = None, first_seconds: float | None = None
) -> tuple[list[np.ndarray], VideoInfo]:
    """The frames (RGB uint8) and the video's info, after the limit checks, for the steps that
    need every frame at once (prefer :func:`iter_frames`); only the first ``first_seconds`` when
    given (decoding stops there). The decoded frames must also fit ``NOSTALGIA_MAX_IN_MEMORY_MB``.
    ``info.n_frames`` counts the frames returned; ``info.duration`` stays the whole clip's."""
    info = probe_video(path, max_seconds=max_seconds)
    limit = frames_in_first(first_seconds, info.fps)
    n_frames = min(info.n_frames, limit) if limit else info.n_frames
    needed_mb = n_frames * info.width * info.height * 3 / 1e6
    if needed_mb > LIMITS.max_in_memory_mb:
        raise InputError(
            f"{Path(path).name}: {n_frames} frames of {info.width}x{info.height} need {needed_mb:.3g} MB in memory "
            f"for this step; the limit is {LIMITS.max_in_memory_mb:g} MB. Use a shorter or smaller video."
        )
    frames = list(itertools.islice(iter_frames(path), limit))
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
    return write_videos(((frame,) for frame in frames), [path], fps, audio_from=audio_from, crf=crf)[0]


class _Encoder:
    """One H.264 encoder fed frame by frame (the first frame fixes the size)."""

    def __init__(self, target: Path, first: np.ndarray, fps: float, crf: int) -> None:
        import imageio_ffmpeg

        self.height, self.width = first.shape[:2]
        self.out_w, self.out_h = self.width + self.width % 2, self.height + self.height % 2
        self.writer = imageio_ffmpeg.write_frames(
            str(target),
            (self.out_w, self.out_h),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            output_params=["-crf", str(crf), "-preset", "veryfast", "-movflags", "+faststart", "-f", "mp4"],
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        self.writer.send(None)

    def send(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame, dtype=np.uint8)
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame size {frame.shape[:2]} differs from the first frame {(self.height, self.width)}")
        if (self.out_h, self.out_w) != (self.height, self.width):
            pads = ((0, self.out_h - self.height), (0, self.out_w - self.width), (0, 0))
            frame = np.pad(frame, pads, mode="edge")
        self.writer.send(np.ascontiguousarray(frame[..., :3]))

    def close(self) -> None:
        self.writer.close()


def write_videos(
    frames: Iterable[Sequence[np.ndarray]],
    paths: Sequence[str | os.PathLike],
    fps: float,
    *,
    audio_from: str | os.PathLike | None = None,
    crf: int = 18,
) -> list[Path]:
    """Several videos from one stream of frame tuples (one frame per video per step), so a
    result and its side-by-side view are written in one pass with one frame of each in memory.

    Each is written under a partial name and renamed when whole: a killed job leaves no half
    video that looks finished, and the start-up clean-up (:func:`disk.remove_partials`) deletes
    its leftovers."""
    finals = [Path(p) for p in paths]
    partials = [disk.partial_name(p) for p in finals]
    silents = [p.with_name(p.name + ".video.mp4") if audio_from else p for p in partials]
    frames_iter = iter(frames)
    try:
        first = [np.asarray(f) for f in next(frames_iter)]
    except StopIteration:
        raise InputError("No frames to write.") from None
    if len(first) != len(finals):
        raise ValueError(f"{len(first)} frames per step for {len(finals)} videos")
    encoders: list[_Encoder] = []
    n_written = 0
    try:
        try:
            encoders = [_Encoder(silent, frame, fps, crf) for silent, frame in zip(silents, first, strict=True)]
            for encoder, frame in zip(encoders, first, strict=True):
                encoder.send(frame)
            n_written = 1
            for step in frames_iter:
                for encoder, frame in zip(encoders, step, strict=True):
                    encoder.send(frame)
                n_written += 1
        finally:
            for encoder in encoders:
                encoder.close()
        with_audio = bool(audio_from) and _has_audio(Path(audio_from))  # type: ignore[arg-type]
        for silent, partial, final in zip(silents, partials, finals, strict=True):
            if with_audio:
                mux_audio(silent, audio_from, partial, duration=n_written / fps)  # type: ignore[arg-type]
            elif silent != partial:
                os.replace(silent, partial)
            os.replace(partial, final)
    finally:
        for leftover in (*silents, *partials):
            leftover.unlink(missing_ok=True)
    return finals


def write_lossless_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    """RGB uint8 frames as a lossless FFV1 MKV (any size): intermediate video that must decode to the
    exact frames written (e.g. chunks of a video colorized on several machines, stitched later)."""
    import imageio_ffmpeg

    path = Path(path)
    frames_iter = iter(frames)
    try:
        first = np.asarray(next(frames_iter), dtype=np.uint8)
    except StopIteration:
        raise InputError("No frames to write.") from None
    height, width = first.shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="ffv1", pix_fmt_in="rgb24", pix_fmt_out="bgr0", quality=None,
        macro_block_size=1, ffmpeg_log_level="error", output_params=["-level", "3"],
    )  # fmt: skip
    writer.send(None)
    try:
        writer.send(np.ascontiguousarray(first[..., :3]))
        for frame in frames_iter:
            writer.send(np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)[..., :3]))
    finally:
        writer.close()
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
        "-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip
    proc = run_tool(cmd, what="Adding the audio track")
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not add the audio track: {proc.stderr.strip()[-400:]}")
    return Path(out)


def video_streams(path: str | os.PathLike) -> dict[str, str]:
    """Codec names of the first video and audio stream (for tests and diagnostics)."""
    header = probe_media(path)
    return {k: v for k, v in (("video", header.video_codec), ("audio", header.audio_codec)) if v}


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


_last_prune = [0.0]


def _result_folder(path: Path) -> bool:
    return len(path.name) == 32 and all(c in "0123456789abcdef" for c in path.name) and path.is_dir()


def prune_outputs(max_age_hours: float | None = None, max_mb: float | None = None) -> int:
    """Remove per-request result folders (32-hex names) older than ``max_age_hours``
    (``NOSTALGIA_OUTPUT_TTL_HOURS``, default 24), then the oldest until they fit ``max_mb``
    (``NOSTALGIA_OUTPUT_BUDGET_MB``). Gradio serves its own copy of every returned file, so
    these are leftovers; examples and other named folders are kept. Returns the count."""
    budgets = DiskBudgets.from_env()
    hours = budgets.output_ttl_hours if max_age_hours is None else max_age_hours
    mb = budgets.output_budget_mb if max_mb is None else max_mb
    return disk.prune(outputs_root(), max_age_s=hours * 3600, max_bytes=mb * 1e6, candidates=_result_folder).removed


def clean_outputs_at_start() -> int:
    """At start-up, before any request: delete what killed jobs left (partial files, then result
    folders left empty). Returns the number of entries removed."""
    root = outputs_root()
    removed = disk.remove_partials(root)
    for folder in root.iterdir():
        if _result_folder(folder) and not any(folder.iterdir()):
            folder.rmdir()
            removed += 1
    return removed


@contextlib.contextmanager
def discard_on_failure(result: Path) -> Iterator[Path]:
    """Remove the result folder of ``result`` (from :func:`new_output_path`) when the block fails,
    so a refused or failed request leaves nothing behind."""
    try:
        yield result
    except BaseException:
        if _result_folder(result.parent) and result.parent.parent == outputs_root():
            shutil.rmtree(result.parent, ignore_errors=True)
        raise


def new_output_path(suffix: str, prefix: str = "result") -> Path:
    """A fresh, unique path for a result file that the UI will serve (never shared by requests).
    Every ``NOSTALGIA_PRUNE_EVERY_S``, result folders beyond their age and size budget are pruned
    first (:func:`prune_outputs`)."""
    now = time.monotonic()
    if now - _last_prune[0] > DiskBudgets.from_env().prune_every_s:
        _last_prune[0] = now
        prune_outputs()
    folder = outputs_root() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / f"{prefix}{suffix}"
