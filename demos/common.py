"""What every tab shares: the GPU queue, error translation, progress, limits text.

Tabs stay thin: they lay out components and wire events to a pipeline call wrapped by
:func:`job`, which turns user errors into ``gr.Error`` and reports progress.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from pipelines.common.device import gpu
from pipelines.common.errors import NostalgiaError
from pipelines.common.limits import LIMITS
from pipelines.common.media import inspect_image

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


def job(fn: F) -> F:
    """Wrap an event handler: a :class:`NostalgiaError` becomes ``gr.Error`` with its message and
    one log line; any other exception is logged with its traceback and reported as an internal
    error (never a stack trace in the UI, never a silent empty output). On ZeroGPU the handler
    runs under ``spaces.GPU``."""
    run = gpu(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
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


def progress_reporter(progress: gr.Progress) -> Callable[[float, str], None]:
    """Adapt ``gr.Progress`` to the pipelines' ``progress(fraction, message)`` callbacks."""

    def report(fraction: float, message: str = "") -> None:
        progress(min(max(float(fraction), 0.0), 1.0), desc=message)

    return report


# --------------------------------------------------------------------------- owners (public mode)

def owner_of(request: gr.Request | None) -> str:
    """Who is asking, for per-visitor jobs (:mod:`pipelines.common.jobs`): the Gradio session
    (one page load in a browser, one ``gradio_client.Client``), the same through the page and
    the API; "local" without a request (a direct call)."""
    session = getattr(request, "session_hash", None)
    return f"s:{session}" if session else "local"


def limits_markdown() -> str:
    return f"<small>Limits: {LIMITS.describe()}</small>"


def require(value: Any, what: str) -> Any:
    """Refuse a missing input with a message naming it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error(f"Please provide {what} first.")
    return value
