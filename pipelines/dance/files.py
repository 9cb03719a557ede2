"""Atomic files of a target folder (JSON state, npz arrays): written then renamed, so a reader
(the UI polling a job's status, a transfer loading poses) never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename, so a reader (the UI polling status) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """The file's object, or ``{}`` when it is missing or unreadable (a job not started yet)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def save_npz(path: Path, *, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Arrays to ``path`` (an ``.npz``) through a temporary file and a rename."""
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)
