"""Every span attribute, metric name, unit and bucket layout otel-mlmon emits, defined once.

The reference tables in ``docs/reference.md`` are checked against this module by
``tests/test_reference_docs.py``: add a name here, document it there.

Naming follows the OpenTelemetry conventions: lowercase dot-separated namespaces, UCUM units
(``s`` for durations, ``{row}``-style annotations for counts), ``.duration`` histograms in
seconds, no ``_total`` suffix (exporters add it where their format wants it). The ``ml.``
namespace is this project's; ``error.type`` is the OpenTelemetry general attribute.
"""

from __future__ import annotations

from typing import NamedTuple

# --------------------------------------------------------------------------- span attributes
ML_MODEL_NAME = "ml.model.name"
"""Model name from :func:`otel_mlmon.set_model_info`, else the estimator's class name."""

ML_MODEL_VERSION = "ml.model.version"
"""Model version from :func:`otel_mlmon.set_model_info`; absent when not set."""

ML_MODEL_CLASS = "ml.model.class"
"""Fully qualified class of the called estimator, e.g. ``sklearn.pipeline.Pipeline``."""

ML_FRAMEWORK = "ml.framework"
"""The framework of the model: ``sklearn`` or ``torch``."""

ML_OPERATION = "ml.operation"
"""The inference method called: ``predict``, ``predict_proba``, ``decision_function`` ..."""

ML_BATCH_SIZE = "ml.batch.size"
"""Rows in the call's input (its leading dimension)."""

ML_INPUT_FEATURE_COUNT = "ml.input.feature_count"
"""Columns of a 2-D input (its second dimension); absent for other shapes."""

ML_PREDICTION_CLASS = "ml.prediction.class"
"""A predicted class label (metric attribute of ``ml.prediction.class.count`` only)."""

ML_STATISTIC = "ml.statistic"
"""Which summary statistic a ``ml.prediction.value`` point is: ``min``, ``p05`` .. ``p95``,
``max`` or ``mean``."""

ML_MONITOR_STAGE = "ml.monitor.stage"
"""Where inside otel-mlmon an internal failure happened (self-telemetry only)."""

ML_INPUT_SHAPE = "ml.input.shape"
"""PyTorch: shape of the first tensor argument (an int array)."""

ML_INPUT_DTYPE = "ml.input.dtype"
"""PyTorch: dtype of the first tensor argument, e.g. ``float32``."""

ML_INPUT_DEVICE = "ml.input.device"
"""PyTorch: device of the first tensor argument, e.g. ``cpu`` or ``cuda:0``."""

ML_MODEL_PARAMETER_COUNT = "ml.model.parameter_count"
"""PyTorch: number of parameters of the module (computed once per module)."""

ML_ANOMALY = "ml.anomaly"
"""``true`` on the span of a call whose signal a detector found anomalous (absent otherwise)."""

ML_ANOMALY_SCORE = "ml.anomaly.score"
"""The detector's score in [0, 1] for that signal (higher = more anomalous)."""

ML_ANOMALY_SIGNAL = "ml.anomaly.signal"
"""Which signal was anomalous: ``latency``, ``batch_size``, ``error_rate``, ``multivariate``
(IsolationForest over latency and rows, metric only)."""

ML_ANOMALY_DETECTOR = "ml.anomaly.detector"
"""The detector class that gave the verdict, e.g. ``DefaultDetector``."""

ML_ANOMALY_ALERT = "ml.anomaly.alert"
"""``true`` on the span of the call that opened an incident (the one that raised the alert)."""

ML_SAMPLING_DECISION = "ml.sampling.decision"
"""``AnomalyDetectionSpanProcessor``'s decision for a span: ``kept`` or ``dropped``."""

ML_SAMPLING_REASON = "ml.sampling.reason"
"""Why: ``anomaly``, ``error`` or ``ratio`` (a normal span, sampled by the ratio)."""

ML_ALERT_SINK = "ml.alert.sink"
"""Where an alert was not delivered (metric attribute of ``ml.alert.dropped.count`` only):
``queue`` (the dispatcher's queue, before any sink), ``log``, ``callback`` or ``webhook``."""

ML_FEATURE_NAME = "ml.feature.name"
"""Input feature (DataFrame column, else ``x0``, ``x1`` ...); ``_output`` for the model's output,
``_input`` for whole-input schema events (column count, unknown columns). Capped per model:
features beyond the cap are reported as ``_other``."""

ML_DRIFT_METHOD = "ml.drift.method"
"""Drift statistic: ``psi``, ``jensen_shannon``, ``ks``, ``wasserstein``, ``chi_square``."""

