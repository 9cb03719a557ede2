"""Story mode: a photo and a short text become a narrated video (an open "Deep Story").

1. **Narration** first (cheap, and its length sets the video's): the user's own recording, or a
   neural voice (Piper) when its weights are in the weights cache under ``voices/``, or espeak-ng
   (Debian's ``espeak-ng`` package: offline, robotic but clear). Always converted to a WAV file; its
   duration is read from the WAV header.
2. **Picture**: the one-click chain (:mod:`pipelines.nostalgia.pipeline`) restores, colorizes and
   animates the photo. The animated faces loop forwards and backwards for the whole narration; when
   no face moves (animation off, or no face found) a slow pan and zoom (Ken Burns) moves the still
   towards the faces, or the centre.
3. **Captions**: the text, split into sentences of at most two lines, each shown for a share of the
   narration proportional to its length, burnt into the frames with PIL (DejaVu Sans when installed).
4. One H.264 + AAC MP4 whose video lasts as long as the narration.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipelines.common import disk, media
from pipelines.common.errors import InputError, ModelUnavailableError
from pipelines.common.limits import LIMITS
from pipelines.common.media import load_font
from pipelines.common.progress import ProgressFn
from pipelines.nostalgia.config import NostalgiaOptions, StoryOptions
from pipelines.nostalgia.motion import ping_pong
from pipelines.nostalgia.pipeline import NostalgiaPipeline, NostalgiaResult, Step

# --------------------------------------------------------------------------- narration


@dataclass
class Narration:
    wav: Path
    seconds: float
    voice: str  # "recording", "espeak-ng (en)", "neural (name)"


def wav_seconds(path: str | Path) -> float:
    """Duration of a PCM WAV file from its header (frames / rate)."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError, OSError) as exc:
        raise InputError(f"{Path(path).name}: not a readable WAV file ({exc}).") from exc


