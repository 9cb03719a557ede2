"""The parity runner: dispatch each reference case to the handler registered for its model.

``python -m weights.parity CASE_DIR...`` prints one line per case and exits non-zero on any
failure. A case whose model has no handler yet is reported as ``FAIL (not implemented)``, never
skipped, so missing work stays visible.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from weights.parity.case import Case, Outcome

Handler = Callable[[Case], Outcome]
_HANDLERS: dict[str, Handler] = {}

# One module of handlers per model family; each registers its model names on import.
FAMILY_MODULES = (
    "weights.parity.deoldify",
    "weights.parity.bopbtl",
    "weights.parity.bopbtl_faces",
    "weights.parity.tpsmm",
    "weights.parity.edn",
    "weights.parity.edn_pose",
)


def handler(*model_names: str) -> Callable[[Handler], Handler]:
    """Register a function as the handler of one or more ``case.json`` model names."""

    def register(fn: Handler) -> Handler:
        for name in model_names:
            if name in _HANDLERS and _HANDLERS[name] is not fn:
                raise ValueError(f"two parity handlers for {name!r}")
            _HANDLERS[name] = fn
        return fn

    return register


def load_handlers() -> dict[str, Handler]:
    for module in FAMILY_MODULES:
        if importlib.util.find_spec(module) is not None:
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


def run_case(path: str | Path) -> Result:
    case = Case(path)
    handlers = load_handlers()
    start = time.perf_counter()
    fn = handlers.get(case.model)
    if fn is None:
        return Result(case.id, "FAIL", f"FAIL {case.id} (not implemented: no handler for model {case.model!r})", 0.0)
    torch.set_grad_enabled(False)
    try:
        outcome = fn(case)
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
    seconds = time.perf_counter() - start
    status = "PASS" if outcome.passed else "FAIL"
    return Result(case.id, status, f"{status} {case.id} {outcome.summary()} [{seconds:.1f}s]", seconds)
