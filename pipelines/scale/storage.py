"""Where a batch job reads and writes: local folders or any fsspec URL, results published atomically,
and the JSONL manifest that makes a rerun resume.

Local paths are used in place (the CLI's functions read them directly); remote inputs are copied to a
worker's temporary folder first. A result appears under its final name only once it is complete: a
local file is renamed into place (``os.replace``), a remote one is uploaded under a temporary name and
then moved. The manifest is appended one JSON line per finished input (flushed and synced) by the
driver alone; a remote manifest is rewritten whole (temporary name, then moved) every few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

STAGING = ".nostalgia-staging"  # hidden folder under the output for work in progress (parts, temporary files)


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def normalise(location: str | os.PathLike) -> str:
    """Absolute path for local locations (stable manifest keys whatever the working directory), URLs as given."""
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://") :]
    return text.rstrip("/") if is_url(text) else os.path.abspath(text)


def filesystem(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(location)


def join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if is_url(folder) else os.path.join(folder, name)


def basename(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


def list_inputs(locations: Sequence[str | os.PathLike], extensions: set[str], recursive: bool) -> tuple[list[str], list[str]]:
    """(inputs, skipped files), as the CLI's ``collect_inputs`` but for URLs too: explicit files always
    count (missing ones are reported as failures later), folders give their files whose extension the
    command takes, sorted, hidden files ignored."""
    inputs: list[str] = []
    skipped: list[str] = []
    for location in map(normalise, locations):
        fs, path = filesystem(location)
        if fs.isdir(path):
            found = fs.find(path) if recursive else [p for p in fs.ls(path, detail=False) if fs.isfile(p)]
            for p in sorted(found):
                if basename(p).startswith(".") or f"/{STAGING}/" in f"{p}/":
                    continue
                full = p if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(p)
                (inputs if Path(p).suffix.lower() in extensions else skipped).append(full)
        else:
            inputs.append(location)
    return list(dict.fromkeys(inputs)), skipped


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.exists(path)


def listing(folder: str) -> set[str]:
    """Names of the files directly in ``folder`` (empty when it does not exist)."""
    fs, path = filesystem(folder)
    if not fs.isdir(path):
        return set()
    return {basename(p) for p in fs.ls(path, detail=False)}


def makedirs(location: str) -> None:
    fs, path = filesystem(location)
    fs.makedirs(path, exist_ok=True)


def remove(location: str) -> None:
    fs, path = filesystem(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@contextlib.contextmanager
def local_copy(location: str, workdir: Path) -> Iterator[Path]:
    """A local path with the contents of ``location`` (the file itself when it is local)."""
    if not is_url(location):
        yield Path(location)
        return
    fs, path = filesystem(location)
    target = workdir / basename(location)
    fs.get(path, str(target))
    try:
        yield target
    finally:
        target.unlink(missing_ok=True)


@contextlib.contextmanager
def staging_dir(output: str) -> Iterator[Path]:
    """A private folder for one unit's files: inside the output folder when it is local (so publishing is
    a rename on the same file system), else a local temporary folder. Always removed."""
    if is_url(output):
        path = Path(tempfile.mkdtemp(prefix="nostalgia-scale-"))
    else:
        path = Path(output) / STAGING / uuid.uuid4().hex
        path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(local_file: Path, folder: str, name: str | None = None) -> str:
    """Move a finished file to ``folder/name`` atomically; returns its final location."""
    final = join(folder, name or local_file.name)
    if not is_url(folder):
        os.makedirs(folder, exist_ok=True)
        os.replace(local_file, final)
        return final
    fs, path = filesystem(final)
    partial = f"{path}.part-{uuid.uuid4().hex[:8]}"
    fs.put_file(str(local_file), partial)
    fs.mv(partial, path)
    return final


# --------------------------------------------------------------------------- the manifest


class Manifest:
    """``<output>/<command>.manifest.jsonl``: one record per finished input; the last record of an input wins.

    Records: ``input``, ``output`` (list of result locations), ``status`` (``done`` or ``failed``),
    ``seconds``, ``error`` (None when done), ``attempts``, ``finished`` (UTC time). A truncated last line
    (the driver killed while writing) is ignored.
    """

    REWRITE_EVERY_S = 5.0

    def __init__(self, output: str, command: str):
        self.location = join(output, f"{command}.manifest.jsonl")
        self.remote = is_url(output)
        self._lines: list[str] = []
        self._last_rewrite = 0.0
        self._file = None

    def load(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        if not exists(self.location):
            return records
        fs, path = filesystem(self.location)
        with fs.open(path, "r", encoding="utf-8") as f:
            for line in f:
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if isinstance(record, dict) and "input" in record:
                        records[record["input"]] = record
                        self._lines.append(line.rstrip("\n"))
        return records

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({**record, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        if not self.remote:
            if self._file is None:
                self._file = open(self.location, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the job)
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            return
        self._lines.append(line)
        if time.monotonic() - self._last_rewrite > self.REWRITE_EVERY_S:
            self._rewrite()

    def _rewrite(self) -> None:
        fs, path = filesystem(self.location)
        partial = f"{path}.part-{uuid.uuid4().hex[:8]}"
        with fs.open(partial, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in self._lines))
        fs.mv(partial, path)
        self._last_rewrite = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self.remote and self._lines:
            self._rewrite()
