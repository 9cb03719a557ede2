"""What every tab relies on: error translation and the ZeroGPU wrapper."""

from __future__ import annotations

import sys
import types

import gradio as gr
import pytest

from demos.common import job
from pipelines.common.device import gpu
from pipelines.common.errors import InputError


def test_user_errors_become_gr_error_with_the_message() -> None:
    @job
    def handler(x: int) -> int:
        raise InputError("photo.jpg: the file is empty (0 bytes). Upload the photo again.")

    with pytest.raises(gr.Error, match="Upload the photo again"):
        handler(1)


def test_user_errors_are_logged_as_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    from demos.common import require

    @job
    def handler(photo: str | None) -> str:
        require(photo, "a photo")
        raise InputError("photo.jpg: no face found.")

    for value, message in ((None, "Please provide a photo first."), ("x.png", "photo.jpg: no face found.")):
        caplog.clear()
        with caplog.at_level("INFO", logger="nostalgia"), pytest.raises(gr.Error) as info:
            handler(value)
        assert info.value.print_exception is False  # gradio would print a traceback otherwise
        records = [r for r in caplog.records if r.name == "nostalgia"]
        assert len(records) == 1 and records[0].exc_info is None, records
        assert records[0].getMessage() == f"user error in handler: {message}"


def test_bugs_become_an_internal_error_without_a_trace() -> None:
    @job
    def handler() -> None:
        raise KeyError("secret internal detail")

    with pytest.raises(gr.Error) as info:
        handler()
    assert "Internal error (KeyError)" in str(info.value) and "secret" not in str(info.value)


def test_zero_gpu_wrapper_only_on_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    def f() -> str:
        return "ran"

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu(f) is f
    calls = []
    fake = types.ModuleType("spaces")

    def GPU(duration: int = 60):  # the real API's name
        def deco(fn):
            def wrapped(*a, **k):
                calls.append(duration)
                return fn(*a, **k)

            return wrapped

        return deco

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    wrapped = gpu(f, duration=30)
    assert wrapped is not f and wrapped() == "ran" and calls == [30]
