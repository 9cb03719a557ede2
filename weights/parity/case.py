"""A reference case on disk and the comparisons every handler needs.

A case folder (``shared/reference/<family>/<case>/``) holds ``case.json``, optionally
``keys.json`` and ``io.safetensors`` and image files. Handlers read *everything* (inputs,
parameters, salts, frame lists) from the case, never from constants of their own, because the
same model names are also checked against other cases with other data.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weights.fixture import fixture_state_dict


@dataclass
class Comparison:
    """One compared quantity: its name, the error found and whether it is within tolerance."""

    name: str
    passed: bool
    max_abs_err: float
    tolerance: str
    detail: str = ""


@dataclass
class Outcome:
    """Result of a whole case: passes only when every comparison passes."""

    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    @property
    def max_abs_err(self) -> float:
        return max((c.max_abs_err for c in self.comparisons), default=math.nan)

    def add(self, comparison: Comparison) -> Comparison:
        self.comparisons.append(comparison)
        return comparison

    def summary(self) -> str:
        worst = max(self.comparisons, key=lambda c: (not c.passed, c.max_abs_err), default=None)
        if worst is None:
            return "no comparison made"
        failed = [c.name for c in self.comparisons if not c.passed]
        text = f"max_abs_err={self.max_abs_err:.3g} tol({worst.name})={worst.tolerance}"
        if failed:
            text += f" failed={','.join(failed[:6])}"
            if worst.detail:
                text += f" ({worst.detail})"
        return text + (f" {self.note}" if self.note else "")


KEYS_TOLERANCE = "exact keys and shapes"  # the tolerance text of every keys comparison

# Files of a case folder that describe it rather than carry data to compare.
DESCRIPTION_FILES = frozenset({"case.json", "keys.json", "io.safetensors"})


class Case:
    """Read-only view of one case folder.

    Every file a handler reads goes through :meth:`file`, which records it: the runner fails a
    case whose folder holds a data file that no handler read (an expected output it did not
    compare, or a file named differently from what the handler assumed)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.meta: dict[str, Any] = json.loads((self.path / "case.json").read_text())
        self.files_read: set[Path] = set()

    def __repr__(self) -> str:
        return f"Case({self.id})"

    @property
    def id(self) -> str:
        return f"{self.family}/{self.name}"

    @property
    def family(self) -> str:
        return self.path.parent.name

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def model(self) -> str:
        return self.meta["model"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config") or {}

    @property
    def salt(self) -> str | None:
        return self.meta.get("salt")

    @property
    def gain(self) -> float:
        gain = self.meta.get("gain")
        return 1.0 if gain is None else float(gain)

    @property
    def atol(self) -> float:
        return float(self.meta.get("atol", 0.0))

    @property
    def rtol(self) -> float:
        return float(self.meta.get("rtol", 0.0))

    def file(self, relative: str) -> Path:
        """A path named inside the case, relative to the case folder (``../data/x`` allowed)."""
        path = (self.path / relative).resolve()
        self.files_read.add(path)
        return path

    def files(self, pattern: str) -> list[Path]:
        """The case's files matching a glob ``pattern`` (relative to the case folder), sorted, each
        recorded as read: for a case that names a family of files by a pattern."""
        return [self.file(str(p.relative_to(self.path))) for p in sorted(self.path.glob(pattern))]

    def named(self, field: str, role: str, **values: object) -> Path | None:
        """The file that ``case.json``'s ``field`` (``input`` or ``expected``) names for ``role``
        (its first word, ``<placeholder>``s filled from ``values``), recorded as read; None when the
        case names no file for that role."""
        spec = (self.meta.get(field) or {}).get(role)
        if not isinstance(spec, str) or not spec.split():
            return None
        relative = spec.split()[0]
        for key, value in values.items():
            relative = relative.replace(f"<{key}>", str(value))
        return self.file(relative)

    def numbered(self, field: str, role: str, placeholder: str = "k", **values: object) -> dict[int, Path]:
        """Files present for a pattern with a numeric ``<placeholder>`` (such as the ``<k>``-th face),
        by number: the count of such things follows from the files the case carries."""
        spec = (self.meta.get(field) or {}).get(role)
        if not isinstance(spec, str) or not spec.split():
            return {}
        pattern = spec.split()[0]
        for key, value in values.items():
            pattern = pattern.replace(f"<{key}>", str(value))
        head, _, tail = pattern.partition(f"<{placeholder}>")
        found: dict[int, Path] = {}
        for path in (self.path / head).parent.glob(Path(head).name + "*" + tail):
            number = path.name[len(Path(head).name) : len(path.name) - len(tail)]
            if number.isdigit():
                found[int(number)] = self.file(os.path.relpath(path, self.path))
        return dict(sorted(found.items()))

    def data_files(self) -> list[Path]:
        """Every file of the case folder (subfolders included) that carries data: all but
        ``case.json``, ``keys.json``, ``io.safetensors`` and the Markdown notes."""
        return sorted(
            p for p in self.path.rglob("*") if p.is_file() and p.name not in DESCRIPTION_FILES and p.suffix != ".md"
        )

    @property
    def has_io(self) -> bool:
        return (self.path / "io.safetensors").exists()

    def declares_forward_data(self) -> bool:
        """Whether ``case.json`` names tensors of a forward call (its ``forward`` has ``args``,
        ``outputs`` or ``returns``, or the case has an ``io`` field), so ``io.safetensors`` must exist."""
        forward = self.meta.get("forward")
        named = isinstance(forward, dict) and any(forward.get(k) for k in ("args", "outputs", "returns"))
        return bool(named or self.meta.get("io"))

    @cached_property
    def keys(self) -> dict[str, list[int]] | None:
        path = self.path / "keys.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "keys" in data and isinstance(data["keys"], (dict, list)):
            data = data["keys"]
        if isinstance(data, list):  # [[key, shape], ...]
            data = {k: s for k, s in data}
        return {k: list(s) for k, s in data.items()}

    @cached_property
    def io(self) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        path = self.path / "io.safetensors"
        return load_file(str(path)) if path.exists() else {}

    def fixture(
        self,
        shapes: Mapping[str, Sequence[int]] | None = None,
        salt: str | None = None,
        gain: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Fixture weights for this case (defaults: its keys.json, salt and gain)."""
        shapes = shapes if shapes is not None else self.keys
        if shapes is None:
            raise ValueError(f"{self.id}: no keys.json and no shapes given")
        salt = salt if salt is not None else self.salt
        if salt is None:
            raise ValueError(f"{self.id}: case has no salt")
        return fixture_state_dict(shapes, salt, self.gain if gain is None else gain)


def compare_tensors(
    name: str,
    got: torch.Tensor | np.ndarray,
    expected: torch.Tensor | np.ndarray,
    atol: float,
    rtol: float,
) -> Comparison:
    """``torch.allclose`` semantics, reporting the max absolute error."""
    got_t = torch.as_tensor(np.asarray(got) if isinstance(got, np.ndarray) else got).detach().cpu()
    exp_t = torch.as_tensor(np.asarray(expected) if isinstance(expected, np.ndarray) else expected).cpu()
    tol = f"atol {atol:g} rtol {rtol:g}"
    if tuple(got_t.shape) != tuple(exp_t.shape):
        return Comparison(name, False, math.inf, tol, f"shape {tuple(got_t.shape)} != {tuple(exp_t.shape)}")
    got_d, exp_d = got_t.double(), exp_t.double()
    if got_d.numel() == 0:
        return Comparison(name, True, 0.0, tol)
    err = (got_d - exp_d).abs()
    max_err = float(err.max())
    ok = bool(torch.all(err <= atol + rtol * exp_d.abs()))
    return Comparison(name, ok, max_err, tol)


def compare_images(
    name: str,
    got: np.ndarray,
    expected: np.ndarray,
    max_abs_diff: float,
    mean_abs_diff: float | None = None,
    max_fraction_differing: float | None = None,
) -> Comparison:
    """Compare two uint8 images (0..255) by max / mean absolute difference."""
    got_a = np.asarray(got).astype(np.int32)
    exp_a = np.asarray(expected).astype(np.int32)
    tol = f"max {max_abs_diff:g}" + (f" mean {mean_abs_diff:g}" if mean_abs_diff is not None else "")
    if max_fraction_differing is not None:
        tol += f" frac {max_fraction_differing:g}"
    if got_a.shape != exp_a.shape:
        return Comparison(name, False, math.inf, tol, f"shape {got_a.shape} != {exp_a.shape}")
    diff = np.abs(got_a - exp_a)
    max_d = float(diff.max()) if diff.size else 0.0
    mean_d = float(diff.mean()) if diff.size else 0.0
    ok = max_d <= max_abs_diff and (mean_abs_diff is None or mean_d <= mean_abs_diff)
    frac = float((diff > 0).mean()) if diff.size else 0.0
    if max_fraction_differing is not None:
        ok = ok and frac <= max_fraction_differing
    return Comparison(name, ok, max_d, tol, f"mean {mean_d:.4g}, differing {frac:.4%}")


def compare_keys(name: str, got: Mapping[str, Sequence[int]], expected: Mapping[str, Sequence[int]]) -> Comparison:
    """Same key set (order-insensitive) and the same shape for every key."""
    got_k, exp_k = set(got), set(expected)
    missing, unexpected = sorted(exp_k - got_k), sorted(got_k - exp_k)
    wrong = sorted(k for k in exp_k & got_k if list(got[k]) != list(expected[k]))
    ok = not (missing or unexpected or wrong)
    detail = ""
    if not ok:
        detail = f"missing {missing[:3]}({len(missing)}) unexpected {unexpected[:3]}({len(unexpected)}) shape {wrong[:3]}({len(wrong)})"
    return Comparison(name, ok, 0.0 if ok else math.inf, KEYS_TOLERANCE, detail)


def state_dict_shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def load_image(path: Path) -> np.ndarray:
    """A reference PNG as a uint8 array (RGB, or 2-D for single-channel files), as stored."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im).copy()
