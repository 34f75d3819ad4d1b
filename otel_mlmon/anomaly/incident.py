"""The incident layer: one alert at the onset of an incident, none while it lasts or at recovery."""

from __future__ import annotations

from typing import Any, NamedTuple

from otel_mlmon.anomaly.base import Detector, _count, _rate

__all__ = ["IncidentDetector", "IncidentVerdict", "default_incident_detector"]


class IncidentVerdict(NamedTuple):
    """What :meth:`IncidentDetector.update` says about one value."""

    alert: bool
    """True exactly once per incident: at the value that opened it."""
    score: float
    """The point detector's score of this value, in [0, 1]."""
    anomalous: bool
    """This value's score is at or above the point detector's threshold."""
    in_incident: bool
    """An incident is open after this value (it opened, or goes on)."""


class IncidentDetector:
    """Turns a point detector's scores into incidents: an alert when one opens, none while it
    lasts, none when it ends.

    An incident **opens** at the ``onset``-th anomalous value (score at or above the point
    detector's ``threshold``) outside an incident, with no value below ``clear`` between them:
    that verdict is the alert. With ``onset`` 1 (the default, for series of one point per
    period) the first anomalous value alerts; for per-call signals the instrumentation uses 5,
    so that a short burst of slow calls is flagged on its spans but is not an incident. It stays
    open while values keep scoring at or above ``clear`` and **closes** after ``quiet`` consecutive
    values below it; a later anomalous value opens a new incident, with a new alert, however
    soon. There is no cooldown in time: what ends an incident is the data returning to normal
    (or the point detector accepting a new level, see
    :class:`~otel_mlmon.anomaly.default.DefaultDetector`). The incident layer adds no
    learning of its own, so the point detector decides what is anomalous and this layer only
    how often that is said.

    Parameters
    ----------
    detector
        The point detector (default: :func:`~otel_mlmon.anomaly.default.default_detector`).
    clear
        Scores below it count towards closing an incident; in (0, 1). Default 0.4, about the
        default detector's score of a one-in-a-thousand value (0.42): a value between
        ``clear`` and the threshold neither opens an incident nor counts towards closing one.
    quiet
        Consecutive values below ``clear`` that close an incident (default 5: one ordinary
        value inside a long incident does not split it in two).
    onset
        Anomalous values that open an incident.

    Cost: the point detector's, plus a few comparisons. Not thread-safe, like detectors.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> incidents = default_incident_detector()
    >>> values = [rng.gauss(100.0, 5.0) for _ in range(600)]
    >>> values[300:340] = [v + 60.0 for v in values[300:340]]      # an incident of 40 values
    >>> verdicts = [incidents.update(v) for v in values]
    >>> [i for i, v in enumerate(verdicts) if v.alert]              # one alert, at its onset
    [300]
    >>> verdicts[310].in_incident, verdicts[399].in_incident
    (True, False)
    """

    def __init__(self, detector: Detector | None = None, clear: float = 0.4, quiet: int = 5, onset: int = 1) -> None:
        if detector is None:
            from otel_mlmon.anomaly.default import default_detector  # noqa: PLC0415

            detector = default_detector()
        if not callable(getattr(detector, "update", None)) or not callable(getattr(detector, "is_anomaly", None)):
            raise ValueError(f"detector must be a Detector, got {detector!r}")
        self.detector = detector
        self.clear = _rate("clear", clear)
        self.quiet = _count("quiet", quiet, 1)
        self.onset = _count("onset", onset, 1)
        self._reset()

    def _reset(self) -> None:
        self._open = False
        self._calm = 0
        self._pending = 0  # anomalous values seen towards an onset
        self.incidents = 0

    @property
    def in_incident(self) -> bool:
        """Whether an incident is open."""
        return self._open

    def update(self, value: float, timestamp: float | None = None) -> IncidentVerdict:
        """Score ``value`` (observed at ``timestamp``, epoch seconds) and say whether it opens,
        continues or closes an incident."""
        score = self.detector.update(value, timestamp)
        anomalous = score >= self.detector.threshold
        if not self._open:
            if anomalous:
                self._pending += 1
                self._calm = 0
                if self._pending >= self.onset:
                    self._open, self._pending = True, 0
                    self.incidents += 1
                    return IncidentVerdict(True, score, True, True)
                return IncidentVerdict(False, score, True, False)
            if score < self.clear:
                self._pending = 0  # an ordinary value between: not one incident
            return IncidentVerdict(False, score, False, False)
        if score >= self.clear:
            self._calm = 0
        else:
            self._calm += 1
            if self._calm >= self.quiet:
                self._open = False
        return IncidentVerdict(False, score, anomalous, self._open)

    def reset(self) -> None:
        """Forget everything, the point detector's state included."""
        self.detector.reset()
        self._reset()

    def __repr__(self) -> str:
        return f"IncidentDetector({self.detector!r}, clear={self.clear!r}, quiet={self.quiet!r}, onset={self.onset!r})"


def default_incident_detector(**kwargs: Any) -> IncidentDetector:
    """A fresh :class:`IncidentDetector` over :func:`~otel_mlmon.anomaly.default.default_detector`;
    keyword arguments go to :class:`IncidentDetector`."""
    return IncidentDetector(**kwargs)
