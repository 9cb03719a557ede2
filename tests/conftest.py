"""Shared test fixtures: the reference folder, a private weights cache, the running app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from weights.parity.runner import reference_dir as _reference_dir

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` (or ``NOSTALGIA_REFERENCE_DIR``); tests that need it skip, with
    the reason, only when the folder is absent."""
    path = _reference_dir()
    if not path.is_dir():
        pytest.skip(f"reference cases not found at {path} (set NOSTALGIA_REFERENCE_DIR)")
    return path


@pytest.fixture()
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty, private weights cache for one test."""
    path = tmp_path / "weights"
    path.mkdir()
    monkeypatch.setenv("NOSTALGIA_WEIGHTS_DIR", str(path))
    yield path
