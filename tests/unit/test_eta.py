"""The time-left estimate: smoothed over recent throughput, shown only once stable
(driven by a synthetic clock)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inference.core.eta import MIN_ELAPSED_S, RemainingTime


def _run(
    rates: list[tuple[float, float]], total: int, step_s: float = 0.5
) -> list[tuple[float, int, float | None]]:
    """Feed a job whose throughput is ``rate`` units/s for ``duration`` s, phase by phase;
    returns ``(time, done, seconds_left)`` after every update."""
    eta = RemainingTime()
    now, done, exact = 0.0, 0.0, 0.0
    seen = []
    for rate, duration in rates:
        end = now + duration
        while now < end - 1e-9 and done < total:
            now += step_s
            exact = min(float(total), exact + rate * step_s)
            done = exact
            eta.update(int(done), total, now)
            seen.append((now, int(done), eta.seconds_left(now)))
    return seen


def test_nothing_is_shown_before_the_rate_has_settled() -> None:
    seen = _run([(10.0, 60.0)], total=600)
    shown = [(t, left) for t, _d, left in seen if left is not None]
    assert shown, "a steady job gets an estimate"
    first_t = shown[0][0]
    assert first_t >= MIN_ELAPSED_S  # never in the first seconds
    assert first_t <= MIN_ELAPSED_S + 3.0  # but soon after for a steady job
    # and from then on it is right: 600 units at 10/s end at t = 60
    for t, left in shown:
        assert left == pytest.approx(60.0 - t, abs=1.0)


def test_the_estimate_counts_down_between_updates_and_stops_at_zero() -> None:
    eta = RemainingTime(min_elapsed_s=0.0)
    for i in range(1, 11):
        eta.update(i * 10, 1000, float(i))
    left = eta.seconds_left(10.0)
    assert left is not None and left == pytest.approx(90.0, abs=0.5)
    assert eta.seconds_left(40.0) == pytest.approx(left - 30.0)
    assert eta.seconds_left(10_000.0) == 0.0  # never negative
    eta.update(1000, 1000, 12.0)
    assert eta.seconds_left(12.0) == 0.0  # done is done


def test_a_fast_start_does_not_make_the_estimate_jump() -> None:
    """The trial's case: the patches on screen go first and fast, the rest is slower.
    Averaging since the start says "almost done" early and then jumps up; the
    estimate shown here does not."""
    phases = [(100.0, 1.5), (8.0, 120.0)]  # 150 quick patches, then 8 per second
    total = 150 + 8 * 100
    seen = _run(phases, total)
    # the naive estimate (elapsed / done * left) this replaces swings widely
    naive = [t / d * (total - d) for t, d, _l in seen if d]
    assert max(naive[:10]) < 0.5 * max(naive), "the scenario does make naive estimates jump"
    shown = [(t, left) for t, _d, left in seen if left is not None]
    assert shown
    truth_end = 1.5 + 100.0
    for (t0, left0), (t1, left1) in itertools.pairwise(shown):
        # between two updates the shown finish time moves by little
        finish0, finish1 = t0 + left0, t1 + left1
        assert abs(finish1 - finish0) <= 0.1 * max(left0, 10.0), (t0, left0, t1, left1)
    # and once shown it is close to the truth
    for t, left in shown:
        assert abs((t + left) - truth_end) <= 0.2 * (truth_end - t) + 2.0


def test_noisy_batches_give_a_steady_estimate() -> None:
    """Batches of 32 patches taking 2 +- 0.6 s, one in five all background (instant):
    the shown finish time drifts by little from update to update."""
    rng = np.random.default_rng(3)
    eta = RemainingTime()
    total, done, now = 32 * 120, 0, 0.0
    shown: list[tuple[float, float]] = []
    while done < total:
        now += 0.05 if rng.random() < 0.2 else rng.uniform(1.4, 2.6)
        done = min(total, done + 32)
        eta.update(done, total, now)
        left = eta.seconds_left(now)
        if left is not None and done < total:
            shown.append((now, left))
    assert len(shown) > 80
    for (t0, left0), (t1, left1) in itertools.pairwise(shown):
        # a ~200 s job: the finish time shown moves by under 5 % of the time left
        assert abs((t1 + left1) - (t0 + left0)) <= 0.05 * left0 + 1.0, (t0, left0, left1)


def test_no_progress_means_no_estimate() -> None:
    eta = RemainingTime(min_elapsed_s=0.0)
    for i in range(1, 10):
        eta.update(0, 100, float(i))
    assert eta.seconds_left(10.0) is None
    assert not eta.stable


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RemainingTime(smoothing=0.0)
    with pytest.raises(ValueError):
        RemainingTime(trim=0.5)
