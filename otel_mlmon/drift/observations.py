"""What :class:`~otel_mlmon.drift.monitor.DriftMonitor` reports: gauge values at a collection
(:class:`DriftObservations`) and counter increments since the previous drain
(:class:`DriftCounts`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DriftObservations:
    """Gauge values at one collection. Keys are ``(feature, method)`` pairs.

    ``scores``: the drift statistic per feature and method, for the ``top_k`` most drifted
    features plus ``_output`` (chi_square: statistic / window rows). ``p_values``: for ``ks``
    and ``chi_square``. ``share``: drifted input features / features with enough data (None when
    nothing could be evaluated). ``drifted``: every drifted input feature (not capped), most
    drifted first; ``output_drifted`` the verdict for ``_output``. ``window_rows``: rows in the
    current window.
    """

    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    p_values: dict[tuple[str, str], float] = field(default_factory=dict)
    share: float | None = None
    drifted: tuple[str, ...] = ()
    output_drifted: bool = False
    window_rows: int = 0


@dataclass(frozen=True)
class DriftCounts:
    """Counter increments since the previous drain.

    ``bins``: ``(feature, bin) -> rows`` (``ml.drift.bin.count``), non-zero entries only,
    for the first ``max_features`` features and ``_output``; a bin is its index in the profile
    or ``"underflow"`` / ``"overflow"`` (numeric values beyond the reference range). ``data_quality``:
    ``(feature, issue) -> values`` (``ml.data_quality.count``). ``rows``: rows profiled
    (``ml.data.row.count``).
    """

    bins: dict[tuple[str, int], int] = field(default_factory=dict)
    data_quality: dict[tuple[str, str], int] = field(default_factory=dict)
    rows: int = 0
