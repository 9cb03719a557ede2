"""What every tab shares: the GPU queue, error translation, progress, limits text.

Tabs stay thin: they lay out components and wire events to a pipeline call wrapped by
:func:`job`, which turns user errors into ``gr.Error`` and reports progress.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from pipelines.common.device import gpu
from pipelines.common.errors import NostalgiaError
from pipelines.common.limits import LIMITS

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


def job(fn: F) -> F:
    """Wrap an event handler: a :class:`NostalgiaError` becomes ``gr.Error`` with its message;
    any other exception is logged and reported as an internal error (never a stack trace in the
    UI, never a silent empty output). On ZeroGPU the handler runs under ``spaces.GPU``."""
    run = gpu(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except gr.Error:
            raise
        except NostalgiaError as exc:
            raise gr.Error(str(exc), duration=None) from exc
        except Exception as exc:
            log.exception("internal error in %s", fn.__name__)
            raise gr.Error(
                f"Internal error ({type(exc).__name__}). The input was not processed; please report this."
            ) from exc

    return wrapper  # type: ignore[return-value]


def progress_reporter(progress: gr.Progress) -> Callable[[float, str], None]:
    """Adapt ``gr.Progress`` to the pipelines' ``progress(fraction, message)`` callbacks."""

    def report(fraction: float, message: str = "") -> None:
        progress(min(max(float(fraction), 0.0), 1.0), desc=message)

    return report


def limits_markdown() -> str:
    return f"<small>Limits: {LIMITS.describe()}</small>"


def require(value: Any, what: str) -> Any:
    """Refuse a missing input with a message naming it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error(f"Please provide {what} first.")
    return value
