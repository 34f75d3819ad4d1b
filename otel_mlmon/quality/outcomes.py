"""What became of labels and what the hub exports: outcome names, ``LabelResult``, ``QualitySnapshot``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from otel_mlmon.quality.prediction_store import ModelKey

__all__ = [
    "DUPLICATE",
    "ESTIMATED",
    "INVALID",
    "JOINED",
    "OUTCOMES",
    "REALIZED",
    "UNKNOWN_ID",
    "UNKNOWN_MODEL",
    "LabelResult",
    "QualitySnapshot",
]

JOINED, UNKNOWN_ID, DUPLICATE, INVALID = "joined", "unknown_id", "duplicate", "invalid"
OUTCOMES = (JOINED, UNKNOWN_ID, DUPLICATE, INVALID)
REALIZED, ESTIMATED = "realized", "estimated"
UNKNOWN_MODEL: ModelKey = ("_unknown", None)
"""Model key under which labels of unknown ids are counted when the model cannot be told."""


@dataclass(frozen=True)
class LabelResult:
    """What :meth:`QualityHub.record_ground_truth` did with each label, counted by outcome.

    ``by_model`` splits the counts per model key. A label whose id was predicted by two
    models (shadow deployment) joins both and counts once per model. ``error`` is set when
    an internal failure (e.g. the store's disk) prevented the join; nothing was changed then.
    """

    joined: int = 0
    unknown_id: int = 0
    duplicate: int = 0
    invalid: int = 0
    by_model: dict[ModelKey, dict[str, int]] = field(default_factory=dict)
    error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {outcome: getattr(self, outcome) for outcome in OUTCOMES}


class QualitySnapshot(NamedTuple):
    """Plain data for export, taken by :meth:`QualityHub.snapshot`.

    * ``quality``: ``{model_key: {(metric, source): value}}``, ``source`` is ``"realized"`` or
      ``"estimated"``; undefined metrics are absent (never NaN).
    * ``labels``: cumulative ``{(model_key, outcome): count}`` since the hub started.
    * ``pending``: predictions stored and waiting for a label.
    """

    quality: dict[ModelKey, dict[tuple[str, str], float]]
    labels: dict[tuple[ModelKey, str], int]
    pending: int
