"""Bounded disk: folders pruned by age and by a total-size budget, partial files cleaned up.

One way to bound every folder the app writes to (per-request results, Gradio's upload cache,
Dance targets, other job folders): :func:`prune` removes the entries of a folder that are older
than a time-to-live, then the oldest ones until the rest fits a byte budget. Partial results are
written under :func:`partial_name` (a hidden ``.partial-`` name) and renamed when complete;
:func:`remove_partials` deletes the leftovers of a killed process at start-up. Small JSON state
files (job status, owners, configs) go through :func:`write_json` / :func:`read_json` the same way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("nostalgia.disk")

PARTIAL_PREFIX = ".partial-"


def tree_bytes(path: Path) -> int:
    """Bytes used by a file or a folder (links are not followed)."""
    try:
        if path.is_symlink() or path.is_file():
            return path.lstat().st_size
    except OSError:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def last_used(path: Path) -> float:
    """Newest modification time of an entry (a folder: itself or anything directly in it)."""
    try:
        newest = path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                try:
                    newest = max(newest, child.lstat().st_mtime)
                except OSError:
                    continue
        return newest
    except OSError:
        return 0.0


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@dataclass
class PruneReport:
    removed: int = 0
    freed_bytes: int = 0
    kept_bytes: int = 0


def prune(
    root: Path,
    *,
    max_age_s: float | None,
    max_bytes: float | None,
    candidates: Callable[[Path], bool] = lambda _p: True,
    protect: Iterable[str] = (),
    age_of: Callable[[Path], float] = last_used,
) -> PruneReport:
    """Remove the entries of ``root`` accepted by ``candidates`` (and not named in ``protect``)
    that are older than ``max_age_s``, then the oldest remaining ones until all candidates
    (protected ones included) use at most ``max_bytes``. Returns what was removed and kept."""
    report = PruneReport()
    if not root.is_dir():
        return report
    keep = set(protect)
    now = time.time()
    entries: list[tuple[float, int, Path]] = []
    protected_bytes = 0
    for entry in root.iterdir():
        if not candidates(entry):
            continue
        if entry.name in keep:
            protected_bytes += tree_bytes(entry)  # counts towards the budget, never removed
            continue
        entries.append((age_of(entry), tree_bytes(entry), entry))
    entries.sort(key=lambda e: e[0])  # oldest first
    total = protected_bytes + sum(size for _, size, _ in entries)
    for used, size, entry in entries:
        too_old = max_age_s is not None and now - used > max_age_s
        too_big = max_bytes is not None and total > max_bytes
        if not (too_old or too_big):
            continue
        remove(entry)
        total -= size
        report.removed += 1
        report.freed_bytes += size
    report.kept_bytes = total
    if report.removed:
        log.info("pruned %d entries (%.1f MB) from %s", report.removed, report.freed_bytes / 1e6, root)
    return report


def partial_name(final: Path) -> Path:
    """Where to write ``final`` until it is complete (then ``os.replace`` it into place)."""
    return final.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{final.name}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON object atomically: into a partial file of this process and thread, then
    renamed into place, so a reader (the UI polling a job's status, another process) never sees
    half a file. Numpy scalars are written as numbers. The folder must exist: a job that writes
    late never re-creates a folder that was deleted."""
    tmp = path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        tmp.write_text(json.dumps(data, indent=1, default=float))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> dict[str, Any]:
    """The file's JSON object, or ``{}`` when it is missing, unreadable or not an object (a job not
    started yet)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remove_partials(root: Path, *, max_depth: int = 3) -> int:
    """Delete every ``.partial-*`` file or folder under ``root`` (a killed job's leftovers).
    Called at start-up, before any job runs, so nothing in use is touched."""
    if not root.is_dir():
        return 0
    removed = 0
    base_depth = len(root.parts)
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).parts) - base_depth
        for name in [*files, *dirs]:
            if name.startswith(PARTIAL_PREFIX):
                remove(Path(folder) / name)
                removed += 1
        dirs[:] = [d for d in dirs if not d.startswith(PARTIAL_PREFIX)] if depth < max_depth else []
    return removed
