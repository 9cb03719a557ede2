"""What every tab shares: the GPU queue, error translation, progress with an estimate of the time
left, the Stop button, limits text.

Tabs stay thin: they lay out components and wire events to a pipeline call wrapped by
:func:`job`, which turns user errors into ``gr.Error``. A long job is started by the button of
:func:`job_controls` and wired by :func:`run_job`: its progress (with the time left, measured
from the recent rate) shows in the panel under that button, and its Stop button both cancels the
event in the page and makes the running pipeline stop at its next progress step or stop point
(:func:`pipelines.common.progress.stop_point`: per frame, face or network scale;
:class:`~pipelines.common.errors.StoppedError`), so no abandoned computation keeps the machine.
"""

from __future__ import annotations

import collections
import contextvars
import functools
import inspect
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from pipelines.common.device import gpu
from pipelines.common.errors import NostalgiaError, StoppedError
from pipelines.common.limits import LIMITS
from pipelines.common.media import inspect_image
from pipelines.common.progress import set_stop_check

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("nostalgia")

# All events that run networks share one queue slot group, so GPU jobs never overlap.
GPU_CONCURRENCY_ID = "gpu"
GPU_CONCURRENCY_LIMIT = 1


def gpu_event(api_name: str) -> dict[str, Any]:
    """Keyword arguments for an event listener that runs networks."""
    return {
        "api_name": api_name,
        "concurrency_id": GPU_CONCURRENCY_ID,
        "concurrency_limit": GPU_CONCURRENCY_LIMIT,
    }


def redact_paths(message: str) -> str:
    """``message`` without the server's folders (weights cache, data, outputs, temporary files,
    the code itself): a public server never tells visitors where its files live."""
    import tempfile

    from pipelines.common.jobs import data_dir
    from pipelines.common.media import outputs_root
    from weights.store import cache_dir

    roots = {
        str(cache_dir().resolve()): "<weights cache>",
        str(cache_dir()): "<weights cache>",
        str(outputs_root()): "<outputs>",
        str(data_dir()): "<data>",
        str(Path(tempfile.gettempdir())): "<tmp>",
        str(Path(__file__).resolve().parents[1]): "<app>",
    }
    for root in sorted(roots, key=len, reverse=True):
        if len(root) > 1:
            message = message.replace(root, roots[root])
    return message


def user_error(message: str, where: str = "input", duration: float | None = None) -> gr.Error:
    """A ``gr.Error`` for a user's mistake: shown in the page, logged as ONE line (a user's typo
    is not a server fault, so no traceback in the log). In public mode server paths are removed
    from what the visitor sees (:func:`redact_paths`)."""
    from pipelines.common.limits import public_mode

    log.info("user error in %s: %s", where, message)
    return gr.Error(redact_paths(message) if public_mode() else message, duration=duration, print_exception=False)


# --------------------------------------------------------------------------- stopping jobs


@dataclass(frozen=True)
class _RunningJob:
    session: str | None  # Gradio's session hash of the page (or API client) that started it
    started: float  # time.monotonic() when the handler began


_current_job: contextvars.ContextVar[_RunningJob | None] = contextvars.ContextVar("nostalgia_job", default=None)
_stop_requests: dict[str, float] = {}  # session hash -> time of its latest Stop click
_stop_lock = threading.Lock()
#: How many jobs each handler has stopped at a user's request (read by tests and logs).
STOPPED_JOBS: collections.Counter[str] = collections.Counter()


def request_stop(request: gr.Request) -> str:
    """The Stop button: every job of this page that is running now stops at its next step (a job
    started later is not affected). Gradio's ``cancels=`` frees the page at the same time."""
    session = getattr(request, "session_hash", None)
    if session:
        now = time.monotonic()
        with _stop_lock:
            for key in [k for k, t in _stop_requests.items() if now - t > 3600]:
                del _stop_requests[key]
            _stop_requests[session] = now
    return "**Stopped.** Nothing more is computed for this job; change the settings and start again."


def raise_if_stopped() -> None:
    """Raise :class:`StoppedError` when the page that started the current job pressed Stop."""
    running = _current_job.get()
    if running is None or running.session is None:
        return
    with _stop_lock:
        asked = _stop_requests.get(running.session)
    if asked is not None and asked >= running.started:
        raise StoppedError("Stopped at your request.")


# the pipelines' stop points (per frame, face or network scale) ask the same question
set_stop_check(raise_if_stopped)


