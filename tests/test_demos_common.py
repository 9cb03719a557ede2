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


def test_time_left_comes_from_the_recent_rate() -> None:
    from demos.common import TimeLeft, time_left_text

    now = [0.0]
    left = TimeLeft(window=30.0, clock=lambda: now[0])
    assert left(0.05) is None  # nothing measured yet
    now[0] = 20.0  # a slow model load: 20 s for 5 %
    left(0.10)
    for step in range(1, 41):  # then 1 % per second, for 40 s: the old, slow start leaves the window
        now[0] = 20.0 + step
        estimate = left(0.10 + 0.01 * step)
    assert estimate == pytest.approx(50.0, rel=0.05)  # 50 % left at 1 %/s
    assert time_left_text(estimate) == "about 50 s left" and time_left_text(200) == "about 3 min left"


def test_stop_ends_the_running_job_of_that_page_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from demos import common

    started = threading.Event()
    steps: list[int] = []

    @job
    def long_job(n: int, progress: gr.Progress = gr.Progress()) -> str:
        report = common.progress_reporter(progress)
        for i in range(n):
            report(i / n, f"frame {i}")
            steps.append(i)
            started.set()
            time.sleep(0.01)
        return "finished"

    page, other = types.SimpleNamespace(session_hash="page-a"), types.SimpleNamespace(session_hash="page-b")
    before = common.STOPPED_JOBS["long_job"]
    outcome: list[BaseException | str] = []

    def run() -> None:
        try:
            outcome.append(long_job(100_000, gr.Progress(), page))  # as Gradio calls it: the request last
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(10)
    common.request_stop(other)  # another visitor's Stop does not touch this job
    time.sleep(0.05)
    assert worker.is_alive()
    assert "Stopped" in common.request_stop(page)
    worker.join(5)
    assert not worker.is_alive() and len(steps) < 100_000
    assert isinstance(outcome[0], gr.Error) and "Stopped at your request" in str(outcome[0])
    assert common.STOPPED_JOBS["long_job"] == before + 1
    # a job the same page starts after its Stop click runs to the end
    assert long_job(3, gr.Progress(), page) == "finished"


def test_job_adds_the_request_to_the_signature_gradio_reads() -> None:
    import inspect
    import typing

    @job
    def handler(photo: str | None, progress: gr.Progress = gr.Progress()) -> str:
        return photo or ""

    params = list(inspect.signature(handler).parameters)
    assert params == ["photo", "progress", "request_"]
    assert typing.get_type_hints(handler)["request_"] is gr.Request
    assert handler("x") == "x"
