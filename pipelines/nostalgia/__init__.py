"""Nostalgia: the one-click chain (restore, colorize, animate the faces of an old photo) and Story mode.

:mod:`~pipelines.nostalgia.analysis` holds the pure per-photo decisions (colour? scratches?),
:mod:`~pipelines.nostalgia.config` the options, :mod:`~pipelines.nostalgia.motion` the multi-face
animation, :mod:`~pipelines.nostalgia.pipeline` the chain and :mod:`~pipelines.nostalgia.story` the
narrated video. Nothing heavy is imported here.
"""
