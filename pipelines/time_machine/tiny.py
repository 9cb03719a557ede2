"""A tiny Stable Diffusion model with random weights, in the published folder layout.

Used by the tests and by ``python -m weights fixture time_machine/sd15``, so the whole Time
Machine flow (data preparation, LoRA training, saving, reloading, generation) runs offline in
seconds. Same classes and files as the published model (UNet, CLIP text encoder, VAE, CLIP BPE
tokenizer, DDPM-family scheduler config, ``model_index.json``), only far smaller: 32 px images,
a 2-layer text encoder and a tokenizer whose vocabulary is the 256 byte symbols (no merges, so
every word is spelled out; enough for captions and prompts).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

TOKENIZER_MAX_LENGTH = 77


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for bytes (the GPT-2 mapping:
    printable Latin-1 bytes map to themselves, the others to code points from 256 up)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


def write_tokenizer(folder: Path) -> int:
    """A CLIP tokenizer (vocab.json, merges.txt and its configs) with a 514-entry vocabulary;
    returns the vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": i + len(symbols) for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}  # fmt: skip
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": TOKENIZER_MAX_LENGTH, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return len(vocab)


def write_tiny_model(folder: str | Path, salt: str = "fixture") -> Path:
    """Write the tiny model into ``folder`` (weights drawn from a seed derived from ``salt``)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(folder / "tokenizer")
    torch.manual_seed(zlib.crc32(salt.encode()))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8,
        sample_size=32,
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=TOKENIZER_MAX_LENGTH, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
    )  # fmt: skip
    # The published model's scheduler settings (SD 1.5: scaled-linear betas 0.00085..0.012, 1000 steps).
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, steps_offset=1)  # fmt: skip
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
        "feature_extractor": [None, None], "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }  # fmt: skip
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    return folder