def recording_to_wav(source: str | Path, out: Path) -> Path:
    """Any audio file (WAV, MP3, M4A, OGG, WebM from the browser microphone...) -> 16-bit mono WAV.

    The recording's duration is read from its header first: a recording longer than
    ``NOSTALGIA_MAX_AUDIO_SECONDS`` is refused before anything is converted (a small file of
    hours of silence would otherwise expand to a WAV of a gigabyte); the conversion itself is cut
    at that length and bounded in time and output size."""
    source = Path(source)
    if not source.exists() or source.stat().st_size == 0:
        raise InputError(f"{source.name}: the recording is empty or missing; record or upload it again.")
    header = media.probe_media(source)
    if not header.has_audio:
        raise InputError(f"{source.name}: not a readable audio recording (WAV, MP3, M4A, OGG or WebM expected).")
    limit = min(LIMITS.max_audio_seconds, LIMITS.max_video_seconds)
    if header.duration > limit + 1e-6:
        raise InputError(
            f"{source.name}: the recording lasts {_clock(header.duration)}; recordings are limited to {limit:g} s. "
            "Trim it and try again."
        )
    partial = disk.partial_name(out)
    cmd = [media.ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-i", str(source), "-vn",
           "-t", f"{limit + 1:g}", "-ac", "1", "-ar", "44100", "-c:a", "pcm_s16le", "-f", "wav", str(partial)]  # fmt: skip
    try:
        proc = media.run_tool(cmd, what="Converting the recording")
        if proc.returncode != 0 or not partial.exists() or wav_seconds(partial) <= 0:
            raise InputError(f"{source.name}: not a readable audio recording (WAV, MP3, M4A, OGG or WebM expected).")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def _clock(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s" if minutes else f"{seconds:.1f} s"


def espeak_path() -> str | None:
    return shutil.which("espeak-ng")


def speak_espeak(text: str, out: Path, language: str = "en", words_per_minute: int = 150) -> Path:
    """Synthesise ``text`` with espeak-ng into a WAV file (offline)."""
    exe = espeak_path()
    if exe is None:
        raise ModelUnavailableError(
            "The offline voice espeak-ng is not installed: `apt-get install espeak-ng` (Debian/Ubuntu), "
            "or upload your own recording."
        )
    text_file = out.with_suffix(".txt")
    text_file.write_text(text, encoding="utf-8")
    cmd = [exe, "-v", language, "-s", str(int(words_per_minute)), "-f", str(text_file), "-w", str(out)]
    proc = media.run_tool(cmd, what="espeak-ng", timeout=min(120.0, LIMITS.tool_timeout_s))
    if proc.returncode != 0 or not out.exists():
        message = proc.stderr.strip() or "no audio written"
        raise InputError(f"espeak-ng could not speak this text with voice {language!r}: {message}")
    return out


def neural_voice() -> Path | None:
    """The Piper voice to narrate with (``*.onnx`` with its ``.onnx.json``) when the optional
    ``piper`` package (piper-tts, ``requirements-voice.txt``) is installed, else None: a registered
    voice in the weights cache (``python -m weights download voices/en_US-lessac-medium``) first,
    then any voice put by hand in ``<weights cache>/voices/``."""
    import importlib.util

    from weights import registry, store

    if importlib.util.find_spec("piper") is None:
        return None
    for ckpt in registry.all_checkpoints():
        if ckpt.family == "voices" and store.status(ckpt).state in ("verified", "present"):
            return store.checkpoint_path(ckpt)
    folder = store.cache_dir() / "voices"
    if not folder.is_dir():
        return None
    for model in sorted(folder.glob("*.onnx")):
        if model.with_suffix(".onnx.json").exists():
            return model
    return None


def speak_neural(text: str, out: Path, model: Path) -> Path:
    """Synthesise ``text`` with a Piper voice (piper-tts) into a WAV file."""
    from piper import PiperVoice  # type: ignore[import-not-found]

    voice = PiperVoice.load(str(model))
    with wave.open(str(out), "wb") as w:
        if hasattr(voice, "synthesize_wav"):  # piper-tts >= 1.3
            voice.synthesize_wav(text, w)
        else:
            voice.synthesize(text, w)
    return out


def narrate(text: str, recording: str | Path | None, options: StoryOptions, folder: Path) -> Narration:
    """The narration WAV: the recording when given (or ``voice="recording"``), else the chosen voice."""
    out = folder / "narration.wav"
    voice = options.voice
    if voice == "recording" or (voice == "auto" and recording):
        if not recording:
            raise InputError("Voice 'recording' was chosen but no recording was given; record or upload one.")
        recording_to_wav(recording, out)
        used = "your recording"
    else:
        if not text.strip():
            raise InputError("Write the story's text (or give a voice recording) first.")
        model = neural_voice() if voice in ("auto", "neural") else None
        if voice == "neural" and model is None:
            raise ModelUnavailableError(
                "No neural voice is installed: `pip install -r requirements-voice.txt` (piper-tts) and "
                "`python -m weights download voices/en_US-lessac-medium` (or put a Piper voice, .onnx and .onnx.json, "
                "in the weights cache under voices/); or choose the espeak voice."
            )
        if model is not None:
            speak_neural(text, out, model)
            used = f"neural voice {model.stem}"
        else:
            speak_espeak(text, out, options.language, options.words_per_minute)
            used = f"espeak-ng ({options.language})"
    seconds = wav_seconds(out)
    if seconds <= 0.05:
        raise InputError("The narration is silent or empty; write a longer text or record again.")
    if seconds > LIMITS.max_video_seconds + 1e-6:
        raise InputError(
            f"The narration lasts {seconds:.1f} s; stories are limited to {LIMITS.max_video_seconds:g} s. "
            "Shorten the text or the recording."
        )
    return Narration(out, seconds, used)


# --------------------------------------------------------------------------- captions


@dataclass(frozen=True)
class Caption:
    start: float
    end: float
    lines: tuple[str, ...]


def wrap(text: str, font: ImageFont.ImageFont, width: float) -> list[str]:
    """Greedy word wrap to ``width`` pixels (a word longer than the width gets a line of its own)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and font.getlength(trial) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines


def plan_captions(
    text: str, seconds: float, font: ImageFont.ImageFont, width: float, max_lines: int = 2
) -> list[Caption]:
    """Split ``text`` into captions of at most ``max_lines`` wrapped lines (sentence by sentence) and
    give each a share of ``seconds`` proportional to its characters (speech takes time per letter)."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?;:])\s+|\n+", text) if s.strip()]
    blocks: list[tuple[str, ...]] = []
    for sentence in sentences:
        lines = wrap(sentence, font, width)
        for i in range(0, len(lines), max_lines):
            blocks.append(tuple(lines[i : i + max_lines]))
    if not blocks:
        return []
    weights = np.array([sum(len(line) for line in b) + 2 for b in blocks], dtype=np.float64)
    edges = np.concatenate([[0.0], np.cumsum(weights) / weights.sum() * seconds])
    return [Caption(float(edges[i]), float(edges[i + 1]), b) for i, b in enumerate(blocks)]


def caption_at(captions: list[Caption], t: float) -> Caption | None:
    for caption in captions:
        if caption.start <= t < caption.end:
            return caption
    return captions[-1] if captions and t >= captions[-1].start else None


