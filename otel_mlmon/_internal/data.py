"""Drift, data quality and model quality: the instrumentation side.

Per call, on the hot path, :meth:`DataPlane.capture` does O(1) work plus at most one bounded
copy: it takes the call's prediction ids (:mod:`otel_mlmon.quality.ids`) and a row sample of a
NumPy input (``drift_sample_rows`` rows, evenly strided, copied so that reusing the input
buffer afterwards cannot change the statistics). Everything else runs on the recording worker
(:meth:`DataPlane.process`): the drift monitor of the model (:mod:`otel_mlmon.drift`) profiles
the sample, and the quality hub (:mod:`otel_mlmon.quality`) stores the predictions for their
delayed labels and updates the label-free estimate. Metrics are read at collection time.

Inputs are profiled for one operation per model, the first one called (a service that calls
``predict`` and then ``predict_proba`` on the same rows profiles them once). Inputs that are not
NumPy arrays (DataFrames, lists) are read by reference on the worker, within the flush
interval; CUDA tensors are not profiled (copying them would synchronise the device).

The input samples are taken by :mod:`~otel_mlmon._internal.samples`, the model's reference
profile is found by :mod:`~otel_mlmon._internal.model_profiles`, outputs are read by
:mod:`~otel_mlmon._internal.outputs`, and the plane's instruments and collection callbacks are
:class:`~otel_mlmon._internal.data_metrics.DataMetrics`.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
import time
from typing import Any, Callable, Iterable

import numpy as np
from opentelemetry.metrics import Meter, Observation

from otel_mlmon import _lifecycle, semconv
from otel_mlmon._internal.config import Settings
from otel_mlmon._internal.data_metrics import DataMetrics
from otel_mlmon._internal.model_profiles import LOAD_WAIT_S, ProfileLoad, limits_of, profile_source, start_load
from otel_mlmon._internal.cadence import SeriesCadence
from otel_mlmon._internal.outputs import classes_list, output_sum, predicted_labels, softmax
from otel_mlmon._internal.samples import sample_input, sample_rows, strided
from otel_mlmon._internal.signals import SeriesWatch
from otel_mlmon.quality.ids import call_ids, set_last
from otel_mlmon._internal.state import OUT_LABELS, OUT_LOGITS, OUT_PROBA, OUT_VALUES, OpInfo

# Input samples waiting for the worker, bounded in rows (the memory they hold: 256 full samples
# of 256 rows) and in count; a sample beyond either is not profiled. Bounded in rows rather than
# samples, a flood of small calls is limited by the rate budget, not by the count of samples.
_MAX_PENDING_ROWS = 65_536
_MAX_PENDING_SAMPLES = 8192
_MAX_HELD = 4096  # calls with unread generated ids waiting HOLD_S
HOLD_S = 5.0
QUALITY_EVERY_S = 10.0
# A profiled call costs the budget at least this many rows, its fixed cost in rows (one row of the
# profile costs about 0.15 us on the worker). NumPy samples (and CPU tensors) of one flush are
# profiled together in one update, so their fixed cost per call is the copy and the grouping
# (~1-2 us): 8 rows. DataFrames and lists are profiled call by call (~25 us fixed): 64 rows.
MIN_CHARGE_ROWS = 64
MIN_CHARGE_ROWS_BATCHED = 8


class DataState:
    """What one model operation needs for data monitoring, computed once per model state."""

    __slots__ = ("model_key", "metric_key", "mode", "classes", "drift", "profile_inputs", "budget")

    def __init__(self, model_key: tuple[str, str | None], mode: str | None, classes: Any, drift: Any,
                 profile_inputs: bool, metric_key: Any = None) -> None:  # fmt: skip
        self.model_key = model_key
        self.metric_key = metric_key
        self.mode = mode
        self.classes = classes
        self.drift = drift
        self.profile_inputs = profile_inputs
        self.budget: Any = None  # RowBudget of the profiled rows, checked before any copy


class DataPlane(DataMetrics):
    """Drift monitors per model and the quality hub, exported through one meter."""

    def __init__(self, meter: Meter, settings: Settings, internal_error: Callable[[str, BaseException], None],
                 flush: Callable[[], Any] = lambda: None) -> None:  # fmt: skip
        self._settings = settings
        self._internal_error = internal_error
        self._flush = flush
        self._lock = threading.Lock()
        _lifecycle.register(self, _lifecycle.LEAF, lock="_lock")  # held across fork
        self._drift: dict[tuple[str, str | None], tuple[Any, str | None]] = {}
        self._profiled_op: dict[tuple[str, str | None], str] = {}
        self._pending_samples = 0
        self._pending_rows = 0
        self._snapshot: Any = None
        self._snapshot_at = 0.0
        self._hub: Any = None
        self._held: deque = deque()
        self.on_anomaly: Callable[..., Any] | None = None  # (key, signal, detector, score, alert[, attributes]): the recorder
        self._series: dict[tuple[str, str | None], Any] = {}
        self._drift_incidents: dict[tuple[str, str | None], Any] = {}  # DriftIncidents per model
        self._reference_shares: dict[int, tuple[Any, list[Observation]]] = {}  # per monitor, constant
        self._metric_keys: dict[tuple[str, str | None], Any] = {}
        self._quality_at = 0.0
        self._cadence = SeriesCadence(settings.max_models)
        self._create_instruments(meter)

    # ------------------------------------------------------------------ configuration
    def configure(self, settings: Settings) -> None:
        self._settings = settings
        self._cadence.max_keys = settings.max_models
        try:
            from otel_mlmon.quality.tracker import hub  # noqa: PLC0415

            self._hub = hub()
            self._hub.configure(store=settings.label_store, path=settings.label_store_path,
                                max_entries=settings.label_max_entries, ttl_s=settings.label_ttl_s,
                                window=settings.quality_window)  # fmt: skip
            self._hub.subscribe(self._on_label_delays)
            self._hub.on_error = self._internal_error
            self._hub.set_before_join(_drain_all_planes)
            _PLANES.add(self)
        except Exception as exc:  # noqa: BLE001
            self._internal_error("quality_configure", exc)

    def close(self) -> None:
        hub = self._hub
        if hub is not None:
            self.flush_held()
            _PLANES.discard(self)
            try:
                hub.unsubscribe(self._on_label_delays)
                hub.flush()
            except Exception as exc:  # noqa: BLE001
                self._internal_error("quality_close", exc)

    # ------------------------------------------------------------------ per model (once)
    def state_for(self, info: OpInfo, model: Any) -> DataState | None:
        key = (info.key.name, info.key.version)
        operation = info.key.operation
        mode = info.key.output
        settings = self._settings
        classes = None
        if mode in (OUT_LABELS, OUT_PROBA):
            classes = getattr(getattr(model, "_orig_mod", model), "classes_", None)
            classes = classes_list(classes)
        with self._lock:
            first = self._profiled_op.setdefault(key, operation)
            if len(self._profiled_op) > settings.max_models and first == operation and key not in self._drift:
                self._profiled_op.pop(key, None)
                return DataState(key, mode, classes, None, False, info.key)
        profile_inputs = first == operation and settings.data_monitoring
        drift = self._drift_monitor(key, model) if profile_inputs else None
        state = DataState(key, mode, classes, drift, profile_inputs, info.key)
        if profile_inputs:
            from otel_mlmon.drift.row_budget import RowBudget  # noqa: PLC0415

            state.budget = RowBudget(settings.drift_sample_rows, settings.drift_max_rows_per_second,
                                     min_charge=min(MIN_CHARGE_ROWS_BATCHED, settings.drift_sample_rows))  # fmt: skip
        return state

    def _drift_monitor(self, key: tuple[str, str | None], model: Any) -> Any:
        """The model's monitor, or the :class:`ProfileLoad` of its profile: read, parsed and
        built on the loader thread, never here on the caller's (see ``model_profiles``)."""
        source = profile_source(model, key[0], self._settings.profile_dir)
        if source is not None:
            build = lambda profile, digest: self._monitor_for(key, profile, digest)  # noqa: E731
            return start_load(ProfileLoad(source, limits_of(self._settings), build))
        return self._install(key, None, None)

    def _monitor_for(self, key: tuple[str, str | None], profile: Any, digest: str | None) -> Any:
        """Loader thread: the model's current monitor if it has this profile, else a new one."""
        with self._lock:
            current = self._drift.get(key)
        return current[0] if current is not None and current[1] == digest else self._new_monitor(profile)

    def _new_monitor(self, profile: Any) -> Any:
        from otel_mlmon.drift import DriftMonitor  # noqa: PLC0415

        settings = self._settings
        return DriftMonitor(profile, window_rows=settings.drift_window_rows,
                            window_seconds=settings.drift_window_s,
                            max_features=settings.drift_max_features,
                            sample_rows=settings.drift_sample_rows,
                            max_rows_per_second=None)  # the budget is paid before the copy  # fmt: skip

    def _install(self, key: tuple[str, str | None], monitor: Any, digest: str | None) -> Any:
        """The model's monitor: the current one when it has the same profile, else ``monitor``
        (a new one without a profile when None)."""
        with self._lock:
            current = self._drift.get(key)
            if current is not None and current[1] == digest:
                return current[0]
        monitor = self._new_monitor(None) if monitor is None else monitor
        with self._lock:
            self._drift[key] = (monitor, digest)
        return monitor

    def _loaded(self, data: DataState) -> Any:
        """Worker: the monitor of a state whose profile was loading, once the load is done
        (waiting for it at most LOAD_WAIT_S in all); None while it is not."""
        load = data.drift
        if not load.done.is_set() and load.waited < LOAD_WAIT_S:
            started = time.perf_counter()
            load.done.wait(LOAD_WAIT_S - load.waited)
            load.waited += time.perf_counter() - started
        if not load.done.is_set():
            return None
        monitor, digest = None, None
        if load.error is not None:  # a bad profile: data quality only
            self._internal_error("profile_load", load.error)
        else:
            monitor, digest = load.result
        data.drift = self._install(data.model_key, monitor, digest)
        return data.drift

    # ------------------------------------------------------------------ hot path
    def capture(self, call: Any, data: DataState, args: tuple, kwargs: dict, rows: int | None, now: float) -> None:
        """O(1) plus one bounded copy: the call's state, input sample, ids and timestamp, set on
        ``call`` (a :class:`~otel_mlmon._internal.call.Call`)."""
        block = None
        if data.mode is not None:
            block = call_ids(rows)
            set_last(block)
        sample = None
        if (data.profile_inputs and self._pending_samples < _MAX_PENDING_SAMPLES
                and self._pending_rows < _MAX_PENDING_ROWS):  # fmt: skip
            # The rate budget (OTEL_MLMON_DRIFT_MAX_ROWS_PER_SECOND) is paid here, so a call
            # that will not be profiled costs no copy.
            X = args[0] if args else kwargs.get("X", kwargs.get("input"))
            charge = rows if rows else 1
            if not isinstance(X, np.ndarray) and not hasattr(X, "device"):  # profiled call by call
                charge = max(charge, min(MIN_CHARGE_ROWS, self._settings.drift_sample_rows))
            if data.budget.admit(charge, now):
                sample = sample_input(X, self._settings.drift_sample_rows)
                if sample is not None:
                    self._pending_samples += 1
                    self._pending_rows += sample_rows(sample, self._settings.drift_sample_rows)
        call.data, call.sample, call.ids, call.now = data, sample, block, now

    # ------------------------------------------------------------------ worker
    def process(self, calls: Iterable[Any]) -> None:
        """Profile inputs and hand predictions to the quality hub (recording worker); ``calls``
        are the drained calls with a capture (:meth:`capture`)."""
        touched = set()
        outputs: dict[tuple[str, str | None], list[Any]] = {}
        batches: dict[tuple, tuple] = {}  # NumPy samples of one monitor and schema: one update
        latest = 0.0  # the calls' own clock (the hot path's): the cadence of the signals follows it
        for call in calls:
            data, sample, block, timestamp, output = call.data, call.sample, call.ids, call.now, call.output
            latest = timestamp if timestamp > latest else latest
            if sample is not None:
                self._pending_samples = max(0, self._pending_samples - 1)
                self._pending_rows = max(0, self._pending_rows - sample_rows(sample, self._settings.drift_sample_rows))
            try:
                y_pred = proba = None
                mode = data.mode
                if output is not None:
                    if mode == OUT_LABELS or mode == OUT_VALUES:
                        y_pred = output
                    elif mode == OUT_PROBA:
                        proba = output
                    elif mode == OUT_LOGITS:
                        proba = softmax(output)
                    if data.metric_key is not None and len(self._metric_keys) < self._settings.max_models:
                        self._metric_keys.setdefault(data.model_key, data.metric_key)
                    if self._watching:
                        point = proba if proba is not None else (y_pred if mode == OUT_VALUES else None)
                        if point is not None:
                            outputs.setdefault(data.model_key, []).append(point)
                drift = data.drift
                if isinstance(drift, ProfileLoad) and sample is not None:
                    drift = self._loaded(data)  # None: not profiled until the profile is loaded
                if drift is not None and sample is not None:
                    predictions = None
                    if y_pred is not None:
                        predictions = strided(np.asarray(y_pred), self._settings.drift_sample_rows)
                    elif proba is not None and data.classes is not None:
                        predictions = predicted_labels(strided(proba, self._settings.drift_sample_rows), data.classes)
                    if isinstance(sample, np.ndarray):  # profiled with the flush's other arrays
                        batch = (id(drift), sample.shape[1], sample.dtype.str,
                                 None if predictions is None else (predictions.ndim, predictions.dtype.str))  # fmt: skip
                        entry = batches.get(batch)
                        if entry is None:
                            entry = batches[batch] = (drift, [], [], [timestamp])
                        entry[1].append(sample)
                        if predictions is not None:
                            entry[2].append(predictions)
                        entry[3][0] = timestamp
                    else:
                        sample = strided(sample, self._settings.drift_sample_rows)
                        drift.update(sample, predictions=predictions, timestamp=timestamp)
                    touched.add(data.model_key)
                if block is not None and self._hub is not None and (y_pred is not None or proba is not None):
                    item = (data.model_key, block, y_pred, proba, data.classes, timestamp)
                    if block.generated and getattr(block, "_ids", None) is None:
                        self._hold(item)  # nobody has read these ids yet
                    else:
                        self._hand_over(item, True)
            except Exception as exc:  # noqa: BLE001
                self._internal_error("data_monitoring", exc)
        self._profile_batches(batches)
        now = time.time()
        self._release_held(now)
        cadence = self._cadence
        for key in touched:
            counted = self._drain(key)
            if counted is not None:
                cadence.add(key, issues=counted[0], rows=counted[1])
        if self._watching:
            for key, arrays in outputs.items():
                total = output_sum(arrays)
                if total is not None:
                    cadence.add(key, out_sum=total[0], out_n=total[1])
            for key in touched | outputs.keys():  # one point per model per second (_internal/cadence.py)
                point = cadence.due(key, latest or now)
                if point is None:
                    continue
                if point[0] is not None:
                    self._observe(key, "data_quality", point[0], now)
                if point[1] is not None:
                    self._observe(key, "output", point[1], now)
                if key in touched and "drift" in self._settings.anomaly_signals:
                    self._observe_drift(key, now)
            if now - self._quality_at >= QUALITY_EVERY_S and self._hub is not None:
                self._quality_at = now
                self._watch_quality(now)

    def _profile_batches(self, batches: dict[tuple, tuple]) -> None:
        """One monitor update per model and schema for the NumPy samples of one flush: the
        update's fixed cost (tens of microseconds) is paid once, not per call, so a stream of
        small calls is profiled within the row budget instead of being starved by that cost."""
        for monitor, samples, predictions, (timestamp,) in batches.values():
            try:
                X = samples[0] if len(samples) == 1 else np.concatenate(samples)
                y = None
                if predictions:
                    y = predictions[0] if len(predictions) == 1 else np.concatenate(predictions)
                monitor.update(X, predictions=y, timestamp=timestamp, sample=False)
            except Exception as exc:  # noqa: BLE001
                self._internal_error("data_monitoring", exc)

    # ------------------------------------------------------------------ worker-side signals
    @property
    def _watching(self) -> bool:
        settings = self._settings
        return settings.anomaly_detection and self.on_anomaly is not None

    def _observe(self, key: tuple[str, str | None], signal: str, value: float, now: float) -> None:
        """Feed one point of a worker-side signal to the model's detector; report a verdict."""
        try:
            watch = self._series.get(key)
            if watch is None:
                if len(self._series) >= self._settings.max_models:
                    return
                watch = self._series[key] = SeriesWatch(self._settings.anomaly_signals, self._make_detector)
            verdict = watch.observe(signal, value, now)
            metric_key = self._metric_keys.get(key)
            if verdict is not None and metric_key is not None and self.on_anomaly is not None:
                self.on_anomaly(metric_key, *verdict)
        except Exception as exc:  # noqa: BLE001
            self._internal_error("anomaly_detection", exc)

    def _observe_drift(self, key: tuple[str, str | None], now: float) -> None:
        """Judge the model's drift window (once per second, see _internal/cadence.py): episodes of the monitor's verdict
        (:class:`~otel_mlmon.drift.incidents.DriftIncidents`), alerted at their onset with the
        most drifted features named."""
        try:
            entry = self._drift.get(key)
            if entry is None:
                return
            incidents = self._drift_incidents.get(key)
            if incidents is None:
                if len(self._drift_incidents) >= self._settings.max_models:
                    return
                from otel_mlmon.drift.incidents import DriftIncidents  # noqa: PLC0415

                incidents = self._drift_incidents[key] = DriftIncidents()
            verdict = incidents.update(entry[0].observations(), now)
            metric_key = self._metric_keys.get(key)
            if verdict is None or not verdict.anomalous or metric_key is None or self.on_anomaly is None:
                return
            attributes = {semconv.ML_FEATURE_NAME: verdict.features[0], semconv.ML_DRIFT_FEATURES: verdict.features}
            self.on_anomaly(metric_key, "drift", incidents.name, verdict.score, verdict.alert, attributes)
        except Exception as exc:  # noqa: BLE001
            self._internal_error("anomaly_detection", exc)

    def _make_detector(self) -> Any:
        from otel_mlmon.anomaly import default_detector  # noqa: PLC0415

        detector = default_detector()
        if self._settings.anomaly_threshold is not None:
            detector.threshold = self._settings.anomaly_threshold
        return detector

    def _watch_quality(self, now: float) -> None:
        snapshot = self._hub.snapshot()
        for key, values in snapshot.quality.items():
            key = tuple(key)
            for source, signal in (("realized", "accuracy"), ("estimated", "estimated_accuracy")):
                value = values.get(("accuracy", source), values.get(("r2", source)))
                if value is not None:
                    self._observe(key, signal, value, now)

    # Predictions wait for labels only when the application can know their ids: it supplied
    # them (prediction_ids) or read the generated ones (last_prediction_ids). Storing every
    # row of every call would cost about 2-3 us per row on this worker for ids nobody can
    # quote. Calls with unread generated ids are held for HOLD_S (so that reading the ids
    # right after the call, racing this worker, still works), then handed over without
    # storage: they still feed the label-free estimate.
    def _hold(self, item: tuple) -> None:
        held = self._held
        if len(held) >= _MAX_HELD:
            self._estimate_only([held.popleft()[1]])
        held.append((time.time() + HOLD_S, item))

    def _release_held(self, now: float) -> None:
        held = self._held
        unread = []
        while held and (held[0][0] <= now or getattr(held[0][1][1], "_ids", None) is not None):
            _, item = held.popleft()
            if getattr(item[1], "_ids", None) is not None:
                self._hand_over(item, True)
            else:
                unread.append(item)
        if unread:
            self._estimate_only(unread)

    def _estimate_only(self, items: list[tuple]) -> None:
        """Calls whose ids nobody read: only their probabilities matter (label-free estimate),
        handed over as one batch per model, so this costs no per-call work in the hub."""
        groups: dict[tuple, list[tuple]] = {}
        for item in items:
            if item[3] is not None:  # proba
                groups.setdefault((item[0], id(item[4])), []).append(item)
        for group in groups.values():
            key, _, _, _, classes, timestamp = group[-1]
            try:
                proba = np.concatenate([np.asarray(item[3]) for item in group]) if len(group) > 1 else group[0][3]
            except ValueError:  # different column counts (a model refitted with other classes)
                for item in group:
                    self._hand_over(item, False)
                continue
            self._hand_over((key, range(len(proba)), None, proba, classes, timestamp), False)

    def _hand_over(self, item: tuple, store: bool) -> None:
        key, block, y_pred, proba, classes, timestamp = item
        try:
            self._hub.on_predictions(key, block, y_pred=y_pred, proba=proba, classes=classes,
                                     timestamp=timestamp, store=store)  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            self._internal_error("quality_predictions", exc)

    def flush_held(self) -> None:
        """Hand over every held call now (at shutdown and force_flush)."""
        self._release_held(float("inf"))



_PLANES: "weakref.WeakSet[DataPlane]" = weakref.WeakSet()


def _drain_all_planes() -> None:
    """Before labels join: queued calls reach the hub, so a label recorded right after its
    prediction finds it."""
    for plane in list(_PLANES):
        try:
            plane._flush()
        except Exception as exc:  # noqa: BLE001
            plane._internal_error("drain_before_join", exc)
