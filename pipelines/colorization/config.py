"""The published DeOldify generators as data, and the constants of the original pipeline.

Every value here comes from jantic/DeOldify (``deoldify/generators.py``, ``visualize.py``,
``filters.py``); the reference cases in ``shared/reference/deoldify`` pin them.
"""

from __future__ import annotations

from dataclasses import dataclass

# ImageNet statistics used by fastai's ``imagenet_stats`` normalisation of the gray input.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# The square the photo is stretched to has side render_factor * RENDER_BASE.
RENDER_BASE = 16
RENDER_FACTOR_MIN = 7
RENDER_FACTOR_MAX = 45
DEFAULT_RENDER_FACTOR_IMAGE = 35  # MasterFilter default for stills
DEFAULT_RENDER_FACTOR_VIDEO = 21  # get_video_colorizer default


@dataclass(frozen=True)
class GeneratorConfig:
    """One published generator: which U-Net, on which ResNet, with which widths.

    ``unet`` is ``"deep"`` (``DynamicUnetDeep``: two convs per decoder block, widths scaled by
    ``nf_factor``) or ``"wide"`` (``DynamicUnetWide``: one conv per block, 512*nf_factor wide).
    """

    name: str
    unet: str
    encoder: str
    nf_factor: float
    checkpoint_id: str
    summary: str
    n_classes: int = 3
    self_attention: bool = True
    y_range: tuple[float, float] = (-3.0, 3.0)


ARTISTIC = GeneratorConfig(
    name="artistic",
    unet="deep",
    encoder="resnet34",
    nf_factor=1.5,
    checkpoint_id="deoldify/artistic",
    summary="Bold, vivid colours; most interesting results, may need render-factor tuning.",
)
STABLE = GeneratorConfig(
    name="stable",
    unet="wide",
    encoder="resnet101",
    nf_factor=2.0,
    checkpoint_id="deoldify/stable",
    summary="Safer, less saturated colours; best for landscapes and portraits, fewer odd tints.",
)
VIDEO = GeneratorConfig(
    name="video",
    unet="wide",
    encoder="resnet101",
    nf_factor=2.0,
    checkpoint_id="deoldify/video",
    summary="Trained for temporal consistency (NoGAN); smoothest results on film, least vivid.",
)

VARIANTS: dict[str, GeneratorConfig] = {c.name: c for c in (ARTISTIC, STABLE, VIDEO)}


def variant(name: str) -> GeneratorConfig:
    """The config of a published generator by name (``artistic``, ``stable``, ``video``)."""
    try:
        return VARIANTS[name]
    except KeyError:
        from pipelines.common.errors import InputError

        raise InputError(f"Unknown colorization model {name!r}; choose one of {', '.join(VARIANTS)}.") from None