def draw_caption(frame: np.ndarray, caption: Caption, font: ImageFont.ImageFont) -> np.ndarray:
    """Burn ``caption`` into the bottom of ``frame``: white text on a translucent dark band."""
    image = Image.fromarray(frame).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    h, w = frame.shape[:2]
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (10, 3)
    line_h = int((ascent + descent) * 1.15)
    pad = max(4, line_h // 4)
    block_h = line_h * len(caption.lines) + 2 * pad
    top = h - block_h - max(4, h // 30)
    draw.rectangle([0, top, w, top + block_h], fill=(0, 0, 0, 150))
    for k, line in enumerate(caption.lines):
        x = (w - font.getlength(line)) / 2
        draw.text((x, top + pad + k * line_h), line, font=font, fill=(255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


# --------------------------------------------------------------------------- camera


def smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def ken_burns_window(
    t: float, size: tuple[int, int], zoom: float, focus: tuple[float, float]
) -> tuple[float, float, float, float]:
    """The crop window ``(left, top, right, bottom)`` at time ``t`` in [0, 1]: from the whole photo to
    a ``zoom``-times closer view centred towards ``focus`` (x, y), always inside the photo."""
    w, h = size
    s = smoothstep(t)
    z = 1.0 + (zoom - 1.0) * s
    cw, ch = w / z, h / z
    cx = w / 2 + (focus[0] - w / 2) * s
    cy = h / 2 + (focus[1] - h / 2) * s
    left = min(max(cx - cw / 2, 0.0), w - cw)
    top = min(max(cy - ch / 2, 0.0), h - ch)
    return left, top, left + cw, top + ch


def ken_burns_frame(photo: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    h, w = photo.shape[:2]
    return np.asarray(Image.fromarray(photo).resize((w, h), Image.BICUBIC, box=window))


# --------------------------------------------------------------------------- the story


@dataclass
class StoryResult:
    video: Path
    narration: Path
    narration_seconds: float
    n_frames: int
    fps: float
    voice: str
    camera: str  # "animated faces" or "pan and zoom"
    captions: list[Caption]
    chain: NostalgiaResult
    steps: list[Step] = field(default_factory=list)

    @property
    def video_seconds(self) -> float:
        return self.n_frames / self.fps

    @property
    def notes(self) -> str:
        head = (
            f"- **Narration**: {self.voice}, {self.narration_seconds:.2f} s\n"
            f"- **Picture**: {self.camera}, {self.n_frames} frames at {self.fps:g} fps\n"
            f"- **Captions**: {len(self.captions)}"
        )
        return head + "\n" + self.chain.notes


def story(
    image: media.ImageLike,
    text: str = "",
    recording: str | Path | None = None,
    *,
    options: NostalgiaOptions | None = None,
    story_options: StoryOptions | None = None,
    progress: ProgressFn | None = None,
) -> StoryResult:
    """Make the narrated video of ``image`` telling ``text`` (see the module docstring)."""
    report = progress or (lambda f, m="": None)
    sopts = (story_options or StoryOptions()).validated()
    opts = (options or NostalgiaOptions()).validated()
    text = (text or "").strip()
    if len(text) > sopts.max_chars:
        raise InputError(f"The text has {len(text)} characters; stories take at most {sopts.max_chars}.")
    start = time.perf_counter()
    video = media.new_output_path(".mp4", prefix="story")
    with media.discard_on_failure(video):
        return _story(image, text, recording, video, opts, sopts, report, start)


def _story(image: media.ImageLike, text: str, recording: str | Path | None, video: Path, opts: NostalgiaOptions,
           sopts: StoryOptions, report: ProgressFn, start: float) -> StoryResult:  # fmt: skip
    work_dir = video.parent
    report(0.0, "Narration: speaking the text" if not recording else "Narration: reading the recording")
    narration = narrate(text, recording, sopts, work_dir)
    step_narration = Step(
        "Narration", True, f"{narration.voice}, {narration.seconds:.2f} s", time.perf_counter() - start
    )

    def chain_progress(f: float, m: str = "") -> None:
        report(0.05 + 0.8 * f, m)

    chain = NostalgiaPipeline(opts)(image, opts, write_video=False, allow_no_face=True, progress=chain_progress)
    photo = chain.image
    h, w = photo.shape[:2]
    fps = float(sopts.fps)
    n_frames = max(1, math.ceil(narration.seconds * fps - 1e-6))
    font = load_font(max(14, round(min(h, w * 0.75) / 16)))
    captions = plan_captions(text, narration.seconds, font, w * 0.9) if sopts.captions and text else []

    motion = chain.motion
    if motion is not None and len(motion):
        camera = "animated faces"

        def picture(i: int) -> np.ndarray:
            # the driving motion plays at its own fps, looped forwards and backwards
            return motion.frame(ping_pong(int(i / fps * motion.fps), len(motion)))
    else:
        camera = "pan and zoom"
        boxes = chain.face_boxes
        focus = (float(boxes[:, [0, 2]].mean()), float(boxes[:, [1, 3]].mean())) if len(boxes) else (w / 2, h / 2)

        def picture(i: int) -> np.ndarray:
            t = i / max(1, n_frames - 1)
            return ken_burns_frame(photo, ken_burns_window(t, (w, h), sopts.zoom, focus))

    def frames() -> Iterator[np.ndarray]:
        for i in range(n_frames):
            if i % 10 == 0:
                report(0.85 + 0.14 * i / n_frames, f"Rendering the video: frame {i + 1}/{n_frames}")
            frame = picture(i)
            caption = caption_at(captions, i / fps)
            yield draw_caption(frame, caption, font) if caption is not None else frame

    media.write_video(frames(), video, fps, audio_from=narration.wav)
    report(1.0, "Done")
    return StoryResult(video, narration.wav, narration.seconds, n_frames, fps, narration.voice, camera, captions,
                       chain, [step_narration, *chain.steps])  # fmt: skip
