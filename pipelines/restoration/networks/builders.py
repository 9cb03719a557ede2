"""Zero-argument builders named by the weights registry (``weights/catalog/bopbtl.py``), one per published file.

Each returns the randomly initialised network whose ``state_dict()`` keys and shapes are those of the file.
"""

from __future__ import annotations

from pipelines.restoration.config import FaceGeneratorConfig
from pipelines.restoration.networks.detector import ScratchDetectorUNet
from pipelines.restoration.networks.mapping import MappingModel, MappingModelPatchAttention, MappingModelWithMask
from pipelines.restoration.networks.spade import SPADEFaceGenerator
from pipelines.restoration.networks.vae import GlobalGeneratorDCDCv2


def scratch_detector() -> ScratchDetectorUNet:
    return ScratchDetectorUNet()


def vae() -> GlobalGeneratorDCDCv2:
    """VAE_A_quality, VAE_B_quality and VAE_B_scratch share one architecture."""
    return GlobalGeneratorDCDCv2()


def mapping_quality() -> MappingModel:
    return MappingModel()


def mapping_scratch() -> MappingModelWithMask:
    return MappingModelWithMask()


def mapping_patch_attention() -> MappingModelPatchAttention:
    return MappingModelPatchAttention()


def face_enhancer_256() -> SPADEFaceGenerator:
    return SPADEFaceGenerator(FaceGeneratorConfig(load_size=256))


def face_enhancer_512() -> SPADEFaceGenerator:
    return SPADEFaceGenerator(FaceGeneratorConfig(load_size=512))
