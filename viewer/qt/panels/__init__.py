"""Dock panels: layers, annotations, models, explanations, metrics, job status."""
