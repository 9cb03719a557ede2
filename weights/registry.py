"""The registry of every published checkpoint the pipelines use.

One :class:`Checkpoint` per published *file*: where it can be fetched (every known source), how
to check it (sha256, size), under which licence, and where inside the file each network's state
dict sits (:class:`Component`). Families declare their entries in ``weights/catalog/<family>.py``;
nothing outside ``weights/`` downloads or parses checkpoint files.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Source:
    """One place a checkpoint file can be fetched from.

    ``url`` is a direct HTTP(S) URL, or, for a Hugging Face file, built from ``hf_repo``,
    ``hf_file`` and a pinned ``revision``. ``member`` names the file inside a zip archive when the
    URL points to an archive (BOPBTL ships its checkpoints that way).
    """

    url: str = ""
    hf_repo: str = ""
    hf_file: str = ""
    revision: str = "main"
    member: str = ""
    note: str = ""

    @property
    def resolved_url(self) -> str:
        if self.url:
            return self.url
        if not self.hf_file:  # a whole repository folder (see Checkpoint.files): its page at the revision
            return f"https://huggingface.co/{self.hf_repo}/tree/{self.revision}"
        return self.file_url(self.hf_file)

    def file_url(self, path: str) -> str:
        """Direct URL of one file of the Hugging Face repository at the pinned revision."""
        return f"https://huggingface.co/{self.hf_repo}/resolve/{self.revision}/{path}"

    @property
    def is_archive(self) -> bool:
        return bool(self.member)


@dataclass(frozen=True)
class Component:
    """One network state dict inside a checkpoint file.

    ``path`` is the chain of dict keys leading to the state dict (``()`` = the file is the state
    dict). ``alt_paths`` are other nestings the original loader also accepted. ``builder`` is a
    ``"module:function"`` that, called with ``builder_args`` as keyword arguments (data, so that one
    builder serves every published variant), returns the ``nn.Module`` (random init, no downloads)
    whose state dict this component loads into with ``strict=True``. It is the one way a network is
    built: :func:`build_module` here, the model cache (``pipelines.common.device.cached_network``)
    and fixture mode all go through it.
    ``file_key_prefix`` is a prefix the *model's* keys carry but the file's keys do not (OpenPose's
    ``model0.`` style names are handled by ``key_map`` instead).
    """

    name: str
    builder: str
    builder_args: tuple[tuple[str, Any], ...] = ()
    path: tuple[str, ...] = ()
    alt_paths: tuple[tuple[str, ...], ...] = ()
    key_map: str = ""  # optional "module:function" mapping file keys -> model keys (and back)


@dataclass(frozen=True)
class RepoFile:
    """One file of a model published as a folder of files (a diffusers repository: configs,
    tokenizer, one safetensors file per network). ``path`` is its path in the repository,
    ``local`` its path in the cache folder when it differs (an fp16 variant stored under the
    plain name, as diffusers expects); ``size``/``sha256`` are checked when known."""

    path: str
    size: int | None = None
    sha256: str | None = None
    local: str = ""

    @property
    def local_path(self) -> str:
        return self.local or self.path


@dataclass(frozen=True)
class Checkpoint:
    id: str  # "<family>/<name>", e.g. "deoldify/artistic"
    family: str
    filename: str
    description: str
    licence: str
    components: tuple[Component, ...]
    sources: tuple[Source, ...] = ()
    sha256: str | None = None
    size: int | None = None  # bytes
    # The hex digits a torch.hub-style file name carries (``name-<prefix>.ext``): the start of the
    # sha256 by that convention, checked by ``verify`` when no full sha256 is published.
    sha256_prefix: str | None = None
    homepage: str = ""
    notes: str = ""
    optional_components: tuple[str, ...] = field(default=())  # may be absent from the file
    # A model published as a folder (``files`` fetched from the first Hugging Face source at its
    # pinned revision into ``<cache>/<id>/``; ``filename`` is the file that marks the folder, and
    # ``components`` is empty: the library builds the networks from the configs in the folder).
    files: tuple[RepoFile, ...] = ()
    # "module:function(folder, salt)" writing a small random model in the same layout, for
    # ``python -m weights fixture`` when the networks come from configs rather than ``components``.
    fixture_writer: str = ""
    # Why no fixture can stand in for this file (a model the app runs through another library, such
    # as an ONNX voice): ``python -m weights fixture`` skips it and says this instead.
    no_fixture: str = ""
    # A real model the app uses while this file is absent (face-alignment's FAN: dlib's predictor,
    # installed offline). ``weights fixture --missing all`` (run_app.sh's offline fallback) leaves
    # such a file absent, so the app keeps the real fallback instead of a fixture's noise; naming
    # the id writes its fixture anyway (tests do, to exercise the code path).
    real_fallback: str = ""

    @property
    def is_folder(self) -> bool:
        return bool(self.files)

    @property
    def licence_short(self) -> str:
        """The licence's name alone (the full text stays in ``licence``), for tables."""
        return re.split(r" \(|: |; ", self.licence, maxsplit=1)[0]

    def component(self, name: str | None = None) -> Component:
        if name is None:
            if len(self.components) != 1:
                raise KeyError(f"{self.id} has several components: {[c.name for c in self.components]}")
            return self.components[0]
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(f"{self.id} has no component {name!r}: {[c.name for c in self.components]}")


