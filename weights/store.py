"""The weights cache: where files live, their status, download, verification and loading.

Layout: ``<cache>/<checkpoint id>/<published file name>`` holds the file as published (or a
fixture file in the same layout, marked by ``<file>.fixture.json``), and, for downloaded files,
``<file>.<component>.safetensors`` the state dicts converted at download time, so later loads
never unpickle anything. Loading never writes to the cache (it may be read-only): a file without
conversions (a fixture, a file put in place by hand) is checked and converted in memory. The
cache is ``NOSTALGIA_WEIGHTS_DIR`` or ``weights/cache``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from weights import registry
from weights.registry import Checkpoint, Component

log = logging.getLogger("nostalgia.weights")

ByteProgressFn = Callable[[int, int | None, str], None]  # (bytes done, total or None, message)
_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A checkpoint is missing, corrupt or of the wrong layout; the message says what to do."""


class WeightsMissingError(WeightsError):
    pass


def cache_dir() -> Path:
    env = os.environ.get("NOSTALGIA_WEIGHTS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent / "cache"


def checkpoint_dir(ckpt: Checkpoint) -> Path:
    return cache_dir() / ckpt.id


def checkpoint_path(ckpt: Checkpoint) -> Path:
    return checkpoint_dir(ckpt) / ckpt.filename


def _fixture_marker(path: Path) -> Path:
    return path.with_name(path.name + ".fixture.json")


def _converted_path(path: Path, component: str) -> Path:
    return path.with_name(f"{path.name}.{component}.safetensors")


def sha256_of(path: Path, progress: ByteProgressFn | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total, f"hashing {path.name}")
    return digest.hexdigest()


def _without_it(ckpt: Checkpoint) -> str:
    """The last line of the instructions: how to go on without the real file."""
    if ckpt.no_fixture:
        return f"No fixture exists for it: {ckpt.no_fixture}."
    return f"To try the app without real weights: `python -m weights fixture {ckpt.id}` (outputs are not real)."


def manual_instructions(ckpt: Checkpoint) -> str:
    if ckpt.is_folder:
        source = ckpt.sources[0]
        listing = "\n".join(f"  - {source.file_url(f.path)} -> {checkpoint_dir(ckpt) / f.local_path}" for f in ckpt.files)
        return (
            f"Model {ckpt.id} ({source.hf_repo} at revision {source.revision}) is not in the weights cache.\n"
            f"Download it with `python -m weights download {ckpt.id}`, or fetch these files by hand:\n{listing}\n"
            + _without_it(ckpt)
        )
    urls = "\n".join(
        f"  - {s.resolved_url}" + (f" (file {s.member} inside the archive)" if s.member else "") for s in ckpt.sources
    )
    sha = f"\nExpected sha256: {ckpt.sha256}" if ckpt.sha256 else ""
    if not ckpt.sha256 and ckpt.sha256_prefix:
        sha = f"\nIts sha256 starts with {ckpt.sha256_prefix} (the hash prefix in its name)"
    return (
        f"Checkpoint {ckpt.id} ({ckpt.filename}) is not in the weights cache.\n"
        f"Download it with `python -m weights download {ckpt.id}`, or fetch it by hand from:\n{urls or '  (no public source known)'}\n"
        f"and put it at: {checkpoint_path(ckpt)}{sha}\n"
        + _without_it(ckpt)
    )


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Status:
    state: str  # "verified" | "present" | "fixture" | "missing" | "corrupt"
    detail: str = ""


def fixture_info(ckpt: Checkpoint) -> dict[str, Any] | None:
    marker = _fixture_marker(checkpoint_path(ckpt))
    if not marker.exists():
        return None
    return json.loads(marker.read_text())


def status(ckpt: Checkpoint, *, hash_file: bool = False) -> Status:
    """Cheap by default (no hashing); ``hash_file=True`` checks the sha256 too."""
    path = checkpoint_path(ckpt)
    if not path.exists():
        return Status("missing", str(path))
    info = fixture_info(ckpt)
    if info is not None:
        return Status("fixture", f"salt {info.get('salt')!r}")
    if ckpt.is_folder:
        return _folder_status(ckpt, hash_file=hash_file)
    if ckpt.size is not None and path.stat().st_size != ckpt.size:
        return Status("corrupt", f"size {path.stat().st_size} != expected {ckpt.size}")
    if hash_file and ckpt.sha256:
        got = sha256_of(path)
        if got != ckpt.sha256:
            return Status("corrupt", f"sha256 {got} != expected {ckpt.sha256}")
        return Status("verified")
    verified_marker = path.with_name(path.name + ".sha256")
    if ckpt.sha256 and verified_marker.exists() and verified_marker.read_text().strip() == ckpt.sha256:
        return Status("verified")
    return Status("present", "sha256 not checked yet" if ckpt.sha256 else "no published sha256 to check against")


def _folder_status(ckpt: Checkpoint, *, hash_file: bool, progress: ByteProgressFn | None = None) -> Status:
    """A folder model: every file present with its published size (and sha256 when asked)."""
    folder = checkpoint_dir(ckpt)
    missing = [f.local_path for f in ckpt.files if not (folder / f.local_path).exists()]
    if missing:
        return Status("missing", f"{len(missing)} of {len(ckpt.files)} files missing ({', '.join(missing[:3])})")
    for f in ckpt.files:
        local = folder / f.local_path
        if f.size is not None and local.stat().st_size != f.size:
            return Status("corrupt", f"{f.local_path}: size {local.stat().st_size} != expected {f.size}")
    checked = [f for f in ckpt.files if f.sha256]
    if hash_file:
        for f in checked:
            local = folder / f.local_path
            got = sha256_of(local, progress)
            if got != f.sha256:
                return Status("corrupt", f"{f.local_path}: sha256 {got} != expected {f.sha256}")
            local.with_name(local.name + ".sha256").write_text(got + "\n")
    if not checked:
        return Status("present", "no published sha256 to check against (sizes checked)")
    marks = [(folder / f.local_path).with_name(Path(f.local_path).name + ".sha256") for f in checked]
    if all(m.exists() and m.read_text().strip() == f.sha256 for m, f in zip(marks, checked, strict=True)):
        return Status("verified")
    return Status("present", "sha256 not checked yet")


def verify(ckpt: Checkpoint, progress: ByteProgressFn | None = None) -> Status:
    """Hash the file; a mismatch is reported (and the file refused when loading)."""
    path = checkpoint_path(ckpt)
    st = status(ckpt)
    if st.state in ("missing", "fixture"):
        return st
    if ckpt.is_folder:
        return _folder_status(ckpt, hash_file=True, progress=progress)
    if ckpt.size is not None and path.stat().st_size != ckpt.size:
        return Status("corrupt", f"size {path.stat().st_size} != expected {ckpt.size}")
    got = sha256_of(path, progress)
    if ckpt.sha256 is None and ckpt.sha256_prefix:
        if not got.startswith(ckpt.sha256_prefix):
            return Status("corrupt", f"sha256 {got} does not start with {ckpt.sha256_prefix}, the hash prefix in its file name")
        return Status("present", f"sha256 {got} starts with {ckpt.sha256_prefix}, the prefix in its file name (no full hash published)")
    if ckpt.sha256 is None:
        return Status("present", f"sha256 {got} (none published to compare)")
    if got != ckpt.sha256:
        return Status("corrupt", f"sha256 {got} != expected {ckpt.sha256}")
    with contextlib.suppress(OSError):  # a read-only cache: verified now, not remembered
        path.with_name(path.name + ".sha256").write_text(got + "\n")
    return Status("verified")


# --------------------------------------------------------------------------- download


def _fetch_url(url: str, dest: Path, progress: ByteProgressFn | None, timeout: float) -> None:
    """Stream ``url`` to ``dest``, resuming a partial ``dest`` with an HTTP Range request."""
    done = dest.stat().st_size if dest.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "nostalgia-studio"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = done and response.status == 206
        if not resumed:
            done = 0
        length = response.headers.get("Content-Length")
        total = (int(length) + done) if length is not None else None
        with open(dest, "ab" if resumed else "wb") as fh:
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total, f"downloading {dest.name}")
    if total is not None and done != total:
        raise OSError(f"connection closed after {done} of {total} bytes")


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        match = [n for n in names if n == member or n.endswith("/" + member)]
        if not match:
            raise OSError(f"{member} not found inside {archive.name}")
        with zf.open(match[0]) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)


