"""Restore ("Bringing Old Photos Back to Life", microsoft/Bringing-Old-Photos-Back-to-Life): the released checkpoints.

The authors ship the weights as two zip archives attached to the repository's v1.0 GitHub release (README,
"Download the pretrained model"), unzipped inside ``Global/`` and ``Face_Enhancement/`` respectively:

- ``global_checkpoints.zip`` -> ``checkpoints/detection/FT_Epoch_latest.pt`` (a dict, UNet weights under
  ``"model_state"``) and ``checkpoints/restoration/<name>/latest_net_G.pth`` / ``latest_net_mapping_net.pth``
  (plain state dicts; each VAE file holds the whole generator, encoder and decoder);
- ``face_checkpoints.zip`` -> ``checkpoints/{Setting_9_epoch_100,FaceSR_512}/latest_net_G.pth``.

The Dockerfile and ansible.yaml of the repository name an older Azure blob copy of the same archives
(``facevc.blob.core.windows.net``), listed as a fallback. No sizes or hashes are published (None); no Hugging
Face mirror is listed because none could be confirmed.
"""

from __future__ import annotations

from weights.registry import Checkpoint, Component, Source

TAB_ORDER = 1  # position of this family in listings (the app's tab order)

HOMEPAGE = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life"
LICENCE = "MIT (repository LICENSE, Copyright (c) Microsoft Corporation)"
_RELEASE = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases/download/v1.0"
_BLOB = "https://facevc.blob.core.windows.net/zhanbo/old_photo/pretrain"
_BUILDERS = "pipelines.restoration.networks.builders"


def _global_sources(member: str) -> tuple[Source, ...]:
    return (
        Source(url=f"{_RELEASE}/global_checkpoints.zip", member=member, note="v1.0 release archive (README)"),
        Source(url=f"{_BLOB}/Global/checkpoints.zip", member=member, note="older Azure copy (Dockerfile); may be gone"),
    )


def _face_sources(member: str) -> tuple[Source, ...]:
    return (
        Source(url=f"{_RELEASE}/face_checkpoints.zip", member=member, note="v1.0 release archive (README)"),
        Source(url=f"{_BLOB}/Face_Enhancement/checkpoints.zip", member=member, note="older Azure copy (Dockerfile); may be gone"),
    )


def _restoration(name: str, folder: str, filename: str, component: str, builder: str, description: str) -> Checkpoint:
    return Checkpoint(
        id=f"bopbtl/{name}",
        family="bopbtl",
        filename=filename,
        description=description,
        licence=LICENCE,
        components=(Component(name=component, builder=f"{_BUILDERS}:{builder}"),),
        sources=_global_sources(f"checkpoints/restoration/{folder}/{filename}"),
        homepage=HOMEPAGE,
        notes=f"Global/checkpoints/restoration/{folder}/{filename} of the original layout.",
    )


def _face(name: str, folder: str, builder: str, description: str) -> Checkpoint:
    return Checkpoint(
        id=f"bopbtl/{name}",
        family="bopbtl",
        filename="latest_net_G.pth",
        description=description,
        licence=LICENCE,
        components=(Component(name="generator", builder=f"{_BUILDERS}:{builder}"),),
        sources=_face_sources(f"checkpoints/{folder}/latest_net_G.pth"),
        homepage=HOMEPAGE,
        notes=f"Face_Enhancement/checkpoints/{folder}/latest_net_G.pth of the original layout; spectral-norm convs "
        "stored as weight_orig/weight_u/weight_v.",
    )


CHECKPOINTS: list[Checkpoint] = [
    Checkpoint(
        id="bopbtl/scratch_detector",
        family="bopbtl",
        filename="FT_Epoch_latest.pt",
        description="Scratch-detection UNet (stage 1a): finds scratches, tears and dust on the photo; its mask "
        "drives scratch-mode restoration.",
        licence=LICENCE,
        components=(Component(name="unet", builder=f"{_BUILDERS}:scratch_detector", path=("model_state",)),),
        sources=_global_sources("checkpoints/detection/FT_Epoch_latest.pt"),
        homepage=HOMEPAGE,
        notes=(
            "Global/checkpoints/detection/FT_Epoch_latest.pt; other entries of the dict (optimizer state) are ignored. "
            "Not pinned, one unconfirmed third-party statement only: a photo-enhancer registry gives this member sha256 "
            "b2d7ab04e9b3885c6b1991bb7a0b823129dd6e3ac078a9fd059ebd2a7ba59a95, about 420 MB, in an archive of about 2 GB."
        ),
    ),
    _restoration(
        "vae_a_quality",
        "VAE_A_quality",
        "latest_net_G.pth",
        "generator",
        "vae",
        "VAE_A (old-photo domain autoencoder); its encoder maps the photo to the latent space in both modes.",
    ),
    _restoration(
        "vae_b_quality",
        "VAE_B_quality",
        "latest_net_G.pth",
        "generator",
        "vae",
        "VAE_B (clean-photo domain autoencoder) for quality restoration; its decoder renders the restored photo.",
    ),
    _restoration(
        "vae_b_scratch",
        "VAE_B_scratch",
        "latest_net_G.pth",
        "generator",
        "vae",
        "VAE_B decoder used with scratch restoration.",
    ),
    _restoration(
        "mapping_quality",
        "mapping_quality",
        "latest_net_mapping_net.pth",
        "mapping",
        "mapping_quality",
        "Latent mapping for unstructured degradation (noise, blur, fading, film grain): no scratch mask.",
    ),
    _restoration(
        "mapping_scratch",
        "mapping_scratch",
        "latest_net_mapping_net.pth",
        "mapping",
        "mapping_scratch",
        "Latent mapping with a masked non-local block: fills scratches from the rest of the photo.",
    ),
    _restoration(
        "mapping_patch_attention",
        "mapping_Patch_Attention",
        "latest_net_mapping_net.pth",
        "mapping",
        "mapping_patch_attention",
        "Latent mapping with multi-scale patch attention for high-resolution scratched photos (run.py --HR).",
    ),
    _face(
        "face_enhancer_256",
        "Setting_9_epoch_100",
        "face_enhancer_256",
        "SPADE face enhancer (stage 3) for 256x256 aligned faces.",
    ),
    _face(
        "face_enhancer_512",
        "FaceSR_512",
        "face_enhancer_512",
        "SPADE face enhancer for 512x512 aligned faces (run.py --HR).",
    ),
]
