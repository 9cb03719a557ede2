"""Animate: Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022), yoyo-nb/Thin-Plate-Spline-Motion-Model.

Networks in :mod:`pipelines.animation.networks`, the released configs in :mod:`pipelines.animation.config`,
pre-processing (the demo's resize) in :mod:`pipelines.animation.preprocess`, face crop and paste-back in
:mod:`pipelines.animation.crop`, the pipeline in :mod:`pipelines.animation.pipeline`. Nothing heavy is imported here.
"""
