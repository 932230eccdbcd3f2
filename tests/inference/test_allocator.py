"""The allocator settings are accepted by glibc (a value it refuses would leave the
defaults, and their page-fault churn, in place without a word)."""

from __future__ import annotations

import sys

import pytest

from inference.core import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt only")
def test_glibc_accepts_the_settings_once_per_process() -> None:
    assert allocator.tune_allocator()
    assert allocator.tune_allocator()  # idempotent
