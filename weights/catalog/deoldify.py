"""DeOldify's three published generator files (jantic/DeOldify, "Completed Generator Weights").

Each file is read by fastai v1 ``Learner.load``: a flat state dict, or ``{'model': sd, 'opt': ...}``
(both accepted, strict). Their published sizes (about 255 MB for artistic, 874 MB for stable and
video) equal the fp32 state-dict sizes of the networks, so they are most likely flat state dicts;
exact byte counts and hashes are not published, hence ``size``/``sha256`` are None.
"""

from __future__ import annotations

from weights.registry import Checkpoint, Component, Source

HOMEPAGE = "https://github.com/jantic/DeOldify"
LICENCE = "MIT (code and weights; see the DeOldify README, section Licence)"
_ALT = (("model",),)


def _generator(builder: str) -> tuple[Component, ...]:
    return (Component(name="generator", builder=f"pipelines.colorization.networks:{builder}", path=(), alt_paths=_ALT),)


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
        components=_generator("build_artistic"),
        sources=(
            Source(url="https://data.deepai.org/deoldify/ColorizeArtistic_gen.pth", note="link in the DeOldify README"),
        ),
        homepage=HOMEPAGE,
        notes="Published size about 255 MB (state dict 255.07 MB in fp32); exact bytes and sha256 not published.",
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
        components=_generator("build_stable"),
        sources=(
            Source(url="https://www.dropbox.com/s/usf7uifrctqw9rl/ColorizeStable_gen.pth?dl=1", note="current README link"),
            Source(url="https://www.dropbox.com/s/axsd2g85uyixaho/ColorizeStable_gen.pth?dl=1", note="earlier README link"),
            Source(hf_repo="spensercai/DeOldify", hf_file="ColorizeStable_gen.pth", note="community mirror"),
        ),
        homepage=HOMEPAGE,
        notes="Published size about 874 MB (state dict 873.92 MB in fp32); exact bytes and sha256 not published.",
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
        components=_generator("build_video"),
        sources=(Source(url="https://data.deepai.org/deoldify/ColorizeVideo_gen.pth", note="link in the DeOldify README"),),
        homepage=HOMEPAGE,
        notes="Published size about 874 MB (state dict 873.92 MB in fp32); exact bytes and sha256 not published.",
    ),
]