def _check_download(file: Path, size: int | None, sha256: str | None, progress: ByteProgressFn | None, *,
                    prefix: str | None = None, fetched: tuple[Path, ...] = ()) -> str | None:  # fmt: skip
    """Refuse (``OSError``) a fetched ``file`` whose size or sha256 is not the published one (or
    whose sha256 does not start with ``prefix``, the hash a file name carries); on a hash mismatch
    ``file`` and the ``fetched`` files it came from are deleted, so a retry starts afresh. Returns
    the sha256 computed (None when nothing was published to compare it with)."""
    if size is not None and file.stat().st_size != size:
        raise OSError(f"size {file.stat().st_size} != expected {size}")
    if not (sha256 or prefix):
        return None
    got = sha256_of(file, progress)
    if got != sha256 if sha256 else not got.startswith(prefix or ""):
        for bad in {file, *fetched}:
            bad.unlink(missing_ok=True)
        expected = sha256 or f"{prefix}… (the prefix in the file name)"
        raise OSError(f"sha256 {got} != expected {expected}")
    return got


def download(
    ckpt: Checkpoint, progress: ByteProgressFn | None = None, *, timeout: float = 30.0, force: bool = False
) -> Path:
    """Fetch a checkpoint into the cache: try each source in turn, resume partial downloads,
    check size and sha256, and move the file into place atomically. Raises
    :class:`WeightsMissingError` naming the file, every URL tried and where to put it by hand."""
    if ckpt.is_folder:
        return _download_folder(ckpt, progress, timeout=timeout, force=force)
    path = checkpoint_path(ckpt)
    if path.exists() and not force and fixture_info(ckpt) is None and status(ckpt).state != "corrupt":
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for source in ckpt.sources:
        url = source.resolved_url
        partial_name = Path(url.split("?")[0]).name if source.is_archive else ckpt.filename
        partial = path.parent / f".{partial_name}.part"
        try:
            _fetch_url(url, partial, progress, timeout)
            if source.is_archive:
                extracted = path.parent / f".{ckpt.filename}.extract"
                _extract_member(partial, source.member, extracted)
                candidate = extracted
            else:
                candidate = partial
            _check_download(candidate, ckpt.size, ckpt.sha256, progress, prefix=ckpt.sha256_prefix,
                            fetched=(partial,))  # fmt: skip
            os.replace(candidate, path)  # atomic: a reader sees the old state or the whole file
            _fixture_marker(path).unlink(missing_ok=True)
            for stale in [
                *path.parent.glob(f"{ckpt.filename}.*.safetensors"),
                *path.parent.glob(f"{ckpt.filename}.*.absent"),
            ]:
                stale.unlink()
            if ckpt.sha256:
                path.with_name(path.name + ".sha256").write_text(ckpt.sha256 + "\n")
            if candidate != partial:
                partial.unlink(missing_ok=True)
            try:  # at download time: later loads never unpickle, and never write to the cache
                convert(ckpt)
            except WeightsError as exc:  # the bytes are the published ones; loading will say why it cannot
                log.warning("%s: downloaded but not converted: %s", ckpt.id, exc)
            return path
        except (urllib.error.URLError, OSError, zipfile.BadZipFile, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            errors.append(f"  - {url}: {reason}")
    tried = "\n".join(errors) or "  (no source registered)"
    raise WeightsMissingError(
        f"Could not download {ckpt.id} ({ckpt.filename}). Tried:\n{tried}\n"
        f"If this machine is offline, fetch the file elsewhere and put it at: {path}"
        + (f"\nExpected sha256: {ckpt.sha256}" if ckpt.sha256 else "")
    )


def _download_folder(ckpt: Checkpoint, progress: ByteProgressFn | None, *, timeout: float, force: bool) -> Path:
    """Fetch every file of a folder model (each checked, resumed and moved into place like a
    single checkpoint); the marker file (``filename``) is written last, so a half-fetched folder
    never looks present. A fixture folder is replaced whole."""
    folder = checkpoint_dir(ckpt)
    if fixture_info(ckpt) is not None:
        shutil.rmtree(folder)
    source = ckpt.sources[0]
    errors: list[str] = []
    ordered = sorted(ckpt.files, key=lambda f: f.local_path == ckpt.filename)
    for f in ordered:
        dest = folder / f.local_path
        if dest.exists() and not force and (f.size is None or dest.stat().st_size == f.size):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.part")
        url = source.file_url(f.path)
        try:
            _fetch_url(url, partial, progress, timeout)
            got = _check_download(partial, f.size, f.sha256, progress)
            if got:
                dest.with_name(dest.name + ".sha256").write_text(got + "\n")
            os.replace(partial, dest)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"  - {url}: {getattr(exc, 'reason', exc)}")
            break  # offline or refused: the next files would fail the same way
    if errors:
        raise WeightsMissingError(
            f"Could not download {ckpt.id} ({source.hf_repo} at {source.revision}). Tried:\n" + "\n".join(errors)
            + f"\nIf this machine is offline, fetch the files elsewhere:\n{manual_instructions(ckpt)}"
        )
    return checkpoint_path(ckpt)


