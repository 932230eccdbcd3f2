"""Benchmarks of the engine and the explanations (``slidelens bench ...``), printing JSON
figures.
"""