ML_DRIFT_BIN = "ml.drift.bin"
"""A reference bin: numeric ``underflow`` (below the reference minimum), ``0`` .. ``n-1`` (quantile
bins), ``overflow`` (above the maximum); categorical ``0`` .. ``K`` (top-K slots, ``K`` = other)."""

ML_DRIFT_FEATURES = "ml.drift.features"
"""On a drift alert (not on spans or metrics): the most drifted input features, most drifted
first (at most 3); ``ml.feature.name`` is the first of them. Names only, never values."""

ML_DATA_QUALITY_ISSUE = "ml.data_quality.issue"
"""Kind of data-quality event: ``missing``, ``nan``, ``inf``, ``out_of_range``,
``unseen_category``, ``schema_change``."""

ML_QUALITY_METRIC = "ml.quality.metric"
"""Quality metric: ``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc``, ``log_loss``,
``fpr``, ``tpr``, ``mae``, ``rmse``, ``r2``."""

ML_QUALITY_SOURCE = "ml.quality.source"
"""``realized`` (from ground-truth labels) or ``estimated`` (label-free, confidence based)."""

ML_LABEL_OUTCOME = "ml.label.outcome"
"""What happened to a ground-truth label: ``joined``, ``unknown_id``, ``duplicate``,
``invalid``."""

CPU_MODE = "cpu.mode"
"""OpenTelemetry attribute of ``process.cpu.*``: ``user`` or ``system``."""

HW_ID = "hw.id"
"""OpenTelemetry hardware attribute: the GPU, e.g. ``cuda:0``."""

ERROR_TYPE = "error.type"
"""OpenTelemetry general attribute: the exception's class name on a failed call."""

OTHER = "_other"
"""Value that replaces a model name or class label once its cardinality cap is reached."""

SPAN_ATTRIBUTES = (
    ML_MODEL_NAME,
    ML_MODEL_VERSION,
    ML_MODEL_CLASS,
    ML_FRAMEWORK,
    ML_OPERATION,
    ML_BATCH_SIZE,
    ML_INPUT_FEATURE_COUNT,
    ML_INPUT_SHAPE,
    ML_INPUT_DTYPE,
    ML_INPUT_DEVICE,
    ML_MODEL_PARAMETER_COUNT,
    ML_ANOMALY,
    ML_ANOMALY_SCORE,
    ML_ANOMALY_SIGNAL,
    ML_ANOMALY_DETECTOR,
    ML_ANOMALY_ALERT,
    ERROR_TYPE,
)


# --------------------------------------------------------------------------- metrics
class MetricSpec(NamedTuple):
    name: str
    instrument: str
    unit: str
    description: str
    attributes: tuple[str, ...]


# Explicit bucket advice for inference latency: 50 µs .. 10 s, roughly 1-2.5-5 per decade.
DURATION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(0, 17))  # 1 .. 65536 rows
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05 .. 1.0

_MODEL = (ML_MODEL_NAME, ML_MODEL_VERSION, ML_FRAMEWORK, ML_OPERATION)

INFERENCE_DURATION = MetricSpec(
    "ml.inference.duration", "histogram", "s",
    "Duration of top-level inference calls.", _MODEL + (ERROR_TYPE,),
)  # fmt: skip
INFERENCE_ROW_COUNT = MetricSpec(
    "ml.inference.row.count", "counter", "{row}",
    "Input rows scored by inference calls.", _MODEL,
)  # fmt: skip
INFERENCE_BATCH_SIZE = MetricSpec(
    "ml.inference.batch.size", "histogram", "{row}",
    "Rows per inference call.", _MODEL,
)  # fmt: skip
PREDICTION_CLASS_COUNT = MetricSpec(
    "ml.prediction.class.count", "counter", "{prediction}",
    "Predicted classes: labels of classifiers' predict, argmax of classification modules "
    "(labels capped per model).",
    _MODEL + (ML_PREDICTION_CLASS,),
)  # fmt: skip
# OpenTelemetry histograms only take non-negative values, and regressor outputs can be
# negative: their distribution is exported as summary gauges over each flush window instead.
VALUE_STATISTICS = ("min", "p05", "p25", "p50", "p75", "p95", "max", "mean")
PREDICTION_VALUE = MetricSpec(
    "ml.prediction.value", "gauge", "1",
    "Distribution of regressor (or regression module) outputs over the last flush window, "
    "one point per statistic.",
    _MODEL + (ML_STATISTIC,),
)  # fmt: skip
PREDICTION_PROBABILITY = MetricSpec(
    "ml.prediction.probability", "histogram", "1",
    "Sampled probability of the predicted class: predict_proba, or softmax of a classification "
    "module's scores (bounded sample).", _MODEL,
)  # fmt: skip
MONITOR_ERROR_COUNT = MetricSpec(
    "ml.monitor.error.count", "counter", "{error}",
    "Internal otel-mlmon failures, caught and never raised into the model call.",
    (ML_MONITOR_STAGE, ERROR_TYPE),
)  # fmt: skip
MONITOR_DROPPED_COUNT = MetricSpec(
    "ml.monitor.dropped.count", "counter", "{record}",
    "Per-call records dropped because the bounded recording queue was full.", (),
)  # fmt: skip
MONITOR_QUEUE_SIZE = MetricSpec(
    "ml.monitor.queue.size", "observable_updowncounter", "{record}",
    "Per-call records waiting for the recording worker.", (),
)  # fmt: skip

