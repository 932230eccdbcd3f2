"""Slide-level answers: aggregators over stored patch outputs, MIL heads, similarity search."""
