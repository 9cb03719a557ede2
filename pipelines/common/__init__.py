"""Shared runtime of every pipeline: errors, device and model cache, media I/O, limits."""