def model_dir(checkpoint_id: str) -> Path:
    """The cache folder of a folder model, ready for a library's ``from_pretrained`` (the real
    files, or a fixture written by ``python -m weights fixture``); raises
    :class:`WeightsMissingError` with the download instructions when it is incomplete."""
    ckpt = registry.get(checkpoint_id)
    st = status(ckpt)
    if st.state == "missing":
        raise WeightsMissingError(manual_instructions(ckpt))
    if st.state == "corrupt":
        raise WeightsError(f"{ckpt.id}: {st.detail}; refused. Download it again with `python -m weights download {ckpt.id} --force`.")
    return checkpoint_dir(ckpt)


# --------------------------------------------------------------------------- fixture files


def write_fixture(ckpt: Checkpoint, salt: str = "fixture", gain: float = 1.0) -> Path:
    """Write a checkpoint in the published nesting, filled by the reference fixture formula.

    Each component gets the salt ``salt`` with ``{component}`` replaced by its name (so
    ``ref-v1/pipeline/{component}`` reproduces the salts of multi-network reference cases).
    """
    from weights.fixture import fixture_like

    if ckpt.no_fixture:
        raise WeightsError(f"{ckpt.id}: no fixture: {ckpt.no_fixture}")
    path = checkpoint_path(ckpt)
    if ckpt.fixture_writer:
        if checkpoint_dir(ckpt).exists():
            shutil.rmtree(checkpoint_dir(ckpt))
        registry.resolve(ckpt.fixture_writer)(checkpoint_dir(ckpt), salt)
        _fixture_marker(path).write_text(json.dumps({"salt": salt, "gain": gain, "formula": "random-init", "sha256": sha256_of(path)}))
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    obj: dict[str, Any] = {}
    for comp in ckpt.components:
        module = registry.build_module(comp)
        sd = fixture_like(module, salt.replace("{component}", comp.name), gain)
        sd = _to_file_keys(comp, sd)
        if not comp.path:
            obj = sd  # the file *is* the state dict
            break
        node = obj
        for key in comp.path[:-1]:
            node = node.setdefault(key, {})
        node[comp.path[-1]] = sd
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    for stale in [*path.parent.glob(f"{ckpt.filename}.*.safetensors"), *path.parent.glob(f"{ckpt.filename}.*.absent")]:
        stale.unlink()
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    _fixture_marker(path).write_text(json.dumps({"salt": salt, "gain": gain, "formula": 1, "sha256": sha256_of(path)}))
    return path


