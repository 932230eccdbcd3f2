"""Time left of a long job, from its recent throughput, shown only once it is stable.

Contract: :class:`RemainingTime` is fed ``update(done, total, now)`` after each step of a
job (``now``: seconds on a monotonic clock, never decreasing; ``done`` and ``total`` in
the job's own units, e.g. patches).  :meth:`RemainingTime.seconds_left` is ``None``
until the estimate has settled, then a smoothed count-down that moves with the clock
between updates.  The class is clock-free (every time comes from the caller), so tests
drive it with a synthetic clock.

Why: a job's first steps are rarely typical (the patches on screen go first, background
patches cost nothing, a cold cache reads slowly), so "elapsed / done * left" jumps
around (0:01 left at 11 %, 0:06 at 59 %).  The rate here is measured over the recent
steps only, with the fastest and slowest left out, and the predicted finish time is
shown once a few successive predictions agree, then follows new ones gradually.
"""

from __future__ import annotations

from collections import deque

#: Throughput is measured over the last this many steps (updates)...
RATE_STEPS = 16
#: ... leaving out this fraction of the fastest and of the slowest of them.
TRIM = 0.25
#: Nothing is shown before the job has run this long (since its first update)...
MIN_ELAPSED_S = 5.0
#: ... and before this many updates.
MIN_UPDATES = 6
#: The last this many predicted finish times must agree to show an estimate...
SETTLE_UPDATES = 3
#: ... within this fraction of the time left (or :data:`SETTLE_FLOOR_S`, if more).
SETTLE_TOLERANCE = 0.15
SETTLE_FLOOR_S = 2.0
#: How far each new prediction moves the shown finish time (0: never, 1: at once).
SMOOTHING = 0.3


class RemainingTime:
    """Seconds left of a job from its recent throughput; ``None`` until stable.

    Feed :meth:`update` after every step; ask :meth:`seconds_left` whenever the time
    left is shown.  Once shown, the estimate stays shown (it is smoothed, not hidden
    again), counts down with the clock between updates, and never goes below 0.
    """

    def __init__(
        self,
        *,
        steps: int = RATE_STEPS,
        trim: float = TRIM,
        min_elapsed_s: float = MIN_ELAPSED_S,
        min_updates: int = MIN_UPDATES,
        settle_updates: int = SETTLE_UPDATES,
        tolerance: float = SETTLE_TOLERANCE,
        smoothing: float = SMOOTHING,
    ) -> None:
        if steps < 1 or not 0 <= trim < 0.5 or not 0 < smoothing <= 1 or settle_updates < 1:
            raise ValueError(
                "steps and settle_updates must be >= 1, trim in [0, 0.5), smoothing in (0, 1]"
            )
        self.trim = trim
        self.min_elapsed_s = min_elapsed_s
        self.min_updates = max(2, min_updates)
        self.tolerance = tolerance
        self.smoothing = smoothing
        self._last: tuple[float, int] | None = None
        #: Recent steps as (units done, seconds taken).
        self._steps: deque[tuple[int, float]] = deque(maxlen=steps)
        self._predictions: deque[float] = deque(maxlen=settle_updates)
        self._first_t: float | None = None
        self._updates = 0
        self._done = 0
        self._total = 0
        #: The finish time shown (on the caller's clock), once stable.
        self._finish: float | None = None

    @property
    def stable(self) -> bool:
        """Whether an estimate is shown."""
        return self._finish is not None

    def update(self, done: int, total: int, now: float) -> None:
        """``done`` of ``total`` units are finished at time ``now``."""
        if self._first_t is None:
            self._first_t = now
        self._updates += 1
        self._done, self._total = done, total
        self._measure(done, now)
        finish = self._predicted_finish(now)
        if finish is None:
            return
        self._predictions.append(finish)
        if self._finish is not None:
            self._finish += self.smoothing * (finish - self._finish)
        elif self._settled(now):
            self._finish = sum(self._predictions) / len(self._predictions)

    def seconds_left(self, now: float) -> float | None:
        """Seconds until the job should finish, as of ``now``; ``None`` while unsettled."""
        if self._total > 0 and self._done >= self._total:
            return 0.0
        if self._finish is None:
            return None
        return max(0.0, self._finish - now)

    def _measure(self, done: int, now: float) -> None:
        """Record the step since the last update (an update at the same instant adds
        its units to the next step)."""
        last = self._last
        if last is None:
            self._last = (now, done)
        elif now > last[0]:
            self._steps.append((done - last[1], now - last[0]))
            self._last = (now, done)

    def rate(self) -> float | None:
        """Units per second over the recent steps, the fastest and slowest :attr:`trim`
        of them left out: a fast start (the patches on screen, background patches) or
        one slow step moves it little, and leaves the window without a jump."""
        steps = sorted(self._steps, key=lambda s: s[0] / s[1])
        cut = int(len(steps) * self.trim)
        kept = steps[cut : len(steps) - cut] or steps
        units = sum(s[0] for s in kept)
        seconds = sum(s[1] for s in kept)
        return units / seconds if units > 0 and seconds > 0 else None

    def _predicted_finish(self, now: float) -> float | None:
        """When the job ends at the recent throughput (``None``: no throughput yet)."""
        rate = self.rate()
        if rate is None:
            return None
        return now + max(0, self._total - self._done) / rate

    def _settled(self, now: float) -> bool:
        assert self._first_t is not None
        predictions = self._predictions
        if (
            self._updates < self.min_updates
            or now - self._first_t < self.min_elapsed_s
            or len(predictions) < (predictions.maxlen or 1)
        ):
            return False
        left = predictions[-1] - now
        spread = max(predictions) - min(predictions)
        return spread <= max(SETTLE_FLOOR_S, self.tolerance * left)
