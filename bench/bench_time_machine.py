"""Time Machine timings on the real Stable Diffusion 1.5 architecture (random weights).

The published weights cannot be fetched on the build machines, but time per step does not depend
on the weights' values: this builds SD 1.5's UNet, VAE and CLIP text encoder from their published
configurations with random weights (saved in fp16 like the registry's files), then measures LoRA
training seconds per step at a preset's resolution and seconds per portrait (sampler steps x
guidance at the model's 512 px). Minutes per person = steps per preset x seconds per step.

    python -m bench.bench_time_machine --preset test --train-steps 3 --sample-steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from bench.harness import machine_description, peak_rss_gib


def write_sd15_architecture(folder: Path) -> Path:
    """SD 1.5's networks from its published configs (unet/vae/text_encoder config.json values)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pipelines.time_machine.tiny import write_tokenizer

    write_tokenizer(folder / "tokenizer")  # byte-level vocabulary: same sequence length (77) as CLIP's
    UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                         block_out_channels=(320, 640, 1280, 1280), layers_per_block=2).half().save_pretrained(
        folder / "unet")  # fmt: skip
    AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  ).half().save_pretrained(folder / "vae")  # fmt: skip
    CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                                 projection_dim=768)).half().save_pretrained(folder / "text_encoder")  # fmt: skip
    PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                  steps_offset=1).save_pretrained(folder / "scheduler")  # fmt: skip
    index = {"_class_name": "StableDiffusionPipeline", "feature_extractor": [None, None], "safety_checker": [None, None],
             "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}  # fmt: skip
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="test")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--sample-steps", type=int, default=4, help="sampler steps timed (scaled to the default)")
    args = parser.parse_args()
    from pipelines.common.media import save_png
    from pipelines.time_machine.config import PRESETS, generate_config, train_config
    from pipelines.time_machine.pipeline import TimeMachinePipeline
    from pipelines.time_machine.training import LoraTrainer

    config = train_config(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        model = write_sd15_architecture(Path(tmp) / "model")
        person = Path(tmp) / "person"
        (person / "data").mkdir(parents=True)
        for i in range(10):
            save_png(torch.randint(0, 255, (512, 512, 3), dtype=torch.uint8).numpy(), person / "data" / f"{i:02d}.png")
        t0 = time.perf_counter()
        trainer = LoraTrainer(person, config, model, "a photo of sks person")
        setup_s = time.perf_counter() - t0
        trainer.train_step()  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.train_steps):
            trainer.train_step()
        step_s = (time.perf_counter() - t0) / args.train_steps
        step_cpu = (time.process_time() - c0) / args.train_steps
        del trainer
        pipe = TimeMachinePipeline(model)
        lora = person / "lora.safetensors"
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict

        pipe.pipe.unet.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.rank, target_modules=["to_q"]))
        StableDiffusionPipeline.save_lora_weights(person, unet_lora_layers=convert_state_dict_to_diffusers(
            get_peft_model_state_dict(pipe.pipe.unet)), weight_name=lora.name)  # fmt: skip
        pipe.pipe.unet.delete_adapters("default")
        t0, c0 = time.perf_counter(), time.process_time()
        pipe(lora, "sks person", ["victorian"], 1, 0, args.sample_steps, 7.5)
        sample_s = time.perf_counter() - t0
        sample_cpu = time.process_time() - c0
    steps = PRESETS[args.preset]["max_steps"]
    scale = generate_config().steps / args.sample_steps
    threads = torch.get_num_threads()
    print(f"machine: {machine_description()}; threads {threads}; load average {os.getloadavg()[0]:.1f}")
    print(f"preset {args.preset}: {config.resolution} px, rank {config.rank}, {steps} steps; model load + encode {setup_s:.0f} s")
    print(f"train: {step_s:.1f} s/step wall, {step_cpu / threads:.1f} s/step idle estimate (CPU s / threads) -> "
          f"{steps * step_s / 60:.0f} min wall, {steps * step_cpu / threads / 60:.0f} min idle estimate per person")
    print(f"portrait (512 px, {generate_config().steps} steps, measured {args.sample_steps}): {sample_s * scale:.0f} s wall, "
          f"{sample_cpu * scale / threads:.0f} s idle estimate")
    print(f"peak RSS {peak_rss_gib():.1f} GiB")


if __name__ == "__main__":
    main()
