"""``Alert``: one alert, raised once per incident, and its JSON form (a webhook's body)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

__all__ = ["Alert"]


@dataclass(frozen=True)
class Alert:
    """One alert: the first anomalous span of an incident (a model and a signal).

    ``timestamp`` is in seconds since the epoch; ``trace_id`` (32 hex digits) and ``span_id``
    (16 hex digits) identify the span that raised it; ``attributes`` carries a few more span
    attributes (model version, operation, framework).
    """

    key: tuple[str, str]
    model: str
    signal: str
    detector: str
    score: float
    timestamp: float
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict = field(default_factory=dict, hash=False)

    @property
    def text(self) -> str:
        """A one-line human-readable summary."""
        score = f"{self.score:.3f}" if isinstance(self.score, (int, float)) else repr(self.score)
        return f"ML anomaly: {self.signal} of model {self.model} (score {score}, {self.detector})"

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-compatible data (non-finite numbers become ``None``)."""
        try:
            time_iso = datetime.fromtimestamp(self.timestamp, timezone.utc).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            time_iso = None
        return {
            "key": list(self.key),
            "model": self.model,
            "signal": self.signal,
            "detector": self.detector,
            "score": _jsonable(self.score),
            "timestamp": _jsonable(self.timestamp),
            "time": time_iso,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "attributes": _jsonable(dict(self.attributes)),
            "text": self.text,
        }

    def to_json(self) -> str:
        """The alert as a JSON object (the body a :class:`WebhookSink` posts)."""
        return json.dumps(self.as_dict(), sort_keys=True, allow_nan=False, default=str)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
