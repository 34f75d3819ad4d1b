"""Settings: explicit argument, then ``OTEL_MLMON_*`` variable, then default."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from otel_mlmon import environment_variables as env

_logger = logging.getLogger(__name__)

DEFAULT_OPERATIONS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "score_samples",
)
OPTIONAL_OPERATIONS = ("transform",)
KNOWN_OPERATIONS = DEFAULT_OPERATIONS + OPTIONAL_OPERATIONS


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_operations(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    ops = tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))
    unknown = [op for op in ops if op not in KNOWN_OPERATIONS]
    if unknown or not ops:
        raise ValueError(f"operations must be a non-empty subset of {KNOWN_OPERATIONS}, got {value!r}")
    return ops


def _int_at_least(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer >= {minimum}, got {value!r}")
        number = int(value)
        if number < minimum or (isinstance(value, float) and value != number):
            raise ValueError(f"expected an integer >= {minimum}, got {value!r}")
        return number

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _parse_bool(value)
    raise ValueError(f"expected a bool, got {value!r}")


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {choices}, got {value!r}")
        return text

    return parse


def _ratio(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number in [0, 1], got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"expected a number in [0, 1], got {value!r}")
    return number


def _threshold(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _ratio(value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"expected a number in (0, 1), got {value!r}")
    return number


def _positive(value: Any) -> float:
    number = float(value)
    if isinstance(value, bool) or not number > 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def _non_negative(value: Any) -> float:
    number = float(value)
    if isinstance(value, bool) or not number >= 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return number


def _url(value: Any) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return text


# Per-call signals (judged by the worker before it ends the span) and signals computed on the recording worker
# (one point per model per second: output, data quality, drift; every QUALITY_EVERY_S: quality).
CALL_SIGNALS = ("latency", "row_latency", "batch_size", "error_rate")
WORKER_SIGNALS = ("output", "data_quality", "drift", "accuracy", "estimated_accuracy")
ALL_SIGNALS = CALL_SIGNALS + WORKER_SIGNALS
SIGNALS = ("latency", "batch_size", "error_rate") + WORKER_SIGNALS  # the default set


def _signals(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))
    unknown = [name for name in names if name not in ALL_SIGNALS]
    if unknown:
        raise ValueError(f"signals must be a subset of {ALL_SIGNALS}, got {value!r}")
    return names


def _optional_positive(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _positive(value)


def _path(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _setting(variable: str, parse: Callable[[Any], Any], default: Any) -> Any:
    """A field of :class:`Settings`: its ``OTEL_MLMON_*`` variable, parser and default."""
    return field(default=default, metadata={"variable": variable, "parse": parse})


@dataclass(frozen=True)
class Settings:
    """Every setting, defined once: field name (the ``instrument()`` keyword argument),
    environment variable, parser and default. :meth:`resolve`, ``otel-mlmon config`` and
    ``docs/configuration.md`` are generated from these fields; a variable's meaning is the
    docstring of its constant in :mod:`otel_mlmon.environment_variables`."""

    operations: tuple[str, ...] = _setting(env.OTEL_MLMON_OPERATIONS, _parse_operations, DEFAULT_OPERATIONS)
    detail_spans: bool = _setting(env.OTEL_MLMON_DETAIL_SPANS, _bool, False)
    capture_exception_message: bool = _setting(env.OTEL_MLMON_CAPTURE_EXCEPTION_MESSAGE, _bool, False)
    current_span: str = _setting(env.OTEL_MLMON_CURRENT_SPAN, _choice("auto", "always", "never"), "auto")
    max_models: int = _setting(env.OTEL_MLMON_MAX_MODELS, _int_at_least(1), 100)
    max_class_labels: int = _setting(env.OTEL_MLMON_MAX_CLASS_LABELS, _int_at_least(1), 32)
    output_sample_size: int = _setting(env.OTEL_MLMON_OUTPUT_SAMPLE_SIZE, _int_at_least(0), 256)
    queue_size: int = _setting(env.OTEL_MLMON_QUEUE_SIZE, _int_at_least(16), 65536)
    flush_interval_ms: int = _setting(env.OTEL_MLMON_FLUSH_INTERVAL, _int_at_least(1), 1000)
    resource_metrics: bool = _setting(env.OTEL_MLMON_RESOURCE_METRICS, _bool, True)
    trace_training: bool = _setting(env.OTEL_MLMON_TRACE_TRAINING, _bool, False)
    cuda_timing: str = _setting(env.OTEL_MLMON_CUDA_TIMING, _choice("events", "sync", "none"), "events")
    anomaly_detection: bool = _setting(env.OTEL_MLMON_ANOMALY_DETECTION, _bool, True)
    anomaly_signals: tuple[str, ...] = _setting(env.OTEL_MLMON_ANOMALY_SIGNALS, _signals, SIGNALS)
    anomaly_threshold: float | None = _setting(env.OTEL_MLMON_ANOMALY_THRESHOLD, _threshold, None)
    anomaly_multivariate: bool = _setting(env.OTEL_MLMON_ANOMALY_MULTIVARIATE, _bool, False)
    anomaly_processor: bool = _setting(env.OTEL_MLMON_ANOMALY_PROCESSOR, _bool, True)
    sampling_ratio: float = _setting(env.OTEL_MLMON_SAMPLING_RATIO, _ratio, 1.0)
    alert_cooldown_s: float = _setting(env.OTEL_MLMON_ALERT_COOLDOWN, _non_negative, 0.0)
    alert_webhook_url: str | None = _setting(env.OTEL_MLMON_ALERT_WEBHOOK_URL, _url, None)
    alert_logs: bool = _setting(env.OTEL_MLMON_ALERT_LOGS, _bool, True)
    data_monitoring: bool = _setting(env.OTEL_MLMON_DATA_MONITORING, _bool, True)
    drift_sample_rows: int = _setting(env.OTEL_MLMON_DRIFT_SAMPLE_ROWS, _int_at_least(1), 256)
    drift_window_rows: int = _setting(env.OTEL_MLMON_DRIFT_WINDOW_ROWS, _int_at_least(10), 1000)
    drift_max_rows_per_second: float = _setting(env.OTEL_MLMON_DRIFT_MAX_ROWS_PER_SECOND, _positive, 2000.0)
    drift_window_s: float | None = _setting(env.OTEL_MLMON_DRIFT_WINDOW_SECONDS, _optional_positive, None)
    drift_max_features: int = _setting(env.OTEL_MLMON_DRIFT_MAX_FEATURES, _int_at_least(1), 64)
    profile_on_fit: bool = _setting(env.OTEL_MLMON_PROFILE_ON_FIT, _bool, True)
    profile_dir: str | None = _setting(env.OTEL_MLMON_PROFILE_DIR, _path, None)
    profile_max_bytes: int = _setting(env.OTEL_MLMON_PROFILE_MAX_BYTES, _int_at_least(1), 16 * 1024 * 1024)
    profile_max_features: int = _setting(env.OTEL_MLMON_PROFILE_MAX_FEATURES, _int_at_least(1), 1000)
    profile_max_bins: int = _setting(env.OTEL_MLMON_PROFILE_MAX_BINS, _int_at_least(2), 1000)
    profile_max_categories: int = _setting(env.OTEL_MLMON_PROFILE_MAX_CATEGORIES, _int_at_least(1), 10_000)
    profile_max_value_length: int = _setting(env.OTEL_MLMON_PROFILE_MAX_VALUE_LENGTH, _int_at_least(1), 1024)
    label_store: str = _setting(env.OTEL_MLMON_LABEL_STORE, _choice("sqlite", "memory", "none"), "sqlite")
    label_store_path: str | None = _setting(env.OTEL_MLMON_LABEL_STORE_PATH, _path, None)
    label_max_entries: int = _setting(env.OTEL_MLMON_LABEL_MAX_ENTRIES, _int_at_least(1), 1_000_000)
    label_ttl_s: float = _setting(env.OTEL_MLMON_LABEL_TTL, _positive, 7 * 86400.0)
    quality_window: int = _setting(env.OTEL_MLMON_QUALITY_WINDOW, _int_at_least(10), 1000)

    @classmethod
    def resolve(cls, kwargs: dict[str, Any], environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``instrument()`` keyword arguments and the environment.

        Unknown keyword arguments are ignored (``BaseInstrumentor`` passes its own, such as
        ``tracer_provider``); a bad value of a known one raises ``ValueError``.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (var, parse, default) in _SPEC.items():
            if kwargs.get(name) is not None:
                try:
                    values[name] = parse(kwargs[name])
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"invalid {name}: {exc}") from None
                continue
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                values[name] = default
                continue
            try:
                values[name] = parse(raw)
            except (TypeError, ValueError) as exc:
                _logger.warning("Ignoring invalid %s=%r (%s); using default %r", var, raw, exc, default)
                values[name] = default
        return cls(**values)


# name -> (environment variable, parser, default), in definition order; derived from Settings.
_SPEC: dict[str, tuple[str, Callable[[Any], Any], Any]] = {
    f.name: (f.metadata["variable"], f.metadata["parse"], f.default) for f in fields(Settings)
}
