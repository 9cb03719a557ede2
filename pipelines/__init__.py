"""Nostalgia Studio's Python API: one function per task, importable from here.

    from pipelines import restore, colorize, animate, nostalgia, story

    result = restore("grandma.jpg", with_scratch=True)           # RestoreResult (.image: RGB uint8)
    color = colorize(result.image, render_factor=30)              # RGB uint8 array
    clip = animate("grandma.jpg", "driving.mp4")                  # AnimateOutput (.video: Path)
    chain = nostalgia("grandma.jpg", all_faces=True)              # NostalgiaResult (.image, .video)
    tale = story("grandma.jpg", "This is Anna, in 1921.")         # StoryResult (.video: Path)

``nostalgia`` is also the name of the subpackage ``pipelines.nostalgia``, which Python binds on
``pipelines`` as soon as any of its modules is imported; so that name is the package itself, made
callable: ``nostalgia(photo, ...)`` runs :func:`pipelines.nostalgia.pipeline.nostalgia` whatever was
imported first.

Names resolve lazily (module ``__getattr__``): ``import pipelines`` costs nothing, and torch and the
networks are imported only when a function is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> (module, attribute)
_API: dict[str, tuple[str, str]] = {
    # Restore (Bringing Old Photos Back to Life)
    "restore": ("pipelines.restoration.pipeline", "restore"),
    "RestorationPipeline": ("pipelines.restoration.pipeline", "RestorationPipeline"),
    # Colorize (DeOldify)
    "colorize": ("pipelines.colorization.pipeline", "colorize"),
    "colorize_video": ("pipelines.colorization.pipeline", "colorize_video"),
    "colorize_sweep": ("pipelines.colorization.pipeline", "colorize_sweep"),
    "Colorizer": ("pipelines.colorization.pipeline", "Colorizer"),
    # Animate (Thin-Plate Spline Motion Model)
    "animate": ("pipelines.animation.pipeline", "animate"),
    "TPSMMPipeline": ("pipelines.animation.pipeline", "TPSMMPipeline"),
    # Dance (Everybody Dance Now)
    "create_target": ("pipelines.dance.pipeline", "create_target"),
    "train_target": ("pipelines.dance.pipeline", "train_target"),
    "training_status": ("pipelines.dance.pipeline", "training_status"),
    "transfer": ("pipelines.dance.pipeline", "transfer"),
    "list_targets": ("pipelines.dance.pipeline", "list_targets"),
    # Time Machine (a person's portraits in past eras)
    "create_person": ("pipelines.time_machine.pipeline", "create_person"),
    "train_person": ("pipelines.time_machine.pipeline", "train_person"),
    "person_status": ("pipelines.time_machine.pipeline", "person_status"),
    "stop_person": ("pipelines.time_machine.pipeline", "stop_person"),
    "generate_portraits": ("pipelines.time_machine.pipeline", "generate"),
    "delete_person": ("pipelines.time_machine.pipeline", "delete_person"),
    "list_persons": ("pipelines.time_machine.pipeline", "list_persons"),
    # Nostalgia (the one-click chain) and Story
    "nostalgia": ("pipelines.nostalgia", ""),  # the package itself, callable (see its docstring)
    "NostalgiaPipeline": ("pipelines.nostalgia.pipeline", "NostalgiaPipeline"),
    "NostalgiaOptions": ("pipelines.nostalgia.config", "NostalgiaOptions"),
    "story": ("pipelines.nostalgia.story", "story"),
    "StoryOptions": ("pipelines.nostalgia.config", "StoryOptions"),
    # Shared helpers and errors
    "load_image": ("pipelines.common.media", "load_image"),
    "NostalgiaError": ("pipelines.common.errors", "NostalgiaError"),
    "InputError": ("pipelines.common.errors", "InputError"),
    "ModelUnavailableError": ("pipelines.common.errors", "ModelUnavailableError"),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _API[name]
    except KeyError:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
