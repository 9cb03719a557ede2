"""Colorization (DeOldify): the artistic, stable and video generators and the colorize pipeline."""