# --------------------------------------------------------------------------- loading


def _key_mappers(comp: Component) -> tuple[Callable[[str], str], Callable[[str], str]]:
    if not comp.key_map:
        return (lambda k: k), (lambda k: k)
    to_model, to_file = registry.resolve(comp.key_map)()
    return to_model, to_file


def _to_file_keys(comp: Component, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    _, to_file = _key_mappers(comp)
    return {to_file(k): v for k, v in sd.items()}


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            raise KeyError(key)
        obj = obj[key]
    return obj


def _unpickle(path: Path) -> Any:
    """Published pickles are read with ``weights_only=True``: tensors, containers and numbers only."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError variants
        raise WeightsError(
            f"{path} could not be read safely with torch.load(weights_only=True): {exc}. "
            "It is either corrupt or contains code objects; it was refused."
        ) from exc


# Facts learnt in this process about unconverted files, keyed by (path, size, mtime): a file
# whose hash was checked once is not hashed again; a missing optional component is remembered.
_CHECKED: set[tuple[str, int, float]] = set()
_ABSENT: dict[tuple[str, int, float, str], str] = {}


def _file_key(path: Path) -> tuple[str, int, float]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime)


def _check_file(ckpt: Checkpoint, path: Path) -> None:
    """The published sha256 (or the fixture's recorded one) before anything is unpickled; writes nothing."""
    key = _file_key(path)
    if key in _CHECKED:
        return
    info = fixture_info(ckpt)
    if info is None and ckpt.sha256:
        if ckpt.size is not None and path.stat().st_size != ckpt.size:
            raise WeightsError(
                f"{ckpt.id}: {path} failed its check (size {path.stat().st_size} != expected {ckpt.size}); refused. "
                "Delete it and download again."
            )
        got = sha256_of(path)
        if got != ckpt.sha256:
            raise WeightsError(
                f"{ckpt.id}: {path} failed its check (sha256 {got} != expected {ckpt.sha256}); refused. "
                "Delete it and download again."
            )
    elif info is not None and info.get("sha256") != sha256_of(path):
        raise WeightsError(f"{ckpt.id}: fixture file {path} was modified after it was written; refused.")
    _CHECKED.add(key)


def _state_dicts(ckpt: Checkpoint, path: Path, only: str | None = None) -> dict[str, dict[str, torch.Tensor] | str]:
    """Every component's state dict (model key names) from the checked, unpickled file; a missing
    optional component maps to the reason it is missing."""
    _check_file(ckpt, path)
    obj = _unpickle(path)
    found: dict[str, dict[str, torch.Tensor] | str] = {}
    for c in ckpt.components:
        if only is not None and c.name != only:
            continue
        sd = None
        for candidate in (c.path, *c.alt_paths):
            try:
                node = _dig(obj, candidate)
            except KeyError:
                continue
            if isinstance(node, dict) and node and all(isinstance(v, torch.Tensor) for v in node.values()):
                sd = node
                break
        where = f"{'/'.join(c.path) or '(top level)'} in {path.name}"
        if sd is None:
            if c.name in ckpt.optional_components:
                found[c.name] = f"nothing at {where}"
                continue
            raise WeightsError(f"{ckpt.id}: no state dict for {c.name!r} at {where}")
        c_to_model, _ = _key_mappers(c)
        found[c.name] = {c_to_model(k): v.detach().contiguous().clone() for k, v in sd.items()}
    return found


def convert(ckpt: Checkpoint) -> list[Path]:
    """Write each component of a downloaded (non-fixture) file as safetensors beside it, once, at
    download time, so later loads never unpickle. Fixtures are never converted (their loads are
    in memory: the cache does not grow by a second copy of every file). Returns the files written."""
    path = checkpoint_path(ckpt)
    if fixture_info(ckpt) is not None:
        return []
    written = []
    for name, sd in _state_dicts(ckpt, path).items():
        target = _converted_path(path, name)
        if isinstance(sd, str):
            target.with_suffix(".absent").write_text(sd + "\n")
            continue
        tmp = target.with_suffix(".tmp")
        save_file(sd, str(tmp))
        os.replace(tmp, target)
        written.append(target)
    return written


def load_state_dict(checkpoint_id: str, component: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict of one network, keys as the model expects, from the cache.

    The safetensors conversion made at download time when there is one; otherwise (a fixture, a
    file put in place by hand, a read-only cache) the file is hashed against its published or
    recorded sha256, unpickled with ``weights_only=True`` and converted **in memory**: loading
    never writes into the weights cache, which may be read-only.
    """
    ckpt = registry.get(checkpoint_id)
    comp = ckpt.component(component)
    path = checkpoint_path(ckpt)
    if not path.exists():
        raise WeightsMissingError(manual_instructions(ckpt))
    converted = _converted_path(path, comp.name)
    absent = converted.with_suffix(".absent")
    if converted.exists() and converted.stat().st_mtime >= path.stat().st_mtime:
        return load_file(str(converted))
    if absent.exists() and absent.stat().st_mtime >= path.stat().st_mtime:
        raise WeightsError(f"{ckpt.id}: the file has no {comp.name!r} state dict ({absent.read_text().strip()})")
    memo = (*_file_key(path), comp.name)
    if memo in _ABSENT:
        raise WeightsError(f"{ckpt.id}: the file has no {comp.name!r} state dict ({_ABSENT[memo]})")
    sd = _state_dicts(ckpt, path, only=comp.name).get(comp.name)
    if not isinstance(sd, dict):
        _ABSENT[memo] = str(sd)
        raise WeightsError(f"{ckpt.id}: the file has no {comp.name!r} state dict ({sd})")
    return sd


def load_into(module: torch.nn.Module, checkpoint_id: str, component: str | None = None) -> torch.nn.Module:
    """``module.load_state_dict(..., strict=True)`` with an error that names the checkpoint."""
    sd = load_state_dict(checkpoint_id, component)
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{checkpoint_id} ({component or 'model'}) does not match the network: {str(exc)[:600]}"
        ) from exc
    return module


def any_fixture_in_use(ids: list[str] | None = None) -> list[str]:
    """Checkpoint ids whose cached file is a fixture (for the UI banner)."""
    return [c.id for c in registry.all_checkpoints() if (ids is None or c.id in ids) and fixture_info(c) is not None]
