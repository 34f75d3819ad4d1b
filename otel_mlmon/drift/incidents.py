"""Drift episodes: one alert when a model's inputs start drifting, none while they stay drifted.

:class:`DriftIncidents` turns the :class:`~otel_mlmon.drift.monitor.DriftMonitor`'s verdicts,
evaluated once per second by the recording worker, into incidents through the incident layer of
the anomaly work (:class:`~otel_mlmon.anomaly.incident.IncidentDetector`).

The point score needs no warm-up and learns nothing: the reference profile *is* the baseline,
and the monitor's verdict is already a test — a feature is drifted when its PSI over the current
window is at or above the PSI floor (0.1) **and** its KS (numeric) or chi-square (categorical)
test rejects at ``alpha / m`` (Bonferroni over the ``m`` features evaluated, ``alpha = 0.01``).
So an evaluation scores 1.0 when at least one input feature is drifted, 0.0 when none is, and
nothing is scored before the window holds ``min_rows`` rows.

An episode **opens** at the ``onset``-th drifted evaluation in a row (default 2: at 2000
profiled rows per second, two disjoint windows of 1000 rows, so a chance rejection of one window
is not an episode) and **closes** after ``quiet`` evaluations in a row without a drifted feature
(default 30, about 30 s of traffic at one evaluation per second). One alert per episode, at its
onset, naming the most drifted features (by PSI, up to ``max_features``); the output (``_output``)
is not an input feature and is not part of the verdict.

Cost: O(1) per evaluation (the monitor's ``observations()`` is the O(features x bins) part).
Not thread-safe: the recording worker is its only caller.

>>> from otel_mlmon.drift.monitor import DriftObservations
>>> incidents = DriftIncidents()
>>> calm, drifted = DriftObservations(share=0.0), DriftObservations(share=0.1, drifted=("x1", "x4"))
>>> verdicts = [incidents.update(o) for o in [calm] * 5 + [drifted] * 10 + [calm] * 40 + [drifted] * 3]
>>> [i for i, v in enumerate(verdicts) if v.alert]      # one alert per episode, at its 2nd window
[6, 56]
>>> verdicts[6].features
('x1', 'x4')
>>> incidents.update(DriftObservations()) is None       # no feature evaluated yet: no verdict
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

from otel_mlmon.anomaly.base import _count
from otel_mlmon.anomaly.incident import IncidentDetector

__all__ = ["DriftIncidents", "DriftVerdict"]

DEFAULT_ONSET = 2
DEFAULT_QUIET = 30
DEFAULT_MAX_FEATURES = 3


class DriftVerdict(NamedTuple):
    """What :meth:`DriftIncidents.update` says about one evaluation."""

    alert: bool
    """True once per drift episode: at the evaluation that opened it."""
    score: float
    """1.0 when at least one input feature is drifted, else 0.0."""
    anomalous: bool
    """At least one input feature is drifted in this evaluation."""
    in_incident: bool
    """A drift episode is open after this evaluation."""
    features: tuple[str, ...]
    """The most drifted input features, most drifted first (at most ``max_features``)."""


class _Drifted:
    """The point "detector" of the incident layer: the score is the monitor's verdict."""

    threshold = 0.5

    def update(self, value: float, timestamp: float | None = None) -> float:
        return value

    def is_anomaly(self, score: float) -> bool:
        return score >= self.threshold

    def reset(self) -> None:
        pass


class DriftIncidents:
    """Drift episodes of one model; see the module docstring.

    Parameters
    ----------
    onset
        Drifted evaluations in a row that open an episode.
    quiet
        Evaluations in a row without a drifted feature that close it.
    max_features
        Drifted features named by a verdict.
    """

    name = "DriftMonitor"
    """The detector name the alerts carry (``ml.anomaly.detector``)."""

    def __init__(self, onset: int = DEFAULT_ONSET, quiet: int = DEFAULT_QUIET,
                 max_features: int = DEFAULT_MAX_FEATURES) -> None:  # fmt: skip
        self.onset = _count("onset", onset, 1)
        self.quiet = _count("quiet", quiet, 1)
        self.max_features = _count("max_features", max_features, 1)
        self._incidents = IncidentDetector(_Drifted(), clear=0.4, quiet=self.quiet, onset=self.onset)

    @property
    def in_incident(self) -> bool:
        """Whether a drift episode is open."""
        return self._incidents.in_incident

    def update(self, observations: Any, timestamp: float | None = None) -> DriftVerdict | None:
        """Judge one evaluation (a :class:`~otel_mlmon.drift.monitor.DriftObservations`); None
        when no input feature had enough rows to be evaluated."""
        if observations.share is None:
            return None
        drifted = tuple(observations.drifted)
        verdict = self._incidents.update(1.0 if drifted else 0.0, timestamp)
        return DriftVerdict(verdict.alert, verdict.score, verdict.anomalous, verdict.in_incident,
                            drifted[: self.max_features])  # fmt: skip

    def reset(self) -> None:
        """Forget any open episode."""
        self._incidents.reset()

    def __repr__(self) -> str:
        return f"DriftIncidents(onset={self.onset!r}, quiet={self.quiet!r}, max_features={self.max_features!r})"
