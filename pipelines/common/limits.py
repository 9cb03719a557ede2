"""Every user-facing limit in one place, overridable by environment variables.

The UI shows these values next to the inputs; media I/O and the pipelines enforce them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 50.0  # gradio max_file_size
    max_pixels: int = 24_000_000  # decoded image pixels (24 MP; larger is refused as a possible bomb)
    max_video_seconds: float = 60.0
    max_video_pixels: int = 1920 * 1080  # per frame

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_upload_mb=_env_float("NOSTALGIA_MAX_UPLOAD_MB", cls.max_upload_mb),
            max_pixels=int(_env_float("NOSTALGIA_MAX_PIXELS", cls.max_pixels)),
            max_video_seconds=_env_float("NOSTALGIA_MAX_VIDEO_SECONDS", cls.max_video_seconds),
            max_video_pixels=int(_env_float("NOSTALGIA_MAX_VIDEO_PIXELS", cls.max_video_pixels)),
        )

    def describe(self) -> str:
        return (
            f"Uploads up to {self.max_upload_mb:g} MB; images up to {self.max_pixels / 1e6:g} MP; "
            f"videos up to {self.max_video_seconds:g} s and {self.max_video_pixels / 1e6:.1f} MP per frame."
        )


LIMITS = Limits.from_env()
