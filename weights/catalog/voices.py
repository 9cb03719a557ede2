"""Story: the neural narration voice (optional; espeak-ng speaks otherwise).

One Piper voice, ``en_US-lessac-medium`` of rhasspy/piper-voices on Hugging Face: an ONNX VITS model
and its ``.onnx.json`` config (sample rate, phoneme map), run by the ``piper-tts`` package
(optional, ``pip install -r requirements-voice.txt``). The files are fetched at the repository's
``v1.0.0`` tag into ``<weights cache>/voices/en_US-lessac-medium/``, where
:func:`pipelines.nostalgia.story.neural_voice` finds them.

Sizes and sha256 are the Hugging Face LFS values of these files, as quoted identically by several
independent projects (the voices.json of the repository lists the same sizes with md5
``2fc642b535197b6305c7c8f92dc8b24f`` / ``c1f2b7bddefe113f3255ff9ef234cfd3``); they could not be
fetched from here, so a mismatch makes the download fail rather than pass silently.

No fixture: an ONNX voice is not a state dict the fixture formula can fill, and noise would not be
speech. While the voice is absent Story narrates with espeak-ng (``weights list`` and ``weights
fixture`` say so).
"""

from __future__ import annotations

from weights.registry import Checkpoint, RepoFile, Source

TAB_ORDER = 6  # the Nostalgia tab's Story mode: listed after the face models

_FOLDER = "en/en_US/lessac/medium"
_FILES = (
    RepoFile(
        f"{_FOLDER}/en_US-lessac-medium.onnx.json",
        size=4_885,
        sha256="efe19c417bed055f2d69908248c6ba650fa135bc868b0e6abb3da181dab690a0",
        local="en_US-lessac-medium.onnx.json",
    ),
    RepoFile(
        f"{_FOLDER}/en_US-lessac-medium.onnx",
        size=63_201_294,
        sha256="5efe09e69902187827af646e1a6e9d269dee769f9877d17b16b1b46eeaaf019f",
        local="en_US-lessac-medium.onnx",
    ),
)

CHECKPOINTS: list[Checkpoint] = [
    Checkpoint(
        id="voices/en_US-lessac-medium",
        family="voices",
        filename="en_US-lessac-medium.onnx",
        description=(
            "Piper neural voice en_US lessac (medium quality, 22.05 kHz, one speaker): Story's narration when "
            "piper-tts is installed; espeak-ng otherwise."
        ),
        licence=(
            "Blizzard 2013 Lessac research licence (the data set's terms, linked from the voice's MODEL_CARD: "
            "research use; review before any commercial use). piper-tts itself: GPL-3.0-or-later from 1.3, MIT up to 1.2"
        ),
        components=(),
        sources=(Source(hf_repo="rhasspy/piper-voices", revision="v1.0.0", note="rhasspy/piper-voices, tag v1.0.0"),),
        size=sum(f.size or 0 for f in _FILES),
        homepage="https://huggingface.co/rhasspy/piper-voices/blob/v1.0.0/en/en_US/lessac/medium/MODEL_CARD",
        notes="Model card: en/en_US/lessac/medium/MODEL_CARD (data set: Lessac Blizzard 2013).",
        files=_FILES,
        no_fixture="an ONNX voice is not filled by the fixture formula; while it is absent, Story narrates with espeak-ng",
    ),
]
