"""Atomic array files of a target folder (npz): written then renamed, so a reader (a transfer
loading poses) never sees half a file. JSON state goes through
:func:`pipelines.common.disk.write_json` / :func:`~pipelines.common.disk.read_json`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def save_npz(path: Path, *, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Arrays to ``path`` (an ``.npz``) through a temporary file and a rename."""
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)
