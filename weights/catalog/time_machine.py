"""Time Machine: the base text-to-image model that each person's LoRA is trained on.

Stable Diffusion v1.5 in the diffusers layout, from the ``stable-diffusion-v1-5`` organisation's
copy of the original RunwayML repository (same history; the commit below is the one diffusers
users have pinned since 2022). Only what generation and LoRA training need is fetched: the
configs, the CLIP tokenizer, and the half-precision safetensors of the UNet, the text encoder and
the VAE (stored under the plain names, which diffusers loads and upcasts). The safety checker
(1.2 GB) and the full-precision and ``.ckpt`` copies are not fetched. Sizes are those of the
fp16 files at this commit; their sha256 are not recorded here, so a download is checked by size.
"""

from __future__ import annotations

from weights.registry import Checkpoint, RepoFile, Source

TAB_ORDER = 5  # position of this family in listings (the app's tab order)

_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
_REVISION = "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"

_FILES = (
    RepoFile("model_index.json"),
    RepoFile("scheduler/scheduler_config.json"),
    RepoFile("text_encoder/config.json"),
    RepoFile("text_encoder/model.fp16.safetensors", size=246_144_864, local="text_encoder/model.safetensors"),
    RepoFile("tokenizer/merges.txt"),
    RepoFile("tokenizer/special_tokens_map.json"),
    RepoFile("tokenizer/tokenizer_config.json"),
    RepoFile("tokenizer/vocab.json"),
    RepoFile("unet/config.json"),
    RepoFile(
        "unet/diffusion_pytorch_model.fp16.safetensors",
        size=1_719_125_304,
        local="unet/diffusion_pytorch_model.safetensors",
    ),
    RepoFile("vae/config.json"),
    RepoFile(
        "vae/diffusion_pytorch_model.fp16.safetensors",
        size=167_335_342,
        local="vae/diffusion_pytorch_model.safetensors",
    ),
)

CHECKPOINTS: list[Checkpoint] = [
    Checkpoint(
        id="time_machine/sd15",
        family="time_machine",
        filename="model_index.json",
        description=(
            "Stable Diffusion v1.5 (latent diffusion: 860M-parameter UNet, CLIP ViT-L/14 text encoder, KL VAE; "
            "512 px), in the diffusers layout, fp16 files (about 2.1 GB). The Time Machine tab trains a small LoRA "
            "(a few MB) per person on it, DreamBooth-style, and generates that person's era portraits with it."
        ),
        licence=(
            "CreativeML OpenRAIL-M: open weights with use-based restrictions (Attachment A: no unlawful use, no "
            "harming or exploiting minors, no defamation or impersonation, no non-consensual content, ...); the "
            "restrictions pass on to derived models such as the per-person LoRAs and to generated images' use"
        ),
        components=(),
        sources=(Source(hf_repo=_REPO, revision=_REVISION, note="diffusers layout, pinned commit"),),
        size=sum(f.size or 0 for f in _FILES),
        homepage="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5",
        notes="Rombach et al., High-Resolution Image Synthesis with Latent Diffusion Models, CVPR 2022.",
        files=_FILES,
        fixture_writer="pipelines.time_machine.tiny:write_tiny_model",
    ),
]
