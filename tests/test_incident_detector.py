"""The incident layer (``IncidentDetector`` / ``default_incident_detector``): one alert per
incident, at its onset; none while it lasts or at recovery; a later, separate incident alerts
again however soon; ``onset`` for per-call signals."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from otel_mlmon.anomaly import (
    DefaultDetector,
    IncidentDetector,
    IncidentVerdict,
    ZScoreDetector,
    default_incident_detector,
)


def _verdicts(incidents, values):
    return [incidents.update(float(v)) for v in values]


def _noise(seed, n=2000):
    return np.random.default_rng(seed).normal(100.0, 5.0, n)


def test_one_alert_per_incident_none_at_recovery_and_a_later_incident_alerts_again():
    values = _noise(0)
    values[800:820] += 100.0  # an incident of 20 values
    values[840:850] += 100.0  # another, 20 values after the first ended
    verdicts = _verdicts(default_incident_detector(), values)
    assert [i for i, v in enumerate(verdicts) if v.alert] == [800, 840]
    assert all(v.in_incident for v in verdicts[800:820]) and all(v.in_incident for v in verdicts[840:850])
    assert not any(v.in_incident for v in verdicts[830:840]) and not verdicts[900].in_incident
    assert all(isinstance(v, IncidentVerdict) for v in verdicts)


def test_quiet_noise_raises_no_alert():
    for seed in range(5):
        assert not any(v.alert for v in _verdicts(default_incident_detector(), _noise(seed, 5000)))


def test_onset_needs_that_many_anomalous_values_without_an_ordinary_one_between():
    values = _noise(1)
    for i in range(500, 1500, 100):
        values[i] += 200.0  # isolated spikes: flagged, never an incident with onset 5
    values[1700:1710] += 200.0  # ten in a row: an incident at the fifth
    verdicts = _verdicts(default_incident_detector(onset=5), values)
    assert [i for i, v in enumerate(verdicts) if v.alert] == [1704]
    assert all(verdicts[i].anomalous and not verdicts[i].in_incident for i in range(500, 1500, 100))


def test_wraps_any_detector_and_counts_incidents():
    incidents = IncidentDetector(ZScoreDetector(window=50, k=6.0), quiet=3)
    values = _noise(2, 600)
    values[300:310] += 80.0
    alerts = [i for i, v in enumerate(_verdicts(incidents, values)) if v.alert]
    assert 300 in alerts and incidents.incidents == len(alerts)
    assert "ZScoreDetector" in repr(incidents)


def test_pickles_and_resets():
    incidents = default_incident_detector()
    values = _noise(3, 1000)
    values[500:520] += 100.0
    _verdicts(incidents, values[:510])
    assert incidents.in_incident
    copy = pickle.loads(pickle.dumps(incidents))
    assert _verdicts(copy, values[510:]) == _verdicts(incidents, values[510:])
    incidents.reset()
    assert not incidents.in_incident and incidents.incidents == 0 and incidents.detector.seen == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"detector": object()}, "detector must be a Detector"),
        ({"clear": 1.0}, r"clear must be in \(0, 1\)"),
        ({"quiet": 0}, "quiet must be an int >= 1"),
        ({"onset": 0}, "onset must be an int >= 1"),
    ],
)
def test_validates_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IncidentDetector(**kwargs)


def test_default_wraps_the_default_detector():
    assert isinstance(default_incident_detector().detector, DefaultDetector)
    assert default_incident_detector() is not default_incident_detector()
