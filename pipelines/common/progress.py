"""The progress callback every pipeline accepts: ``report(fraction done in 0..1, message)``, and
the stop points of long jobs.

One definition, so the UI (``gr.Progress``), the command line and tests pass the same kind of
function to any pipeline. (Byte counts of downloads are a different signal: ``weights.store``.)

Stopping: in the app each ``report`` call is also where a user's Stop takes effect (it raises
:class:`~pipelines.common.errors.StoppedError`). Loops whose steps take seconds but report less
often (a hand network's scales, the frames of a chunk, a video's frames between two reports)
call :func:`stop_point` at each step, so a Stop ends the job within one step's time. The UI
installs the check (:func:`set_stop_check`); without it (command line, scripts, tests) a stop
point does nothing and Ctrl-C stops the process as usual. Pipelines never import the UI.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[float, str], None]

_stop_check: Callable[[], None] | None = None


def set_stop_check(check: Callable[[], None] | None) -> None:
    """Install the function :func:`stop_point` calls: it raises ``StoppedError`` when the job
    running on this thread was asked to stop (the app's is ``demos.common.raise_if_stopped``)."""
    global _stop_check
    _stop_check = check


def stop_point() -> None:
    """Where a long loop may be stopped: raises ``StoppedError`` if the current job's user pressed
    Stop; otherwise (or outside the app) returns at once. Cheap: call it once per frame, face or scale."""
    if _stop_check is not None:
        _stop_check()
