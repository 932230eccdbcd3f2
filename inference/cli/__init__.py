"""The headless ``slidelens`` commands: one module per command, plus the dispatcher
(:mod:`inference.cli.main`).
"""
