"""Qt benchmarks of the viewer (``slidelens bench viewer`` and ``bench ui``)."""
