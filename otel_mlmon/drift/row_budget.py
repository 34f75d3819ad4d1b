"""The rate budget of profiled rows (``max_rows_per_second``), shared by
:class:`~otel_mlmon.drift.monitor.DriftMonitor` and the instrumentation's hot path, which pays
it before copying a sample."""

from __future__ import annotations


class RowBudget:
    """Token bucket of profiled rows: ``rate`` rows per second, bursts up to one second's worth
    (at least one full sample). A profiled call is charged at least ``min_charge`` rows: its
    fixed cost (tens of microseconds) does not shrink with the batch, so a stream of one-row
    calls is profiled at ``rate / min_charge`` calls per second. Not locked: callers serialise
    it (or accept an approximate budget under races, as the instrumentation's hot path does).

    >>> budget = RowBudget(sample_rows=256, rate=1000.0)
    >>> [budget.admit(500, t) for t in (0.0, 0.0, 0.0, 0.0, 0.0, 1.0)]
    [256, 256, 256, 0, 0, 256]
    >>> ones = RowBudget(sample_rows=256, rate=1000.0, min_charge=100)
    >>> sum(ones.admit(1, 0.0) for _ in range(50))  # 1000 tokens pay for 10 one-row calls
    10
    """

    __slots__ = ("sample_rows", "rate", "min_charge", "_tokens", "_last_time")

    def __init__(self, sample_rows: int, rate: float | None, min_charge: int = 1) -> None:
        self.sample_rows = sample_rows
        self.rate = rate
        self.min_charge = min_charge
        self._tokens = self._capacity()
        self._last_time: float | None = None

    def _capacity(self) -> float:
        rate = self.rate
        return float(self.sample_rows) if rate is None else max(float(self.sample_rows), rate)

    def admit(self, n: int, now: float) -> int:
        """Rows to profile from a batch of ``n``: its whole sample, or 0 when the bucket cannot
        pay for it (a call is never profiled on a sliver of rows: the fixed cost per profiled
        call is paid for a full sample)."""
        take = min(n, self.sample_rows)
        rate = self.rate
        if rate is None:
            return take
        last = self._last_time
        if last is not None and now > last:
            self._tokens = min(self._capacity(), self._tokens + (now - last) * rate)
        if last is None or now > last:
            self._last_time = now
        charge = max(take, self.min_charge)
        if self._tokens < charge:
            return 0
        self._tokens -= charge
        return take
