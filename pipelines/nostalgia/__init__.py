"""Nostalgia: the one-click chain (restore, colorize, animate the faces of an old photo) and Story mode.

:mod:`~pipelines.nostalgia.analysis` holds the pure per-photo decisions (colour? scratches?),
:mod:`~pipelines.nostalgia.config` the options, :mod:`~pipelines.nostalgia.motion` the multi-face
animation, :mod:`~pipelines.nostalgia.pipeline` the chain and :mod:`~pipelines.nostalgia.story` the
narrated video. Nothing heavy is imported here.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    """``pipelines.nostalgia(photo, ...)`` runs the chain: ``from pipelines import nostalgia`` binds this
    package (Python sets the subpackage as an attribute of ``pipelines``), so the package is the API."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from pipelines.nostalgia.pipeline import nostalgia

        return nostalgia(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
