"""One point per model per second for the worker-side signals, however often the queue drains.

The worker drains the queue on its interval, when calls pile up, at every metric collection and
before labels join (``record_ground_truth`` drains it so that a label finds its prediction). A
service recording labels per request drains it after nearly every call, and a data-quality rate
over the one to eight rows of a call is noise: mostly 0, now and then 1/3. So the inputs of the
worker-side signals (data-quality events and profiled rows, the outputs' sum and count) add up
across drains, and a model's point is made when ``SIGNAL_EVERY_S`` has passed since its last:
the cadence the detectors (and the drift episodes' ``onset`` and ``quiet``) are tuned for.
"""

from __future__ import annotations

from typing import Any

SIGNAL_EVERY_S = 1.0  # the default flush interval


class SeriesCadence:
    """Per model key: ``[last point at, data-quality events, profiled rows, output sum, output
    count]``. Bounded: at most ``max_keys`` models (a later one gets no worker-side point)."""

    def __init__(self, max_keys: int, every_s: float = SIGNAL_EVERY_S) -> None:
        self.max_keys = max_keys
        self.every_s = every_s
        self._state: dict[Any, list] = {}

    def add(self, key: Any, issues: int = 0, rows: int = 0, out_sum: float = 0.0, out_n: int = 0) -> None:
        state = self._state.get(key)
        if state is None:
            if len(self._state) >= self.max_keys:
                return
            state = self._state[key] = [float("-inf"), 0, 0, 0.0, 0]
        state[1] += issues
        state[2] += rows
        state[3] += out_sum
        state[4] += out_n

    def due(self, key: Any, now: float) -> tuple[float | None, float | None] | None:
        """``(data-quality events per row or None, mean output or None)`` when the model's point
        is due (and the sums start again), else None."""
        state = self._state.get(key)
        if state is None or now - state[0] < self.every_s:
            return None
        _, issues, rows, out_sum, out_n = state
        self._state[key] = [now, 0, 0, 0.0, 0]
        return (issues / rows if rows else None), (out_sum / out_n if out_n else None)
