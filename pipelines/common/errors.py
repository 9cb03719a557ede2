"""Errors a user can act on. The UI turns them into ``gr.Error``; the CLI prints them.

Anything else escaping a pipeline is a bug and is reported as such, never shown as a result.
"""

from __future__ import annotations


class NostalgiaError(Exception):
    """Base class: the message is written for the user and says what to do."""


class InputError(NostalgiaError, ValueError):
    """The user's input cannot be processed (unreadable, too large, no face, ...)."""


class ModelUnavailableError(NostalgiaError):
    """A checkpoint is missing or refused; the message says how to get it."""


class OutOfMemoryError(NostalgiaError, MemoryError):
    """The device ran out of memory; the message suggests a smaller setting."""


class StoppedError(NostalgiaError):
    """The user stopped the job (its progress callback raises this at the next step)."""
