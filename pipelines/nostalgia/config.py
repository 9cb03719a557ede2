"""Options of the one-click chain and of the story, with every default in one place.

``auto`` choices are decided per photo by the pure tests in :mod:`pipelines.nostalgia.analysis`;
the UI, the CLI and the Python API all pass these dataclasses (or their fields as keywords).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pipelines.common.errors import InputError
from pipelines.common.precision import MODES
from pipelines.nostalgia.analysis import DEFAULT_COLOR_THRESHOLD, DEFAULT_SCRATCH_THRESHOLD

CHOICES = ("auto", "yes", "no")

#: Offline driving motions offered as presets (name -> description). The motion is generated on the
#: machine (:func:`pipelines.animation.examples.make_driving_clip`): nothing is downloaded.
DRIVING_PRESETS: dict[str, str] = {
    "nod": "Gentle nod, turn and lean (procedural, offline)",
}
DEFAULT_PRESET = "nod"
#: Allowed length of the driving motion in seconds (the preset's, or the start of an uploaded video).
MOTION_SECONDS_RANGE = (0.2, 30.0)


@dataclass(frozen=True)
class NostalgiaOptions:
    """What the one-click chain does. Each step can be switched off; ``auto`` decides per photo.

    ``scratches``/``colorize``: ``auto`` (detect), ``yes`` (always) or ``no`` (never).
    ``driving``: a driving video path (its first ``motion_seconds`` are used); None uses the offline
    preset ``preset``, ``motion_seconds`` long at ``motion_fps``. ``face_index`` is 0-based, largest face first; ``all_faces`` animates
    every detected face in one video. The chain works at most at ``max_side`` pixels (long side).
    ``precision``: ``auto``/``exact`` for every network of the chain (None: the current mode), see
    :mod:`pipelines.common.precision`.
    """

    restore: bool = True
    scratches: str = "auto"
    hr: bool = False
    enhance_faces: bool = True
    colorize: str = "auto"
    colorize_model: str = "artistic"
    render_factor: int = 35
    animate: bool = True
    driving: str | Path | None = None
    preset: str = DEFAULT_PRESET
    motion_seconds: float = 3.0
    motion_fps: float = 25.0
    face_index: int = 0
    all_faces: bool = False
    animation_model: str = "vox"
    animation_mode: str = "relative"
    max_side: int = 1280
    color_threshold: float = DEFAULT_COLOR_THRESHOLD
    scratch_threshold: float = DEFAULT_SCRATCH_THRESHOLD
    precision: str | None = None

    def validated(self) -> NostalgiaOptions:
        """Self, after checking every value a user can set (specific :class:`InputError` otherwise)."""
        for name in ("scratches", "colorize"):
            value = getattr(self, name)
            if value not in CHOICES:
                raise InputError(f"{name} must be one of {', '.join(CHOICES)}; got {value!r}.")
        if self.driving is None and self.preset not in DRIVING_PRESETS:
            raise InputError(f"Unknown driving preset {self.preset!r}; choose one of {', '.join(DRIVING_PRESETS)}.")
        low, high = MOTION_SECONDS_RANGE
        if not low <= float(self.motion_seconds) <= high:
            raise InputError(f"motion_seconds must be between {low:g} and {high:g}; got {self.motion_seconds}.")
        if not 1.0 <= float(self.motion_fps) <= 60.0:
            raise InputError(f"motion_fps must be between 1 and 60; got {self.motion_fps}.")
        if int(self.face_index) < 0:
            raise InputError(f"The face number must be 1 or more; got {int(self.face_index) + 1}.")
        if self.precision is not None and self.precision not in MODES:
            raise InputError(f"precision must be one of {', '.join(MODES)}; got {self.precision!r}.")
        if not 64 <= int(self.max_side) <= 4096:
            raise InputError(f"max_side must be between 64 and 4096 pixels; got {self.max_side}.")
        return self

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> NostalgiaOptions:
        """Options from keywords, refusing unknown names with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InputError(f"Unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**kwargs).validated()

    def but(self, **changes: Any) -> NostalgiaOptions:
        return replace(self, **changes)


VOICES = ("auto", "espeak", "neural", "recording")  # the narration sources StoryOptions.voice accepts


@dataclass(frozen=True)
class StoryOptions:
    """The narrated video: ``voice`` is ``auto`` (the recording if given, else a neural voice when its
    weights are present, else espeak-ng), ``espeak``, ``neural`` or ``recording``. ``language`` is an
    espeak-ng voice name; ``words_per_minute`` its speed. Captions are burnt in when ``captions``."""

    voice: str = "auto"
    language: str = "en"
    words_per_minute: int = 150
    captions: bool = True
    fps: float = 25.0
    zoom: float = 1.15  # Ken Burns zoom at the end of the pan when no face moves
    max_chars: int = 2000

    def validated(self) -> StoryOptions:
        if self.voice not in VOICES:
            raise InputError(f"Unknown voice {self.voice!r}; choose {', '.join(VOICES[:-1])} or {VOICES[-1]}.")
        if not 80 <= int(self.words_per_minute) <= 450:
            raise InputError(f"words_per_minute must be between 80 and 450; got {self.words_per_minute}.")
        if not 5.0 <= float(self.fps) <= 60.0:
            raise InputError(f"fps must be between 5 and 60; got {self.fps}.")
        if not 1.0 <= float(self.zoom) <= 2.0:
            raise InputError(f"zoom must be between 1 and 2; got {self.zoom}.")
        return self
