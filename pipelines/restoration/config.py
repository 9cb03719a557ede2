"""Configurations of the published "Bringing Old Photos Back to Life" networks and of stage 1, as data.

The values are the ones the original scripts force (``Global/test.py:parameter_set``, ``Global/detection.py``,
``Face_Enhancement/test_face.py`` with ``run.py``'s options), so building a network from its config reproduces
the published checkpoint's keys and shapes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorConfig:
    """Scratch-detection UNet (``Global/detection_models/networks.py:UNet`` as called by detection.py)."""

    in_channels: int = 1
    out_channels: int = 1
    depth: int = 4
    conv_num: int = 2
    wf: int = 6
    leaky_slope: float = 0.2


@dataclass(frozen=True)
class VAEConfig:
    """``GlobalGenerator_DCDCv2`` with test.py's options (n_downsample_global 3, mc 64, k_size 4, start_r 1)."""

    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    mc: int = 64
    k_size: int = 4
    n_downsampling: int = 3
    start_r: int = 1
    spatio_size: int = 64
    feat_dim: int = -1


@dataclass(frozen=True)
class MappingConfig:
    """Latent mapping networks (``Mapping_Model``, ``Mapping_Model_with_mask``, ``Mapping_Model_with_mask_2``)."""

    map_mc: int = 512
    n_blocks: int = 6
    dilation: int = 1
    feat_dim: int = -1
    softmax_temperature: float = 1.0
    correlation_renormalize: bool = True
    patch_sizes: tuple[int, ...] = (8, 4, 2)  # --HR multi-scale patch attention


@dataclass(frozen=True)
class FaceGeneratorConfig:
    """SPADE face enhancer (``Face_Enhancement/models/networks/generator.py:SPADEGenerator``).

    ``load_size`` 256 is ``Setting_9_epoch_100``, 512 is ``FaceSR_512`` (``--HR``); the output is always
    ``load_size`` square, whatever the input size.
    """

    load_size: int = 256
    ngf: int = 64
    spade_hidden: int = 128
    num_upsampling_layers: int = 5  # "normal"
    aspect_ratio: float = 1.0

    @property
    def latent_size(self) -> tuple[int, int]:
        """(height, width) of the first feature map: ``load_size // 2**5`` (8 or 16)."""
        sw = self.load_size // (2**self.num_upsampling_layers)
        sh = round(sw / self.aspect_ratio)
        return sh, sw


@dataclass(frozen=True)
class Stage1Config:
    """Pre/post-processing constants of stage 1 (detection.py ``--input_size full_size`` and test.py ``Full``)."""

    detect_multiple: int = 16  # stage 1a: W, H rounded to multiples of 16 (PIL bicubic)
    detect_short_side: int = 256  # network input: short side 256, both sides multiples of 16
    detect_threshold: float = 0.4  # mask = sigmoid(logits) >= 0.4
    restore_multiple: int = 4  # stage 1b quality: W, H rounded to multiples of 4 (PIL bilinear)
    hr_mask_dilation: int = 3  # --HR: cv2.dilate iterations (3x3 ones) of the scratch mask
    # Masked non-local attention: query rows per block (None = derived from attention_budget_bytes).
    attention_chunk: int | None = None
    attention_budget_bytes: int = 256 << 20


@dataclass(frozen=True)
class GlobalCheckpoints:
    """Registry ids of the stage-1 networks for one restoration mode."""

    vae_a: str
    mapping: str
    vae_b: str


QUALITY = GlobalCheckpoints("bopbtl/vae_a_quality", "bopbtl/mapping_quality", "bopbtl/vae_b_quality")
SCRATCH = GlobalCheckpoints("bopbtl/vae_a_quality", "bopbtl/mapping_scratch", "bopbtl/vae_b_scratch")
SCRATCH_HR = GlobalCheckpoints("bopbtl/vae_a_quality", "bopbtl/mapping_patch_attention", "bopbtl/vae_b_scratch")
DETECTOR_CHECKPOINT = "bopbtl/scratch_detector"
FACE_CHECKPOINTS: dict[int, str] = {
    256: "bopbtl/face_enhancer_256",
    512: "bopbtl/face_enhancer_512",
}
