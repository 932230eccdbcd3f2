"""``slidelens`` commands that live on the viewer side (export, the Qt benchmarks)."""
