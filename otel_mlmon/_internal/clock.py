"""One clock for spans and metrics: ``perf_counter_ns`` readings placed on the wall clock.

A call reads ``perf_counter_ns`` before and after the model runs; its duration metric is the
difference and its span starts and ends at those readings plus :data:`offset_ns` (wall clock
minus performance counter). The recording worker calls :func:`refresh` on every drain, so a
step of the wall clock (NTP, a suspended VM) reaches span timestamps within one flush interval
while durations never see it.
"""

from __future__ import annotations

from time import perf_counter_ns, time_ns

offset_ns: int = time_ns() - perf_counter_ns()


def refresh() -> None:
    global offset_ns  # noqa: PLW0603 - read per call as a module attribute, on purpose
    offset_ns = time_ns() - perf_counter_ns()
