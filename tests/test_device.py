"""The model cache: one load under concurrency, LRU unloading, OOM translation."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from pipelines.common.device import ModelCache, oom_guard, pick_device
from pipelines.common.errors import OutOfMemoryError


def test_eight_threads_asking_for_one_model_load_it_once() -> None:
    cache = ModelCache(budget_bytes=1 << 30)
    calls = []
    barrier = threading.Barrier(8)

    def loader() -> torch.nn.Module:
        calls.append(1)
        time.sleep(0.2)  # a slow load: every thread arrives while it runs
        return torch.nn.Linear(4, 4)

    results: list[torch.nn.Module] = []

    def ask() -> None:
        barrier.wait()
        results.append(cache.get("m", loader))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_lru_unloads_the_least_recently_used_model() -> None:
    one = torch.nn.Linear(100, 100)  # 40,400 bytes
    cache = ModelCache(budget_bytes=2 * 40_400 + 10)
    cache.get("a", lambda: torch.nn.Linear(100, 100))
    cache.get("b", lambda: torch.nn.Linear(100, 100))
    cache.get("a", lambda: one)  # touch a: b is now the oldest
    cache.get("c", lambda: torch.nn.Linear(100, 100))
    assert cache.loaded() == ["a", "c"]
    cache.get("b", lambda: torch.nn.Linear(100, 100))
    assert cache.load_counts["b"] == 2 and "a" not in cache.loaded()


def test_oom_becomes_a_user_error_with_the_hint() -> None:
    with pytest.raises(OutOfMemoryError, match="lower the render factor"), oom_guard("Try again and lower the render factor."):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(ValueError), oom_guard("unused"):
        raise ValueError("other errors pass through")


def test_device_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOSTALGIA_DEVICE", "cpu")
    assert pick_device().type == "cpu"


def test_low_precision_copies_count_against_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.common import device, precision

    monkeypatch.setenv("NOSTALGIA_CPU_BF16", "1")  # bf16 copies on any CPU, as on the free tier's
    conv_bytes = 64 * 64 * 9 * 4 + 64 * 4
    cache = ModelCache(budget_bytes=2 * conv_bytes + conv_bytes // 4)
    monkeypatch.setattr(device, "MODELS", cache)
    cache.get("a", lambda: torch.nn.Conv2d(64, 64, 3))
    b = cache.get("b", lambda: torch.nn.Conv2d(64, 64, 3))
    assert cache.loaded() == ["a", "b"] and cache.used_bytes() == 2 * conv_bytes
    plan = precision.plan("openpose.body", torch.device("cpu"), "auto")
    lowered = plan.prepare(b)  # a bfloat16 copy: half of b's bytes more, over the budget
    assert lowered.weight.dtype == torch.bfloat16 and precision.copies_bytes(b) == conv_bytes // 2
    assert cache.loaded() == ["b"]  # a went, not b (in use)
    assert cache.used_bytes() == conv_bytes + conv_bytes // 2 <= cache.budget_bytes
    assert plan.prepare(b) is lowered  # made once per network
