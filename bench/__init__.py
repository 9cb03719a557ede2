"""Benchmarks: timing harness and one script per pipeline (not run by the test suite)."""
