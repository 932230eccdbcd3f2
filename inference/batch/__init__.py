"""Headless runs that write files: one slide into one folder (``slidelens infer``'s unit
of work, :mod:`inference.batch.one_slide`) and many slides as Dask tasks
(``slidelens batch``, :mod:`inference.batch.runner`).

Modules import each other by their own path, never through this ``__init__``.
"""
