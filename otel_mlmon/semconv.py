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
) + RESOURCE_METRICS
