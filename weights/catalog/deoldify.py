"""DeOldify's three published generator files (jantic/DeOldify, "Completed Generator Weights").

Each file is read by fastai v1 ``Learner.load``: a flat state dict, or ``{'model': sd, 'opt': ...}``
(both accepted, strict). The sizes and sha256s are those of the Hugging Face LFS pointers of the
mirrors listed below (spensercai/DeOldify holds all three, databuzzword/deoldify-artistic the
artistic one), and the same values are pinned by independent projects that downloaded the files
from DeepAI and Dropbox; every source listed serves those bytes, and a source that serves anything
else is refused by the hash check and the next one is tried. The stable link first is the one the
DeOldify README gives today (``axsd2g85uyixaho``); the older ``usf7uifrctqw9rl`` link follows.
"""

from __future__ import annotations

from weights.registry import Checkpoint, Component, Source

TAB_ORDER = 2  # position of this family in listings (the app's tab order)

HOMEPAGE = "https://github.com/jantic/DeOldify"
LICENCE = "MIT (code and weights; see the DeOldify README, section Licence)"
_ALT = (("model",),)
_MIRROR = "spensercai/DeOldify"
_VIDEO_REVISION = "448956a51080c3e5fb29a4e0f3e09457afd94eb0"  # the commit other projects pin for the video file


def _generator(variant: str) -> tuple[Component, ...]:
    return (
        Component(
            name="generator",
            builder="pipelines.colorization.networks:build_generator",
            builder_args=(("name", variant),),
            path=(),
            alt_paths=_ALT,
        ),
    )


CHECKPOINTS: list[Checkpoint] = [
    Checkpoint(
        id="deoldify/artistic",
        family="deoldify",
        filename="ColorizeArtistic_gen.pth",
        description=(
            "DeOldify artistic generator: U-Net 'Deep' on ResNet-34, nf_factor 1.5, self-attention, spectral norm. "
            "Most vivid colours (about 255 MB, 378 tensors)."
        ),
        licence=LICENCE,
        components=_generator("artistic"),
        sources=(
            Source(url="https://data.deepai.org/deoldify/ColorizeArtistic_gen.pth", note="link in the DeOldify README"),
            Source(hf_repo=_MIRROR, hf_file="ColorizeArtistic_gen.pth", note="Hugging Face mirror"),
            Source(
                hf_repo="databuzzword/deoldify-artistic",
                hf_file="ColorizeArtistic_gen.pth",
                revision="aae6daa766bab0496224bf01a4b7959941703bce",
                note="Hugging Face mirror",
            ),
        ),
        sha256="3f750246fa220529323b85a8905f9b49c0e5d427099185334d048fb5b5e22477",
        size=255144681,
        homepage=HOMEPAGE,
        notes="Flat fp32 state dict (255.07 MB of tensors).",
    ),
    Checkpoint(
        id="deoldify/stable",
        family="deoldify",
        filename="ColorizeStable_gen.pth",
        description=(
            "DeOldify stable generator: U-Net 'Wide' on ResNet-101, nf_factor 2, self-attention, spectral norm. "
            "Fewer glitches, best for portraits and landscapes (about 874 MB, 754 tensors)."
        ),
        licence=LICENCE,
        components=_generator("stable"),
        sources=(
            Source(url="https://www.dropbox.com/s/axsd2g85uyixaho/ColorizeStable_gen.pth?dl=1", note="current README link"),
            Source(url="https://www.dropbox.com/s/usf7uifrctqw9rl/ColorizeStable_gen.pth?dl=1", note="older README link"),
            Source(hf_repo=_MIRROR, hf_file="ColorizeStable_gen.pth", note="Hugging Face mirror"),
        ),
        sha256="ca9cd7f43fb8b222c9a70f7b292e305a000694b0ff9d2ae4a6747b1a2e1ee5af",
        size=874066230,
        homepage=HOMEPAGE,
        notes="Flat fp32 state dict (873.92 MB of tensors).",
    ),
    Checkpoint(
        id="deoldify/video",
        family="deoldify",
        filename="ColorizeVideo_gen.pth",
        description=(
            "DeOldify video generator: same network as stable, NoGAN-trained for flicker-free film "
            "(about 874 MB, 754 tensors)."
        ),
        licence=LICENCE,
        components=_generator("video"),
        sources=(
            Source(url="https://data.deepai.org/deoldify/ColorizeVideo_gen.pth", note="link in the DeOldify README"),
            Source(hf_repo=_MIRROR, hf_file="ColorizeVideo_gen.pth", revision=_VIDEO_REVISION, note="Hugging Face mirror"),
        ),
        sha256="e3d98bb6a222354c79f95485c2f078a89dc724e9183662506d9e0f5aafac83ad",
        size=874066230,
        homepage=HOMEPAGE,
        notes="Flat fp32 state dict (873.92 MB of tensors), the stable network's layout.",
    ),
]
