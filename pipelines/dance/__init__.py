"""Dance (Everybody Dance Now): poses, labels, pose normalisation and the pose-to-video GAN.

Part A (poses) lives in ``openpose.py`` (body keypoint estimator), ``skeleton.py`` (keypoint
formats and yml readers), ``render.py`` (stick-figure labels), ``normalize.py`` (global pose
normalisation), ``smoothing.py`` (temporal median of pose tracks) and ``sample.py`` (an offline,
procedurally rendered sample dancer). Nothing heavy is imported here.
"""
