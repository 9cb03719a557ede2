"""The Gradio tabs, UI only: one module per tab, in the order they appear.

Each tab module defines ``TITLE`` (tab label), ``CHECKPOINTS`` (registry ids it uses, for the
fixture banner) and ``build() -> None`` (lays out the tab's components and events; called inside
``gr.Tab``). Pipelines do the work; a tab only lays out inputs and formats results.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# Fixed order of the tabs; "models" is always last.
TAB_MODULES = ("nostalgia", "restore", "colorize", "animate", "dance", "time_machine", "models")


def registered_tabs() -> list[ModuleType]:
    """The tab modules that exist, in the fixed order."""
    tabs = []
    for name in TAB_MODULES:
        module_name = f"demos.{name}"
        if importlib.util.find_spec(module_name) is not None:
            tabs.append(importlib.import_module(module_name))
    return tabs