def job(fn: F) -> F:
    """Wrap an event handler: a :class:`NostalgiaError` becomes ``gr.Error`` with its message and
    one log line; any other exception is logged with its traceback and reported as an internal
    error (never a stack trace in the UI, never a silent empty output). On ZeroGPU the handler
    runs under ``spaces.GPU``."""
    run = gpu(fn)
    signature = inspect.signature(fn)
    n_params = len(signature.parameters)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Gradio passes the request (added to the signature below) last; direct calls may omit it.
        request = kwargs.pop("request_", None) or (args[n_params] if len(args) > n_params else None)
        token = _current_job.set(_RunningJob(getattr(request, "session_hash", None), time.monotonic()))
        try:
            return run(*args[:n_params], **kwargs)
        except StoppedError:
            STOPPED_JOBS[fn.__name__] += 1
            log.info("stopped at the user's request: %s", fn.__name__)
            raise gr.Error("Stopped at your request.", duration=5, print_exception=False) from None
        except gr.Error as exc:
            if exc.print_exception:  # raised by the handler's own checks (``require``): a user error
                log.info("user error in %s: %s", fn.__name__, exc.message)
                exc.print_exception = False
            raise
        except NostalgiaError as exc:
            raise user_error(str(exc), fn.__name__) from exc
        except Exception as exc:
            log.exception("internal error in %s", fn.__name__)
            raise gr.Error(
                f"Internal error ({type(exc).__name__}). The input was not processed; please report this.",
                print_exception=False,  # logged just above, with its traceback
            ) from exc
        finally:
            _current_job.reset(token)

    request_param = inspect.Parameter(
        "request_", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request
    )
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), request_param])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), "request_": gr.Request}
    return wrapper  # type: ignore[return-value]


def safe_name(name: str | None, default: str = "upload") -> str:
    """A user's file name fit to quote in a message: base name only, plain characters, short."""
    base = Path(str(name or "")).name
    cleaned = re.sub(r"[^\w.\- ()]", "_", base)[:80].strip()
    return cleaned or default


def cli_name(upload: str | None, kind: str, suffix: str) -> str:
    """``NAME.kind.suffix``, the name the command line gives the same result (``NAME`` from the
    user's upload, which Gradio keeps under its original name)."""
    stem = safe_name(Path(upload).stem if upload else "", "result").replace(" ", "_")
    return f"{stem}.{kind}{suffix}"


def named_like_cli(result: str | Path, upload: str | None, kind: str) -> str:
    """Rename a result file in its private folder (:func:`new_output_path`) to :func:`cli_name`,
    so a download is called e.g. ``grandma.colorized.png``; returns the new path."""
    path = Path(result)
    target = path.with_name(cli_name(upload, kind, path.suffix))
    if target != path:
        path.replace(target)
    return str(target)


def _guard_image_input(block: gr.Image) -> None:
    """Check every upload to ``block`` by content before Gradio or a tab opens it (see
    :func:`harden_inputs`)."""
    original = block.preprocess

    def preprocess(payload: Any) -> Any:
        path = getattr(payload, "path", None)
        if path and not str(getattr(payload, "url", None) or "").startswith("data:"):
            try:
                inspect_image(path, name=safe_name(getattr(payload, "orig_name", None), Path(path).name))
            except NostalgiaError as exc:
                raise user_error(str(exc), "upload") from exc
        return original(payload)

    block.preprocess = preprocess  # type: ignore[method-assign]


def _guard_number_input(block: gr.Slider | gr.Number) -> None:
    """Refuse what Gradio's own range check lets through from the API: a missing value, a
    string, a boolean, NaN (every comparison with NaN is false) or infinity."""
    original = block.preprocess
    label = str(block.label or "A numeric setting")

    def preprocess(payload: Any) -> Any:
        if payload is None and isinstance(block, gr.Number):
            return original(payload)
        if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
            shown = repr(payload)[:40]
            span = (
                f" between {block.minimum:g} and {block.maximum:g}"
                if block.minimum is not None and block.maximum is not None
                else ""
            )
            raise user_error(f"{label}: expected a finite number{span}; got {shown}.", "setting")
        return original(payload)

    block.preprocess = preprocess  # type: ignore[method-assign]


