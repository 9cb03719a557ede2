"""The parity runner: dispatch each reference case to the handler registered for its model.

``python -m weights.parity CASE_DIR...`` prints one line per case and exits non-zero on any
failure. A case whose model has no handler yet is reported as ``FAIL (not implemented)``, never
skipped, so missing work stays visible.

The runner, not each handler, decides what a PASS needs, so that no handler can pass a case by
checking less than the case holds:

- the case's ``kind`` is one its handler declares (``network``, ``pipeline`` or ``keys``);
- a ``network`` case that names forward tensors has its ``io.safetensors`` (a network case without
  forward data is a keys check and needs ``keys.json``); a ``keys`` case has ``keys.json`` and is
  checked against it;
- every ``output.*`` tensor of ``io.safetensors`` was compared under its own name (or ``name.<part>``,
  ``name[<variant>]``; an output the
  handler does not know, or an intermediate whose hook never fired, is a failure);
- every data file of the case folder was read by the handler (through ``Case.file``/``Case.files``),
  so an expected image the handler did not look for cannot be skipped silently.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines.common import precision as precisions
from weights.parity.case import KEYS_TOLERANCE, Case, Comparison, Outcome

Handler = Callable[[Case], Outcome]
KINDS = ("network", "pipeline", "keys")


@dataclass(frozen=True)
class Registration:
    fn: Handler
    kinds: tuple[str, ...]


_HANDLERS: dict[str, Registration] = {}
# Modules of this package that hold no handlers.
_NOT_HANDLERS = frozenset({"__main__", "case", "runner"})


def handler(*model_names: str, kinds: tuple[str, ...]) -> Callable[[Handler], Handler]:
    """Register a function as the handler of one or more ``case.json`` model names, for the case
    ``kinds`` it checks (a case of another kind fails without reaching it)."""
    unknown = set(kinds) - set(KINDS)
    if not kinds or unknown:
        raise ValueError(f"handler kinds must be among {KINDS}, got {kinds!r}")

    def register(fn: Handler) -> Handler:
        for name in model_names:
            if name in _HANDLERS and _HANDLERS[name].fn is not fn:
                raise ValueError(f"two parity handlers for {name!r}")
            _HANDLERS[name] = Registration(fn, tuple(kinds))
        return fn

    return register


def handler_modules() -> list[str]:
    """Every module of ``weights.parity`` that registers handlers (found on disk, not listed by hand)."""
    package = importlib.import_module("weights.parity")
    return sorted(
        f"weights.parity.{m.name}" for m in pkgutil.iter_modules(package.__path__) if m.name not in _NOT_HANDLERS
    )


def load_handlers() -> dict[str, Registration]:
    for module in handler_modules():
        importlib.import_module(module)  # errors inside a written module are real errors
    return _HANDLERS


def reference_dir() -> Path:
    """``NOSTALGIA_REFERENCE_DIR`` or ``../shared/reference`` beside the repository."""
    env = os.environ.get("NOSTALGIA_REFERENCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "reference"


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Case folders named directly, or found below the given folders, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "case.json").exists():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(c.parent for c in p.rglob("case.json")))
        else:
            raise FileNotFoundError(f"not a case folder: {p}")
    return found


@dataclass
class Result:
    case_id: str
    status: str  # PASS / FAIL
    line: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def refusal(case: Case, registration: Registration | None) -> str | None:
    """Why the case cannot be run at all (checked before its handler), or None."""
    kind = case.meta.get("kind")
    if kind not in KINDS:
        return f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
    if registration is None:
        return f"not implemented: no handler for model {case.model!r}"
    if kind not in registration.kinds:
        return f"kind {kind!r} is not checked by the handler of {case.model!r} (it checks {', '.join(registration.kinds)})"
    if kind == "network" and not case.has_io and case.declares_forward_data():
        return "network case without its io.safetensors"
    if kind == "network" and not case.has_io and case.keys is None:
        return "network case with neither io.safetensors nor keys.json"
    if kind == "keys" and case.keys is None:
        return "keys case without keys.json"
    return None


def unchecked(case: Case, outcome: Outcome) -> list[Comparison]:
    """Failures for whatever the case holds that the handler did not compare."""
    outputs = [name for name in case.io if name.startswith("output.")]
    # ``output.x`` is compared by a comparison named ``output.x``, or ``output.x.<part>`` / ``output.x[<variant>]``
    # when that longer name is not itself an output of the case (``output.stage.NL.W`` does not cover ``output.stage.NL``).
    compared = {c.name for c in outcome.comparisons}
    parts = {name for name in compared if name not in outputs}
    missing: list[Comparison] = []
    for name in outputs:
        if name not in compared and not any(p.startswith((name + ".", name + "[")) for p in parts):
            missing.append(Comparison(name, False, float("inf"), "compared", "output not compared (unknown name or hook never fired)"))
    for path in case.data_files():
        if path not in case.files_read:
            rel = path.relative_to(case.path)
            missing.append(Comparison(str(rel), False, float("inf"), "read", "file of the case never read by its handler"))
    if case.kind == "keys" and not any(c.tolerance == KEYS_TOLERANCE for c in outcome.comparisons):
        missing.append(Comparison("keys", False, float("inf"), KEYS_TOLERANCE, "keys case without a keys comparison"))
    return missing


def run_case(path: str | Path) -> Result:
    case = Case(path)
    registration = load_handlers().get(case.model)
    reason = refusal(case, registration)
    if reason is not None:
        return Result(case.id, "FAIL", f"FAIL {case.id} ({reason})", 0.0)
    assert registration is not None
    start = time.perf_counter()
    torch.set_grad_enabled(False)
    try:
        with precisions.using("exact"):  # parity is against the originals' float32 numbers
            outcome = registration.fn(case)
    except Exception as exc:  # a crash is a failure of that case, reported with its cause
        tb = traceback.format_exc(limit=-3).strip().splitlines()
        where = tb[-3].strip() if len(tb) >= 3 else ""
        return Result(
            case.id,
            "FAIL",
            f"FAIL {case.id} (error: {type(exc).__name__}: {exc} [{where}])",
            time.perf_counter() - start,
        )
    finally:
        torch.set_grad_enabled(True)
    for comparison in unchecked(case, outcome):
        outcome.add(comparison)
    seconds = time.perf_counter() - start
    status = "PASS" if outcome.passed else "FAIL"
    return Result(case.id, status, f"{status} {case.id} {outcome.summary()} [{seconds:.1f}s]", seconds)
