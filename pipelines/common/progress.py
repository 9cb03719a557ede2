"""The progress callback every pipeline accepts: ``report(fraction done in 0..1, message)``.

One definition, so the UI (``gr.Progress``), the command line and tests pass the same kind of
function to any pipeline. (Byte counts of downloads are a different signal: ``weights.store``.)
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[float, str], None]