def harden_inputs(demo: gr.Blocks) -> gr.Blocks:
    """Applied once by ``app.build_app`` to every tab, so no tab can forget it.

    Gradio opens an uploaded image with PIL before the event handler runs: an empty, fake or
    damaged file then fails inside Gradio with an unspecific error, and a non-RGB file is converted
    (a 16-bit TIFF clipped to white, a huge grayscale bomb fully decoded). Here each image input
    first checks the file by content (:func:`pipelines.common.media.inspect_image`: non-empty,
    a real image, declared pixels within the limit) and answers with a specific message; inputs
    that hand a file path to the tab keep the file as uploaded (``image_mode=None``), because
    :func:`pipelines.common.media.load_image` converts every mode correctly. Sliders and number
    fields refuse non-numbers, NaN and infinity sent through the API with a message naming them
    (Gradio itself refuses values outside a slider's range, radio choices and checkbox choices).
    """
    for block in demo.blocks.values():
        if isinstance(block, gr.Image):
            if block.type == "filepath":
                block.image_mode = None
            _guard_image_input(block)
        elif isinstance(block, (gr.Slider, gr.Number)):
            _guard_number_input(block)
    return demo


def time_left_text(seconds: float) -> str:
    """``about 40 s left`` / ``about 3 min left`` (rounded: an estimate, not a promise)."""
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60):.0f} min left"
    return f"about {seconds / 3600:.1f} h left"


class TimeLeft:
    """The time left of a job from its measured rate: progress made over the last ``window``
    seconds (so a slow model load at the start does not skew the estimate of the frames)."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.window, self.clock = window, clock
        self.samples: collections.deque[tuple[float, float]] = collections.deque()

    def __call__(self, fraction: float) -> float | None:
        """Seconds left after reaching ``fraction``; None until a rate has been measured."""
        now = self.clock()
        self.samples.append((now, fraction))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()
        t0, f0 = self.samples[0]
        if now - t0 < 1.0 or fraction <= f0:
            return None
        return (1.0 - fraction) * (now - t0) / (fraction - f0)


def progress_reporter(progress: gr.Progress) -> Callable[[float, str], None]:
    """Adapt ``gr.Progress`` to the pipelines' ``progress(fraction, message)`` callbacks: each
    message gets the estimated time left, and each call is where a Stop takes effect."""
    time_left = TimeLeft()
    running = _current_job.get()

    def report(fraction: float, message: str = "") -> None:
        token = _current_job.set(running)  # a pipeline may report from a worker thread
        try:
            raise_if_stopped()
        finally:
            _current_job.reset(token)
        fraction = min(max(float(fraction), 0.0), 1.0)
        left = time_left(fraction)
        estimate = time_left_text(left) if left is not None else "estimating the time left"
        progress(fraction, desc=f"{message} · {estimate}" if message else estimate)

    return report


# --------------------------------------------------------------------------- owners (public mode)

def owner_of(request: gr.Request | None) -> str:
    """Who is asking, for per-visitor jobs (:mod:`pipelines.common.jobs`): the Gradio session
    (one page load in a browser, one ``gradio_client.Client``), the same through the page and
    the API; "local" without a request (a direct call)."""
    session = getattr(request, "session_hash", None)
    return f"s:{session}" if session else "local"


def default_first_seconds() -> int:
    """How much of a video a job uses unless told otherwise: the first 5 s on a CPU (each second
    of a clip costs minutes there), the whole clip (0) on a GPU."""
    from pipelines.common.device import pick_device

    return 5 if pick_device().type == "cpu" else 0


def length_control(what: str) -> gr.Slider:
    """The length of a video job: the first N seconds of ``what``, 0 for the whole clip, which
    the button beside it sets in one click."""
    slider = gr.Slider(
        0, math.ceil(LIMITS.max_video_seconds), value=default_first_seconds(), step=1, scale=4,
        label=f"Length: first seconds of the {what} (0 = whole clip)",
    )  # fmt: skip
    whole = gr.Button("Whole clip", size="sm", scale=1, min_width=100)
    whole.click(lambda: 0, outputs=slider, api_name=False, queue=False)
    return slider


@dataclass
class JobControls:
    """A long job's start button, its Stop button and the panel under them that shows the
    progress, the time left and, at the end, the job's note."""

    button: gr.Button
    stop: gr.Button
    status: gr.Markdown


JOB_STATUS_HINT = "<small>Progress and the time left show here while the job runs; Stop ends it.</small>"


def job_controls(label: str, status: str = JOB_STATUS_HINT) -> JobControls:
    """Lay out the start button, Stop beside it and the progress/note panel just below."""
    with gr.Row(equal_height=True):
        button = gr.Button(label, variant="primary", scale=4)
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=90)
    panel = gr.Markdown(status, min_height=56, elem_classes=["job-status"])
    return JobControls(button, stop, panel)


