"""Time Machine: portraits of one person in past eras (DreamBooth-style LoRA on Stable Diffusion)."""