ANOMALY_COUNT = MetricSpec(
    "ml.anomaly.count", "counter", "{anomaly}",
    "Calls whose signal a detector found anomalous (every call, sampled or not).",
    _MODEL + (ML_ANOMALY_SIGNAL, ML_ANOMALY_DETECTOR),
)  # fmt: skip
SAMPLING_SPAN_COUNT = MetricSpec(
    "ml.sampling.span.count", "observable_counter", "{span}",
    "Spans seen by AnomalyDetectionSpanProcessor, by decision and reason.",
    (ML_SAMPLING_DECISION, ML_SAMPLING_REASON),
)  # fmt: skip
ALERT_COUNT = MetricSpec(
    "ml.alert.count", "observable_counter", "{alert}", "Alerts raised (one per incident).",
    (ML_MODEL_NAME, ML_ANOMALY_SIGNAL),
)  # fmt: skip

ALERT_DROPPED_COUNT = MetricSpec(
    "ml.alert.dropped.count", "observable_counter", "{alert}",
    "Alerts not delivered, by sink (queue, log, callback, webhook) and error.type: queue_full, "
    "shutdown, timeout, the HTTP status the webhook gave up on (e.g. 503 after its retries, 404 at "
    "once) or the exception class (e.g. ConnectionRefusedError); at most 64 series per meter "
    "provider, later reasons as _OTHER.",
    (ML_ALERT_SINK, ERROR_TYPE),
)  # fmt: skip

# Data drift, data quality and model quality (issue: delayed ground truth). Per model, not per
# operation: the attributes are model name and version.
_MODEL_ONLY = (ML_MODEL_NAME, ML_MODEL_VERSION)
DRIFT_SCORE = MetricSpec(
    "ml.drift.score", "observable_gauge", "1",
    "Drift of the current window against the reference profile, per feature (top-K drifting "
    "features plus the output) and statistic. psi, jensen_shannon: the statistic; wasserstein: "
    "the W1 distance in reference standard deviations (the feature's unit divided by its "
    "reference standard deviation); ks: the KS statistic; chi_square: the statistic divided by "
    "the window size (Cramer-style).",
    _MODEL_ONLY + (ML_FEATURE_NAME, ML_DRIFT_METHOD),
)  # fmt: skip
DRIFT_P_VALUE = MetricSpec(
    "ml.drift.p_value", "observable_gauge", "1",
    "p-value of the KS (numeric) or chi-square (categorical) test of the current window.",
    _MODEL_ONLY + (ML_FEATURE_NAME, ML_DRIFT_METHOD),
)  # fmt: skip
DRIFT_SHARE = MetricSpec(
    "ml.drift.share", "observable_gauge", "1",
    "Share of the model's input features whose drift is above the threshold (dataset level).",
    _MODEL_ONLY,
)  # fmt: skip
DRIFT_BIN_COUNT = MetricSpec(
    "ml.drift.bin.count", "counter", "{row}",
    "Production rows per reference bin (under/overflow bins included), per feature (every "
    "feature up to OTEL_MLMON_DRIFT_MAX_FEATURES); sums over replicas give the fleet's "
    "distribution for backend-side drift.",
    _MODEL_ONLY + (ML_FEATURE_NAME, ML_DRIFT_BIN),
)  # fmt: skip
DRIFT_REFERENCE_SHARE = MetricSpec(
    "ml.drift.reference.share", "observable_gauge", "1",
    "The reference profile's share of rows per bin, per feature (the features and bins of "
    "ml.drift.bin.count, empty bins included); constant, the other side of backend-side PSI, "
    "Jensen-Shannon or chi-square.",
    _MODEL_ONLY + (ML_FEATURE_NAME, ML_DRIFT_BIN),
)  # fmt: skip
DATA_QUALITY_COUNT = MetricSpec(
    "ml.data_quality.count", "counter", "{value}",
    "Data-quality events in inference inputs, by kind and feature (features capped).",
    _MODEL_ONLY + (ML_FEATURE_NAME, ML_DATA_QUALITY_ISSUE),
)  # fmt: skip
DATA_ROW_COUNT = MetricSpec(
    "ml.data.row.count", "counter", "{row}",
    "Input rows profiled for drift and data quality (after row sampling).", _MODEL_ONLY,
)  # fmt: skip
QUALITY_SCORE = MetricSpec(
    "ml.quality.score", "observable_gauge", "1",
    "Model quality over the sliding window of labelled predictions (realized) or of recent "
    "predictions (estimated, confidence based).",
    _MODEL_ONLY + (ML_QUALITY_METRIC, ML_QUALITY_SOURCE),
)  # fmt: skip
LABEL_COUNT = MetricSpec(
    "ml.label.count", "counter", "{label}",
    "Ground-truth labels received, by outcome (joined or why rejected).",
    _MODEL_ONLY + (ML_LABEL_OUTCOME,),
)  # fmt: skip
LABEL_DELAY = MetricSpec(
    "ml.label.delay.duration", "histogram", "s",
    "Time from prediction to its ground-truth label.", _MODEL_ONLY,
)  # fmt: skip
PREDICTION_PENDING = MetricSpec(
    "ml.prediction.pending", "observable_updowncounter", "{prediction}",
    "Predictions stored and waiting for their label (bounded by max entries and TTL).", (),
)  # fmt: skip
LABEL_DELAY_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 7 * 86400.0)
QUALITY_METRICS = (
    DRIFT_SCORE, DRIFT_P_VALUE, DRIFT_SHARE, DRIFT_BIN_COUNT, DRIFT_REFERENCE_SHARE, DATA_QUALITY_COUNT, DATA_ROW_COUNT,
    QUALITY_SCORE, LABEL_COUNT, LABEL_DELAY, PREDICTION_PENDING,
)  # fmt: skip

