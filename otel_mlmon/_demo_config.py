"""The settings of ``otel-mlmon demo``: the constants of a run (model, incidents, detection,
instrumentation) and :class:`DemoConfig`, the options a user gives."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DemoConfig"]

MODEL_NAME = "cancer-screen"
MODEL_VERSION = "demo-1"
DRIFT_FEATURE = 3  # "mean area"
DRIFT_SHIFT_SD = 1.5
CONCEPT_FEATURE = 21  # "worst texture": rows above its 60th percentile get inverted labels
CONCEPT_QUANTILE = 0.6
LATENCY_DELAY_S = 0.02
POLL_S = 0.25
LATENCY_WINDOW_S = 0.5  # span durations of the last 0.5 s: rolling p50 / p95
HOLD_S = 0.5
GRACE_S = 3.0
MIN_DURATION_S = 10.0
MAX_RATE = 2000.0
# Fractions of the run: (kind, start, end).
SCHEDULE = (("data_drift", 0.20, 0.42), ("latency", 0.50, 0.62), ("quality_drop", 0.70, 1.00))
# Instrumentation settings of the demo (windows scaled to a run of seconds, not hours).
INSTRUMENT_SETTINGS = {
    "anomaly_processor": True,  # instrument() finds the demo's own (with a callback) and alerts through it
    "label_store": "memory",
    "quality_window": 200,
    # The demo compresses hours into seconds: every call is profiled so that the drift window
    # turns over as fast as the simulated traffic (a service keeps the default rate budget).
    "drift_max_rows_per_second": 1e9,
}


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``otel-mlmon demo`` (validated: a bad value raises ``ValueError``)."""

    duration: float = 30.0
    rate: float = 100.0
    seed: int = 0
    label_delay: float = 1.0
    output: str = "otel-mlmon-demo"

    def __post_init__(self) -> None:
        if not (isinstance(self.duration, (int, float)) and math.isfinite(self.duration)) or self.duration < MIN_DURATION_S:
            raise ValueError(f"duration must be at least {MIN_DURATION_S:g} seconds, got {self.duration!r}")
        if not (isinstance(self.rate, (int, float)) and 0 < self.rate <= MAX_RATE):
            raise ValueError(f"rate must be in (0, {MAX_RATE:g}] calls per second, got {self.rate!r}")
        if not (isinstance(self.label_delay, (int, float)) and 0 <= self.label_delay <= self.duration / 4):
            raise ValueError(f"label delay must be in [0, duration / 4], got {self.label_delay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
