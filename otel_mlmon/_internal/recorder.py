"""Turns per-call records into OpenTelemetry metrics, off the model call's hot path.

The call appends one small tuple to a bounded ``deque`` (tens of nanoseconds, never blocks; a
full queue drops the record and counts it). A daemon worker drains the queue every flush
interval, aggregates per model (row sums, class counts, sampled output values) and records into
the OpenTelemetry instruments. Every metric collection drains the queue too, from the callback
of the ``ml.monitor.queue.size`` observable instrument, so that exports are never behind.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import Counter, OrderedDict, deque
from typing import Any, Iterable

import numpy as np
from opentelemetry.context import Context, attach, detach, set_value
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_mlmon import _lifecycle, semconv
from otel_mlmon._internal import clock
from otel_mlmon._internal.cardinality import SeriesAttributes
from otel_mlmon._internal.config import Settings
from otel_mlmon._internal.data import DataPlane
from otel_mlmon._internal.judgement import end_spans
from otel_mlmon._internal.call import Call, close
from otel_mlmon._internal.outputs import as_float, probabilities
from otel_mlmon._internal.state import OUT_LABELS, OUT_LOGITS, OUT_PROBA, OUT_VALUES, MetricKey

_logger = logging.getLogger("otel_mlmon")

# Outputs up to this many elements are copied at call time (about a microsecond), so that
# changing the returned array in place afterwards cannot alter the statistics. Larger outputs
# are read by reference when the worker drains, within the flush interval.
COPY_LIMIT = 65536
# Queued calls that wake the worker before its interval: it ends their spans in bursts within half
# a BatchSpanProcessor's default queue (2048).
WAKE_AT = 1024

def snapshot_array(result: np.ndarray) -> np.ndarray:
    """A copy of a small output (about a microsecond), the array itself for a large one."""
    return result.copy() if result.size <= COPY_LIMIT else result


_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
# The context of the per-call measurements made on the worker: none (the worker's own context has
# no span either, so no exemplar is taken; passing it saves the SDK a context lookup per point).
_NO_SPAN = Context()


def error_type_of(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _count_labels(arrays: list[np.ndarray]) -> dict[str, int]:
    """Counts per label (as attribute text). O(n) for small non-negative integer labels.

    Arrays are grouped by dtype first: models that share a name can predict labels of
    different types (integers for one, strings for another), which cannot be sorted together.
    """
    groups: dict[str, list[np.ndarray]] = {}
    for array in arrays:
        groups.setdefault(array.dtype.str, []).append(array)
    merged: dict[str, int] = {}
    for group in groups.values():
        labels = np.concatenate(group)
        if not labels.size:
            continue
        if labels.dtype.kind in "iub" and int(labels.min()) >= 0 and int(labels.max()) < 65536:
            counts = np.bincount(labels.astype(np.intp, copy=False))
            values = np.flatnonzero(counts)
            pairs = zip(values.astype(labels.dtype).tolist(), counts[values].tolist())
        else:
            try:
                values, counts = np.unique(labels, return_counts=True)
                pairs = zip(values.tolist(), counts.tolist())
            except TypeError:  # object labels of mixed types
                pairs = Counter(labels.tolist()).items()
        for value, count in pairs:
            label = str(value)
            merged[label] = merged.get(label, 0) + count
    return merged


class _Aggregate:
    __slots__ = ("durations", "failures", "sizes", "rows", "outputs")

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.failures: list[tuple[float, str]] = []
        self.sizes: list[int] = []
        self.rows = 0
        self.outputs: list[Any] = []


class Recorder:
    """Bounded queue plus worker; one per instrumentor, shared by every model it wraps."""

    def __init__(self, meter: Meter, settings: Settings) -> None:
        self._series = SeriesAttributes(settings.max_models)  # metric attributes, class labels
        self._configure(settings)
        self._framework_settings: dict[str, Settings] = {}
        self._users = 0
        self._queue: deque[Call] = deque()
        self._rng = np.random.default_rng(0x6D6C6D6F6E)
        self._forests: OrderedDict[MetricKey, Any] = OrderedDict()  # LRU, <= max_models
        self._logged: set[tuple[str, str]] = set()
        self._stopped = True
        self._init_sync()
        self._create_instruments(meter)
        # Fork and exit (otel_mlmon._lifecycle): the drain lock is held across fork, so that the
        # worker is never inside an SDK instrument call at that moment; a forked child (gunicorn,
        # multiprocessing) gets fresh locks, queue and worker; at exit the queue is drained.
        _lifecycle.register_sdk_collection(meter)
        _lifecycle.register(self, _lifecycle.RECORDER, lock="_lock", child=Recorder._after_fork,
                            exit=Recorder._drain_at_exit)  # fmt: skip

    # ------------------------------------------------------------------ set-up
    def _configure(self, settings: Settings) -> None:
        self._settings = settings
        self._series.max_models = settings.max_models
        self._capacity = settings.queue_size
        # Queued records hold their (not yet ended) spans: the worker is woken well before the
        # queue is full, so that the spans waiting for it stay few (memory) and recent (latency),
        # and it hands them to the span processors in bursts a BatchSpanProcessor's queue takes
        # (its default holds 2048; its exporter is woken at 512).
        self._wake_at = max(1, min(settings.queue_size // 4, WAKE_AT))
        self._interval = settings.flush_interval_ms / 1000.0

    def _init_sync(self) -> None:
        self._lock = threading.Lock()  # guards drains and the cardinality sets
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    def _create_instruments(self, meter: Meter) -> None:
        s = semconv
        self._duration = meter.create_histogram(
            s.INFERENCE_DURATION.name, unit=s.INFERENCE_DURATION.unit,
            description=s.INFERENCE_DURATION.description,
            explicit_bucket_boundaries_advisory=list(s.DURATION_BUCKETS),
        )  # fmt: skip
        self._rows = meter.create_counter(
            s.INFERENCE_ROW_COUNT.name, unit=s.INFERENCE_ROW_COUNT.unit,
            description=s.INFERENCE_ROW_COUNT.description,
        )  # fmt: skip
        self._batch = meter.create_histogram(
            s.INFERENCE_BATCH_SIZE.name, unit=s.INFERENCE_BATCH_SIZE.unit,
            description=s.INFERENCE_BATCH_SIZE.description,
            explicit_bucket_boundaries_advisory=list(s.BATCH_SIZE_BUCKETS),
        )  # fmt: skip
        self._classes = meter.create_counter(
            s.PREDICTION_CLASS_COUNT.name, unit=s.PREDICTION_CLASS_COUNT.unit,
            description=s.PREDICTION_CLASS_COUNT.description,
        )  # fmt: skip
        self._values = meter.create_gauge(
            s.PREDICTION_VALUE.name, unit=s.PREDICTION_VALUE.unit,
            description=s.PREDICTION_VALUE.description,
        )  # fmt: skip
        self._proba = meter.create_histogram(
            s.PREDICTION_PROBABILITY.name, unit=s.PREDICTION_PROBABILITY.unit,
            description=s.PREDICTION_PROBABILITY.description,
            explicit_bucket_boundaries_advisory=list(s.PROBABILITY_BUCKETS),
        )  # fmt: skip
        self._errors = meter.create_counter(
            s.MONITOR_ERROR_COUNT.name, unit=s.MONITOR_ERROR_COUNT.unit,
            description=s.MONITOR_ERROR_COUNT.description,
        )  # fmt: skip
        self._anomalies = meter.create_counter(
            s.ANOMALY_COUNT.name, unit=s.ANOMALY_COUNT.unit, description=s.ANOMALY_COUNT.description,
        )  # fmt: skip
        self._dropped = meter.create_counter(
            s.MONITOR_DROPPED_COUNT.name, unit=s.MONITOR_DROPPED_COUNT.unit,
            description=s.MONITOR_DROPPED_COUNT.description,
        )  # fmt: skip
        ref = weakref.ref(self)

        def observe_queue(options: CallbackOptions) -> Iterable[Observation]:
            recorder = ref()
            if recorder is None or recorder._stopped:
                return []
            recorder.flush()
            return [Observation(len(recorder._queue))]

        # Registered before the data plane's observable instruments: a collection runs the
        # callbacks in registration order, so this drain comes first and the drift, quality
        # and pending-prediction observations of the same collection include every call made
        # before it (not only those the worker happened to have drained).
        meter.create_observable_up_down_counter(
            s.MONITOR_QUEUE_SIZE.name, callbacks=[observe_queue], unit=s.MONITOR_QUEUE_SIZE.unit,
            description=s.MONITOR_QUEUE_SIZE.description,
        )  # fmt: skip
        self.data = DataPlane(meter, self._settings, self.internal_error, lambda: (r := ref()) is not None and r.flush())
        self.data.on_anomaly = self._worker_anomaly
        self.alerter: Any = None  # the AnomalyDetectionSpanProcessor installed with this recorder
        self.tail: Any = None  # that processor when it samples (ratio < 1): it waits for verdicts

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._run, name="otel-mlmon-recorder", daemon=True)
        self._worker = worker
        worker.start()

    def _after_fork(self, quiesced: bool = True) -> None:
        self._queue = deque()
        self._init_sync()
        self.data._lock = threading.Lock()
        if not self._stopped:
            self._start_worker()

    def _drain_at_exit(self) -> None:
        """At interpreter exit: queued calls reach the instruments and the quality hub."""
        self.flush()
        with self._lock:
            self.data.flush_held()

    # ------------------------------------------------------------------ hot path
    def submit(self, call: Call) -> None:
        """Queue one call; O(1), never blocks, never raises on a full queue."""
        queue = self._queue
        if len(queue) >= self._capacity or self._stopped:  # stopped: a call that outlived uninstrument()
            if not self._stopped:
                self._dropped.add(1)
            close(call, None)  # the span is not lost, only its verdict and metrics
            return
        tail = self.tail
        if tail is not None:
            tail.hold_trace(call.trace_id())
        queue.append(call)
        if len(queue) >= self._wake_at:
            self._wake.set()

    def internal_error(self, stage: str, exc: BaseException) -> None:
        """Count an internal failure; log it once per stage and exception type. Never raises."""
        try:
            etype = error_type_of(exc)
            self._errors.add(1, {semconv.ML_MONITOR_STAGE: stage, semconv.ERROR_TYPE: etype})
            if (stage, etype) not in self._logged and len(self._logged) < 1000:
                self._logged.add((stage, etype))
                _logger.warning("otel-mlmon internal error in %s (logged once, counted in %s)",
                                stage, semconv.MONITOR_ERROR_COUNT.name, exc_info=exc)  # fmt: skip
        except Exception:  # noqa: BLE001, S110 - the last line of defence must not raise
            pass

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            if not self._stopped:
                self.flush()

    def flush(self) -> bool:
        """Drain the queue into the instruments now. Thread-safe; never raises."""
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                queue = self._queue
                records = []
                pop = queue.popleft
                try:
                    while True:
                        records.append(pop())
                except IndexError:
                    pass
                if records:
                    clock.refresh()
                    end_spans(records, self.tail, self.internal_error)
                    self._record(records)
            return True
        except Exception as exc:  # noqa: BLE001
            self.internal_error("flush", exc)
            return False
        finally:
            detach(token)

    def start(self, settings: Settings) -> None:
        """Start the worker (again); settings apply from the first user until the last leaves."""
        if not self._stopped:
            return
        self._configure(settings)
        self.data.configure(settings)
        self._stopped = False
        self._wake.clear()
        self._start_worker()

    def shutdown(self, timeout_millis: float = 30_000) -> bool:
        """Stop the worker and flush what is queued; idempotent."""
        if self._stopped:
            return True
        self._stopped = True
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout_millis / 1000.0)
        flushed = self.flush()
        self.data.close()
        return flushed

    # ------------------------------------------------------------------ aggregation
    def _attrs(self, key: MetricKey) -> dict[str, Any]:
        return self._series.of(key)  # bounded by max_models, see _internal/cardinality.py

    def _record(self, calls: list[Call]) -> None:
        groups: dict[MetricKey, _Aggregate] = {}
        anomalies: dict[tuple, int] = {}
        data_items = []
        for call in calls:
            key = call.key
            if call.data is not None:
                data_items.append(call)
            verdict = call.verdict
            if verdict is not None:
                anomaly = (key, verdict[0], verdict[1])
                anomalies[anomaly] = anomalies.get(anomaly, 0) + 1
            agg = groups.get(key)
            if agg is None:
                agg = groups[key] = _Aggregate()
            duration = call.duration
            if duration is None:  # CUDA timing that failed (counted in end_spans)
                continue
            error = call.error
            if error is None:
                agg.durations.append(duration)
                rows = call.rows
                if rows is not None:
                    agg.sizes.append(rows)
                    agg.rows += rows
                if call.output is not None:
                    agg.outputs.append(call.output)
            else:
                agg.failures.append((duration, error))
        if data_items:
            self.data.process(data_items)
        if self._settings.anomaly_multivariate:
            self._score_multivariate(groups, anomalies)
        for (key, signal, detector), count in anomalies.items():
            self._anomalies.add(count, {**self._attrs(key), semconv.ML_ANOMALY_SIGNAL: signal,
                                        semconv.ML_ANOMALY_DETECTOR: detector})  # fmt: skip
        for key, agg in groups.items():
            attrs = self._attrs(key)
            record_duration = self._duration.record
            for duration in agg.durations:
                record_duration(duration, attrs, _NO_SPAN)
            for duration, error in agg.failures:
                record_duration(duration, {**attrs, semconv.ERROR_TYPE: error})
            if agg.rows:
                self._rows.add(agg.rows, attrs)
            record_size = self._batch.record
            for size in agg.sizes:
                record_size(size, attrs, _NO_SPAN)
            if agg.outputs:
                try:
                    self._record_outputs(key, attrs, agg.outputs)
                except Exception as exc:  # noqa: BLE001 - odd outputs must not stop the rest
                    self.internal_error("output_statistics", exc)

    def _worker_anomaly(self, key: MetricKey, signal: str, detector: str, score: float, alert: bool,
                        details: dict | None = None) -> None:  # fmt: skip
        """An anomalous point of a worker-side signal: counted; alerted (no span to carry it)
        when it opened an incident. ``details`` go to the alert's attributes only (drift: the
        most drifted feature names; never raw values)."""
        attrs = self._attrs(key)
        self._anomalies.add(1, {**attrs, semconv.ML_ANOMALY_SIGNAL: signal, semconv.ML_ANOMALY_DETECTOR: detector})
        alerter = self.alerter
        if alert and alerter is not None:
            attributes = {k: v for k, v in attrs.items() if k != semconv.ML_MODEL_NAME}
            alerter.alert(key.name, signal, detector, score, {**attributes, **(details or {})})

    def _score_multivariate(self, groups: dict[MetricKey, _Aggregate], anomalies: dict[tuple, int]) -> None:
        """IsolationForest over (log latency, log rows) of each call, in one micro-batch per model
        and flush; anomalies are counted with signal ``multivariate`` (the spans have ended)."""
        for key, agg in groups.items():
            if not agg.durations or len(agg.sizes) != len(agg.durations):
                continue
            forest = self._forests.get(key)
            if forest is None:
                from otel_mlmon.anomaly.isolation_forest import IsolationForestDetector  # noqa: PLC0415

                forest = self._forests[key] = IsolationForestDetector()
                while len(self._forests) > self._settings.max_models:  # least recently used goes
                    self._forests.popitem(last=False)
            else:
                self._forests.move_to_end(key)
            vectors = np.column_stack((np.log(np.maximum(agg.durations, 1e-9)), np.log1p(agg.sizes)))
            try:
                scores = forest.update_many(vectors)
            except Exception as exc:  # noqa: BLE001
                self.internal_error("anomaly_multivariate", exc)
                continue
            flagged = int(np.count_nonzero(scores >= forest.threshold))
            if flagged:
                anomaly = (key, "multivariate", "IsolationForestDetector")
                anomalies[anomaly] = anomalies.get(anomaly, 0) + flagged

    def _record_outputs(self, key: MetricKey, attrs: dict[str, Any], outputs: list[Any]) -> None:
        if key.output == OUT_LABELS:
            labels = [np.asarray(out) for out in outputs]
            labels = [a for a in labels if a.ndim == 1]  # multi-output: no class counts
            if labels:
                self._record_labels(key, attrs, labels)
            return
        if key.output == OUT_VALUES:
            values = np.concatenate([as_float(out).ravel() for out in outputs])
            values = values[np.isfinite(values)]
            if values.size:
                quantiles = np.quantile(values, _QUANTILES).tolist()
                for statistic, value in zip(semconv.VALUE_STATISTICS, quantiles + [float(values.mean())]):
                    self._values.set(value, {**attrs, semconv.ML_STATISTIC: statistic})
            return
        arrays = [as_float(out) for out in outputs]
        arrays = [a for a in arrays if a.ndim == 2 and a.shape[1] > 0]
        if key.output == OUT_LOGITS:  # (batch, classes) scores: argmax classes, softmax confidence
            if arrays:
                self._record_labels(key, attrs, [a.argmax(axis=1) for a in arrays])
            arrays = [probabilities(a) for a in arrays]
        elif key.output != OUT_PROBA:
            return
        budget = self._framework_settings.get(key.framework, self._settings).output_sample_size
        if budget == 0:
            return
        samples = [a.max(axis=1) for a in arrays]
        if not samples:
            return
        values = np.concatenate(samples)
        values = values[np.isfinite(values)]
        if values.size > budget:
            values = self._rng.choice(values, size=budget, replace=False)
        record = self._proba.record
        for value in values.tolist():
            record(value, attrs, _NO_SPAN)

    def _record_labels(self, key: MetricKey, attrs: dict[str, Any], labels: list[np.ndarray]) -> None:
        cap = self._framework_settings.get(key.framework, self._settings).max_class_labels
        merged: dict[str, int] = {}
        for label, count in _count_labels(labels).items():
            label = self._series.label(key, attrs, label, cap)
            merged[label] = merged.get(label, 0) + count
        for label, count in merged.items():
            self._classes.add(count, {**attrs, semconv.ML_PREDICTION_CLASS: label})


# One recorder per meter provider, shared by the instrumentors that use it: the OpenTelemetry
# SDK keeps the first instrument registered under a name (with its callback), so a second
# recorder on the same provider would be unreachable at collection time.
_recorders: dict[Any, tuple[Any, Recorder]] = {}
_recorders_lock = threading.Lock()


def acquire_recorder(meter: Meter, meter_provider: Any, settings: Settings, framework: str) -> Recorder:
    """The provider's recorder. Queue, flush and model-cap settings come from the first
    instrumentor that starts it; output-statistics settings apply per framework."""
    key = "global" if meter_provider is None else id(meter_provider)
    with _recorders_lock:
        entry = _recorders.get(key)
        if entry is None or entry[0] is not meter_provider:
            entry = _recorders[key] = (meter_provider, Recorder(meter, settings))
        recorder = entry[1]
        if recorder._users == 0:
            recorder.start(settings)
        recorder._framework_settings[framework] = settings
        recorder._users += 1
        return recorder


def release_recorder(recorder: Recorder, timeout_millis: float = 30_000) -> bool:
    with _recorders_lock:
        recorder._users = max(0, recorder._users - 1)
        if recorder._users:
            return recorder.flush()
    return recorder.shutdown(timeout_millis)


def _reinit_lock_in_child() -> None:
    global _recorders_lock
    _recorders_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_in_child)
