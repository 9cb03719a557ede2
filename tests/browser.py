"""Headless Chromium (Debian's) driven by Playwright, for the browser end-to-end tests.

``playwright install`` cannot download browsers here, so the system Chromium is launched by its
path, headless, without sandbox and without background networking (the machine has no network).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def screenshot_dir() -> Path:
    path = Path(os.environ.get("NOSTALGIA_SCREENSHOT_DIR") or Path(__file__).resolve().parent / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