def resolve(dotted: str) -> Callable:
    """Import ``"package.module:attribute"``."""
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_module(component: Component) -> torch.nn.Module:
    """The component's network, freshly built (random weights) by its builder and arguments."""
    return resolve(component.builder)(**dict(component.builder_args))


def published_size(ckpt: Checkpoint) -> int | None:
    """Bytes to download: the file's published size, or the sum of a folder's files when every one is known."""
    if ckpt.is_folder and ckpt.size is None:
        sizes = [f.size for f in ckpt.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)
    return ckpt.size


def human_bytes(size: int) -> str:
    """``1234567`` -> ``"1.2 MB"`` (powers of 1000, as download sizes are quoted)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def size_label(ckpt: Checkpoint) -> str:
    """The download size for listings: the published size; else an estimate from the networks
    (:func:`parameter_bytes`) marked "est.", with "≥" when the file also holds optimizer state
    (its notes say so) and "~" otherwise; "?" when neither is known."""
    published = published_size(ckpt)
    if published is not None:
        return human_bytes(published)
    estimate = parameter_bytes(ckpt)
    if estimate is None:
        return "?"
    return f"{'≥' if 'optimizer' in ckpt.notes else '~'}{human_bytes(estimate)} est."


@functools.lru_cache(maxsize=256)
def parameter_bytes(ckpt: Checkpoint) -> int | None:
    """float32 bytes of every component's state dict, the networks built by their builders on
    torch's ``meta`` device (shapes only, no memory): an estimate of an unpublished file size, and a
    lower bound when the file also holds optimizer state. None when a builder cannot say."""
    total = 0
    for comp in ckpt.components:
        try:
            with torch.device("meta"):
                module = build_module(comp)
        except Exception:  # a builder that computes on real tensors: build it for real
            try:
                module = build_module(comp)
            except Exception:
                return None
        total += sum(v.numel() * 4 for v in module.state_dict().values())
    return total or None


def catalog_modules() -> list[str]:
    """Every module of ``weights/catalog/`` (found on disk, not listed by hand), in the app's tab
    order: each module says where its family comes with ``TAB_ORDER``; modules without it come last."""
    import pkgutil

    package = importlib.import_module("weights.catalog")
    names = [f"weights.catalog.{m.name}" for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda name: (getattr(importlib.import_module(name), "TAB_ORDER", 1_000), name))


_EXTRA: list[Checkpoint] = []


def register(ckpt: Checkpoint) -> Checkpoint:
    """Add a checkpoint outside the catalogue (a user's own model, or a test's)."""
    _EXTRA[:] = [c for c in _EXTRA if c.id != ckpt.id]
    _EXTRA.append(ckpt)
    return ckpt


def unregister(checkpoint_id: str) -> None:
    _EXTRA[:] = [c for c in _EXTRA if c.id != checkpoint_id]


def all_checkpoints() -> list[Checkpoint]:
    """Every registered checkpoint, in catalogue order (Restore, Colorize, Animate, Dance)."""
    found: list[Checkpoint] = []
    for name in catalog_modules():
        found.extend(importlib.import_module(name).CHECKPOINTS)
    found.extend(_EXTRA)
    ids = [c.id for c in found]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"duplicate checkpoint ids: {sorted(dupes)}")
    return found


def get(checkpoint_id: str) -> Checkpoint:
    for c in all_checkpoints():
        if c.id == checkpoint_id:
            return c
    known = ", ".join(c.id for c in all_checkpoints())
    raise KeyError(f"unknown checkpoint {checkpoint_id!r}; known: {known}")