def run_job(
    controls: JobControls,
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    api_name: str,
    button: gr.Button | None = None,
) -> Any:
    """Wire ``button`` (default: the controls' main button) to ``fn`` on the GPU queue, with the
    progress shown in the controls' panel and the Stop button cancelling it. Returns the event."""
    event = (button or controls.button).click(
        fn, inputs=list(inputs), outputs=list(outputs), show_progress_on=[controls.status], **gpu_event(api_name)
    )
    controls.stop.click(request_stop, outputs=[controls.status], cancels=[event], queue=False, api_name=False)
    return event


def limits_markdown() -> str:
    return f"<small>Limits: {LIMITS.describe()}</small>"


def require(value: Any, what: str) -> Any:
    """Refuse a missing input with a message naming it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error(f"Please provide {what} first.")
    return value


# --------------------------------------------------------------------------- choosing a face


@dataclass
class FacePicker:
    """Whole, numbered face thumbnails and the photo with numbered frames; a click on either
    chooses the face (sets the face-number field)."""

    gallery: gr.Gallery
    overview: gr.Image
    boxes: gr.State  # the faces' boxes in the overview's pixels


def find_faces(photo: str | None, max_side: int) -> tuple[list[tuple[Any, str]], Any, dict, list[list[int]]]:
    """(numbered thumbnails, numbered overview, face-number update, boxes in overview pixels) of
    the faces in ``photo`` at the working size ``max_side`` of the tab's pipeline (largest first,
    the numbering the pipeline uses)."""
    if not photo:
        return [], None, gr.update(value=1, maximum=None), []
    from pipelines.animation.crop import fit
    from pipelines.common import faces
    from pipelines.common.media import load_image

    try:
        image = fit(load_image(photo), max_side)
    except NostalgiaError as exc:
        raise user_error(str(exc), "face picker") from exc
    boxes = faces.detect_faces(image)
    thumbs = [(faces.face_thumbnail(image, box, i + 1), f"Face {i + 1}") for i, box in enumerate(boxes)]
    overview, scaled = faces.numbered_overview(image, boxes)
    return thumbs, overview, gr.update(value=1, maximum=max(1, len(boxes))), scaled.tolist()


def face_picker(photo: gr.Image, number: gr.Number, max_side: int) -> FacePicker:
    """Lay out the face picker for ``photo`` and wire it to the face-number field ``number``."""
    with gr.Row(equal_height=True):
        gallery = gr.Gallery(
            label="Faces found (largest first): click one to choose it", columns=3, fit_columns=False, height=176,
            object_fit="contain", allow_preview=False, format="png", elem_classes=["face-thumbnails"], scale=3,
        )  # fmt: skip
        overview = gr.Image(label="Where each face is (click a face)", type="numpy", format="png",
                            interactive=False, height=176, scale=2, elem_classes=["face-overview"])  # fmt: skip
    boxes = gr.State([])

    def on_photo(path: str | None) -> tuple[Any, ...]:
        return find_faces(path, max_side)

    def from_gallery(evt: gr.SelectData) -> dict:
        return gr.update(value=int(evt.index) + 1)

    def from_overview(found: list[list[int]], evt: gr.SelectData) -> dict:
        from pipelines.common.faces import face_at

        x, y = evt.index
        chosen = face_at(found, float(x), float(y))
        return gr.update() if chosen is None else gr.update(value=chosen + 1)

    photo.change(on_photo, inputs=photo, outputs=[gallery, overview, number, boxes], api_name=False, queue=False)
    gallery.select(from_gallery, outputs=number, api_name=False, queue=False)
    overview.select(from_overview, inputs=boxes, outputs=number, api_name=False, queue=False)
    return FacePicker(gallery, overview, boxes)


def precision_control() -> gr.Radio:
    """The tab's "Advanced" accordion: the numeric precision of the networks
    (:mod:`pipelines.common.precision`); its value is passed to the pipeline as ``precision``."""
    from pipelines.common import precision
    from pipelines.common.device import pick_device

    with gr.Accordion("Advanced", open=False):
        return gr.Radio(
            [("auto (faster)", "auto"), ("exact (float32, the original's numbers)", "exact")],
            value="auto",
            label="Precision",
            info=f"On this machine {precision.describe(pick_device(), 'auto')}. Results differ slightly "
            "from exact (bounds in the README).",
        )
