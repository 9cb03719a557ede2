"""Every user-facing limit in one place, overridable by environment variables, and the public mode.

The UI shows these values next to the inputs; media I/O, the job scheduler and the pipelines
enforce them. docs/SECURITY.md lists each one with its variable.

**Public mode** (:func:`public_mode`) is on when the app runs on a Hugging Face Space
(``SPACE_ID`` set), when it listens beyond the loopback interface or shares a public link, or
with ``NOSTALGIA_PUBLIC=1`` (``NOSTALGIA_PUBLIC=0`` forces it off). It makes every visitor see
only their own jobs and turns off server-side downloads; a local single user keeps the
conveniences (every target listed, downloads from the Models tab).
"""

from __future__ import annotations

import ipaddress
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
    max_video_fps: float = 120.0  # frame rates above this are refused (a 1000 fps file is a frame bomb)
    max_video_frames: int = 3600  # fps x duration: 60 s at 60 fps
    max_decoded_mb: float = 6144.0  # frames x width x height x 3 bytes, the work a video asks for
    max_in_memory_mb: float = 1024.0  # the same, for the few steps that hold every frame at once
    max_audio_seconds: float = 60.0  # recordings (Story narration), probed before any conversion
    tool_timeout_s: float = 600.0  # every ffmpeg / espeak-ng subprocess
    tool_output_mb: float = 2048.0  # the largest file one ffmpeg / espeak-ng run may write

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_upload_mb=_env_float("NOSTALGIA_MAX_UPLOAD_MB", cls.max_upload_mb),
            max_pixels=int(_env_float("NOSTALGIA_MAX_PIXELS", cls.max_pixels)),
            max_video_seconds=_env_float("NOSTALGIA_MAX_VIDEO_SECONDS", cls.max_video_seconds),
            max_video_pixels=int(_env_float("NOSTALGIA_MAX_VIDEO_PIXELS", cls.max_video_pixels)),
            max_video_fps=_env_float("NOSTALGIA_MAX_VIDEO_FPS", cls.max_video_fps),
            max_video_frames=int(_env_float("NOSTALGIA_MAX_VIDEO_FRAMES", cls.max_video_frames)),
            max_decoded_mb=_env_float("NOSTALGIA_MAX_DECODED_MB", cls.max_decoded_mb),
            max_in_memory_mb=_env_float("NOSTALGIA_MAX_IN_MEMORY_MB", cls.max_in_memory_mb),
            max_audio_seconds=_env_float("NOSTALGIA_MAX_AUDIO_SECONDS", cls.max_audio_seconds),
            tool_timeout_s=_env_float("NOSTALGIA_TOOL_TIMEOUT_S", cls.tool_timeout_s),
            tool_output_mb=_env_float("NOSTALGIA_TOOL_OUTPUT_MB", cls.tool_output_mb),
        )

    def describe(self) -> str:
        return (
            f"Uploads up to {self.max_upload_mb:g} MB; images up to {self.max_pixels / 1e6:g} MP; "
            f"videos up to {self.max_video_seconds:g} s, {self.max_video_fps:g} fps, {self.max_video_frames} frames "
            f"and {self.max_video_pixels / 1e6:.1f} MP per frame; recordings up to {self.max_audio_seconds:g} s."
        )


LIMITS = Limits.from_env()


@dataclass(frozen=True)
class DiskBudgets:
    """How long and how much the app keeps on disk; each folder is pruned oldest first."""

    output_ttl_hours: float = 24.0  # per-request result folders
    output_budget_mb: float = 2048.0
    upload_ttl_hours: float = 6.0  # Gradio's upload/cache folder
    upload_budget_mb: float = 2048.0
    prune_every_s: float = 60.0

    @classmethod
    def from_env(cls) -> DiskBudgets:
        return cls(
            output_ttl_hours=_env_float("NOSTALGIA_OUTPUT_TTL_HOURS", cls.output_ttl_hours),
            output_budget_mb=_env_float("NOSTALGIA_OUTPUT_BUDGET_MB", cls.output_budget_mb),
            upload_ttl_hours=_env_float("NOSTALGIA_UPLOAD_TTL_HOURS", cls.upload_ttl_hours),
            upload_budget_mb=_env_float("NOSTALGIA_UPLOAD_BUDGET_MB", cls.upload_budget_mb),
            prune_every_s=_env_float("NOSTALGIA_PRUNE_EVERY_S", cls.prune_every_s),
        )


# --------------------------------------------------------------------------- public mode

_served: dict[str, object] = {"host": "127.0.0.1", "share": False}


def set_served_address(host: str, *, share: bool = False) -> None:
    """Called by the app before it listens, so :func:`public_mode` knows who can reach it."""
    _served.update(host=host, share=share)


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_mode() -> bool:
    """Anonymous visitors may reach this server (see the module docstring)."""
    flag = os.environ.get("NOSTALGIA_PUBLIC", "").strip()
    if flag in ("0", "1"):
        return flag == "1"
    if os.environ.get("SPACE_ID"):
        return True
    return bool(_served["share"]) or not _loopback(str(_served["host"]))
