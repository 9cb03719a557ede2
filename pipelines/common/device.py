"""Device choice and the process-wide model cache.

Models load lazily, once, even when many requests ask at the same time (one lock per model), to
CUDA when available, else MPS, else CPU. Loaded models are kept under an LRU byte budget: the
least recently used is unloaded when a new one would exceed it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

from pipelines.common.errors import ModelUnavailableError, OutOfMemoryError

T = TypeVar("T")


def pick_device(preferred: str | None = None) -> torch.device:
    """``NOSTALGIA_DEVICE`` or ``preferred`` if set, else CUDA, MPS, CPU in that order."""
    name = preferred or os.environ.get("NOSTALGIA_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def module_bytes(module: object) -> int:
    """Bytes held by a module's parameters and buffers (0 for non-modules)."""
    if isinstance(module, torch.nn.Module):
        return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
    nbytes = getattr(module, "nbytes", None)
    return int(nbytes) if isinstance(nbytes, int) else 0


def _default_budget() -> int:
    env = os.environ.get("NOSTALGIA_MODEL_BUDGET_GB")
    return int(float(env) * (1 << 30)) if env else 12 * (1 << 30)


class ModelCache:
    """Thread-safe lazy cache of loaded models keyed by a string, with an LRU byte budget."""

    def __init__(self, budget_bytes: int | None = None):
        self.budget_bytes = _default_budget() if budget_bytes is None else budget_bytes
        self._models: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.load_counts: dict[str, int] = {}

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str, loader: Callable[[], T]) -> T:
        """Return the cached model for ``key``, calling ``loader()`` once if it is not loaded."""
        with self._guard:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][0]  # type: ignore[return-value]
        with self._lock_for(key):
            with self._guard:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key][0]  # type: ignore[return-value]
            model = loader()
            size = module_bytes(model)
            with self._guard:
                self._evict_for(size)
                self._models[key] = (model, size)
                self.load_counts[key] = self.load_counts.get(key, 0) + 1
            return model

    @staticmethod
    def held_bytes(model: object, size: int) -> int:
        """What a cached model holds now: its own bytes plus the low-precision copies made of it
        since it was loaded (:mod:`pipelines.common.precision` keeps one per network while it lives)."""
        from pipelines.common.precision import copies_bytes

        return size + copies_bytes(model)

    def used_bytes(self) -> int:
        with self._guard:
            return sum(self.held_bytes(model, size) for model, size in self._models.values())

    def _evict_for(self, incoming: int, keep: object | None = None) -> None:
        """Evict least recently used models until ``incoming`` more bytes fit in the budget;
        ``keep`` (a model just made bigger by a copy of itself, in use) is never evicted."""
        held = [(key, self.held_bytes(model, size)) for key, (model, size) in self._models.items() if model is not keep]
        used = sum(self.held_bytes(model, size) for model, size in self._models.values())
        for key, nbytes in held:
            if used + incoming <= self.budget_bytes:
                break
            del self._models[key]
            used -= nbytes
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def trim(self, keep: object | None = None) -> None:
        """Bring the cache back within its budget after a cached model grew (a low-precision copy
        was made of it), evicting other models least recently used first."""
        with self._guard:
            self._evict_for(0, keep=keep)

    def loaded(self) -> list[str]:
        with self._guard:
            return list(self._models)

    def unload(self, key: str | None = None) -> None:
        with self._guard:
            if key is None:
                self._models.clear()
            else:
                self._models.pop(key, None)


MODELS = ModelCache()


@contextlib.contextmanager
def oom_guard(hint: str) -> Iterator[None]:
    """Turn an out-of-memory error into :class:`OutOfMemoryError` with a concrete ``hint``."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        raise OutOfMemoryError(f"The GPU ran out of memory. {hint}") from exc
    except RuntimeError as exc:
        text = str(exc).lower()
        if "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise OutOfMemoryError(f"Out of memory. {hint}") from exc
        raise


def gpu(fn: Callable[..., T] | None = None, *, duration: int = 120) -> Callable[..., T]:
    """On Hugging Face ZeroGPU (``spaces`` importable, ``SPACES_ZERO_GPU`` set) wrap with
    ``spaces.GPU``; elsewhere return the function unchanged."""

    def wrap(f: Callable[..., T]) -> Callable[..., T]:
        if os.environ.get("SPACES_ZERO_GPU"):
            try:
                import spaces  # type: ignore[import-not-found]
            except ImportError:
                return f
            return spaces.GPU(duration=duration)(f)
        return f

    return wrap(fn) if fn is not None else wrap  # type: ignore[return-value]


def cached_network(checkpoint_id: str, component: str | None = None, device: torch.device | None = None) -> torch.nn.Module:
    """The network of ``checkpoint_id``/``component``, built by the registry's builder, loaded
    (strict), moved to the device in eval mode, once per process. Missing or refused weights become
    :class:`ModelUnavailableError` with the registry's instructions."""
    from weights import registry
    from weights.store import WeightsError, load_into

    device = device or pick_device()
    try:
        spec = registry.get(checkpoint_id).component(component)
    except KeyError as exc:
        raise ModelUnavailableError(f"No network {component!r} is registered for {checkpoint_id!r}: {exc}") from exc
    key = f"{checkpoint_id}:{spec.name}@{device}"

    def loader() -> torch.nn.Module:
        module = registry.build_module(spec)
        try:
            load_into(module, checkpoint_id, spec.name)
        except WeightsError as exc:
            raise ModelUnavailableError(str(exc)) from exc
        return module.to(device).eval().requires_grad_(False)

    return MODELS.get(key, loader)