# Resource metrics, read at collection time. Names from the OpenTelemetry semantic conventions
# (process.*, hw.gpu.*); PyTorch's caching-allocator reserve has no convention and is ml.*.
PROCESS_CPU_TIME = MetricSpec(
    "process.cpu.time", "observable_counter", "s", "CPU time used by this process.", (CPU_MODE,),
)  # fmt: skip
PROCESS_CPU_UTILIZATION = MetricSpec(
    "process.cpu.utilization", "observable_gauge", "1",
    "CPU time since the last collection / (elapsed time x CPUs available to the process).", (CPU_MODE,),
)  # fmt: skip
PROCESS_MEMORY_USAGE = MetricSpec(
    "process.memory.usage", "observable_updowncounter", "By", "Resident memory of this process.", (),
)  # fmt: skip
PROCESS_MEMORY_VIRTUAL = MetricSpec(
    "process.memory.virtual", "observable_updowncounter", "By", "Virtual memory of this process.", (),
)  # fmt: skip
GPU_MEMORY_USAGE = MetricSpec(
    "hw.gpu.memory.usage", "observable_updowncounter", "By",
    "GPU memory held by PyTorch tensors (torch.cuda.memory_allocated), per device.", (HW_ID,),
)  # fmt: skip
GPU_MEMORY_LIMIT = MetricSpec(
    "hw.gpu.memory.limit", "observable_updowncounter", "By", "Total memory of the GPU.", (HW_ID,),
)  # fmt: skip
GPU_MEMORY_RESERVED = MetricSpec(
    "ml.gpu.memory.reserved", "observable_updowncounter", "By",
    "GPU memory reserved by PyTorch's caching allocator (torch.cuda.memory_reserved).", (HW_ID,),
)  # fmt: skip
RESOURCE_METRICS = (
    PROCESS_CPU_TIME, PROCESS_CPU_UTILIZATION, PROCESS_MEMORY_USAGE, PROCESS_MEMORY_VIRTUAL,
    GPU_MEMORY_USAGE, GPU_MEMORY_LIMIT, GPU_MEMORY_RESERVED,
)  # fmt: skip

METRICS = (
    INFERENCE_DURATION,
    INFERENCE_ROW_COUNT,
    INFERENCE_BATCH_SIZE,
    PREDICTION_CLASS_COUNT,
    PREDICTION_VALUE,
    PREDICTION_PROBABILITY,
    MONITOR_ERROR_COUNT,
    MONITOR_DROPPED_COUNT,
    MONITOR_QUEUE_SIZE,
    ANOMALY_COUNT,
    SAMPLING_SPAN_COUNT,
    ALERT_COUNT,
    ALERT_DROPPED_COUNT,
) + QUALITY_METRICS + RESOURCE_METRICS
