"""Parity with the original implementations, through the shared reference cases."""

from weights.parity.case import Case, Comparison, Outcome, compare_images, compare_keys, compare_tensors
from weights.parity.runner import discover, handler, reference_dir, run_case

__all__ = [
    "Case",
    "Comparison",
    "Outcome",
    "compare_images",
    "compare_keys",
    "compare_tensors",
    "discover",
    "handler",
    "reference_dir",
    "run_case",
]
