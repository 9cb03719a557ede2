"""Restore: "Bringing Old Photos Back to Life" (Wan et al., CVPR 2020 / TPAMI), microsoft/Bringing-Old-Photos-Back-to-Life.

Stage 1a finds scratches (:mod:`pipelines.restoration.stage1`), stage 1b restores the whole photo through the
VAE latent space, stages 2-4 detect, enhance and blend faces back (:mod:`pipelines.restoration.pipeline`).
Networks live in :mod:`pipelines.restoration.networks`. Nothing heavy is imported here.
"""
