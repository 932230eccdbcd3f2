"""Synthetic H&E-like slides with their ground truth (tests, demos, benchmarks)."""
