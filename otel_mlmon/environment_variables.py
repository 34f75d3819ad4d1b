"""Every ``OTEL_MLMON_*`` environment variable, defined once.

Precedence everywhere: an explicit argument to ``instrument()``, then the environment variable,
then the default written here. A malformed environment value logs a warning and falls back to
the default; a bad explicit argument raises :class:`ValueError`. ``docs/configuration.md`` is
checked against this module by the test suite.
"""

OTEL_MLMON_OPERATIONS = "OTEL_MLMON_OPERATIONS"
"""
.. envvar:: OTEL_MLMON_OPERATIONS

Comma-separated inference methods that open a span when called at top level.
Default: ``predict,predict_proba,predict_log_proba,decision_function,score_samples``.
Add ``transform`` to trace stand-alone transformers too.
"""

OTEL_MLMON_DETAIL_SPANS = "OTEL_MLMON_DETAIL_SPANS"
"""
.. envvar:: OTEL_MLMON_DETAIL_SPANS

``true`` adds child spans for the inner steps of a top-level call (pipeline steps, ensemble
members, search's best estimator). They carry no metrics. Default: ``false``.
"""

OTEL_MLMON_CURRENT_SPAN = "OTEL_MLMON_CURRENT_SPAN"
"""
.. envvar:: OTEL_MLMON_CURRENT_SPAN

Whether a call's span is the current span while the model runs, so that spans started inside
the model's own code are its children. ``auto`` (default): only for models that can run code
outside the known ML libraries (a scikit-learn estimator, pipeline step or function parameter
defined elsewhere, e.g. a custom transformer that calls a feature store), and for every model
under ``OTEL_MLMON_DETAIL_SPANS``; the span of any other model (built-in scikit-learn estimators,
PyTorch modules) is started and ended by the recording worker after the call, with the same
parent, times and attributes, which takes most of the span's cost off the call. ``always``: every
call's span is current (the cost stays in the call). ``never``: no span is current during the
call, except under ``OTEL_MLMON_DETAIL_SPANS``.
"""

OTEL_MLMON_CAPTURE_EXCEPTION_MESSAGE = "OTEL_MLMON_CAPTURE_EXCEPTION_MESSAGE"
"""
.. envvar:: OTEL_MLMON_CAPTURE_EXCEPTION_MESSAGE

``true`` records the exception message and stack trace on failed spans. Default ``false``:
messages can quote input values (``could not convert string to float: 'x'``), so only the
exception type is recorded.
"""

OTEL_MLMON_MAX_MODELS = "OTEL_MLMON_MAX_MODELS"
"""
.. envvar:: OTEL_MLMON_MAX_MODELS

Distinct (model name, version) pairs used as metric attributes; later ones are recorded as
``_other``. Spans keep the real name. Default: ``100``.
"""

OTEL_MLMON_MAX_CLASS_LABELS = "OTEL_MLMON_MAX_CLASS_LABELS"
"""
.. envvar:: OTEL_MLMON_MAX_CLASS_LABELS

Distinct predicted class labels recorded per model in ``ml.prediction.class.count``; later
labels are counted as ``_other``. Default: ``32``.
"""

OTEL_MLMON_OUTPUT_SAMPLE_SIZE = "OTEL_MLMON_OUTPUT_SAMPLE_SIZE"
"""
.. envvar:: OTEL_MLMON_OUTPUT_SAMPLE_SIZE

Predicted-class probabilities recorded into ``ml.prediction.probability`` per model and
flush, drawn uniformly from everything ``predict_proba`` returned since the last flush
(each recorded value costs a few microseconds of the worker's time). ``0`` turns the
histogram off. Default: ``256``.
"""

OTEL_MLMON_QUEUE_SIZE = "OTEL_MLMON_QUEUE_SIZE"
"""
.. envvar:: OTEL_MLMON_QUEUE_SIZE

Capacity of the per-call record queue between the model call and the recording worker.
A full queue drops the record and counts it in ``ml.monitor.dropped.count``; the model call
never waits. Default: ``65536``.
"""

OTEL_MLMON_FLUSH_INTERVAL = "OTEL_MLMON_FLUSH_INTERVAL"
"""
.. envvar:: OTEL_MLMON_FLUSH_INTERVAL

Milliseconds between two drains of the record queue by the worker. Every metric collection
drains it as well, so exported metrics are always up to date. Default: ``1000``.
"""

OTEL_MLMON_RESOURCE_METRICS = "OTEL_MLMON_RESOURCE_METRICS"
"""
.. envvar:: OTEL_MLMON_RESOURCE_METRICS

``true`` exports process CPU and memory metrics (``process.*``) and, when PyTorch has
initialised CUDA, GPU memory per device (``hw.gpu.memory.*``), read at collection time.
Default: ``true``.
"""

OTEL_MLMON_TRACE_TRAINING = "OTEL_MLMON_TRACE_TRAINING"
"""
.. envvar:: OTEL_MLMON_TRACE_TRAINING

PyTorch: ``true`` also traces forwards of modules in training mode with gradients enabled.
Default ``false``: only inference (eval mode, ``torch.no_grad()`` or ``torch.inference_mode()``).
"""

OTEL_MLMON_CUDA_TIMING = "OTEL_MLMON_CUDA_TIMING"
"""
.. envvar:: OTEL_MLMON_CUDA_TIMING

PyTorch on CUDA, where kernels run asynchronously: ``events`` (default) times each call with
CUDA events read by the recording worker, so ``ml.inference.duration`` is the GPU time and the
caller never waits (the span covers the CPU-side launch only); ``sync`` calls
``torch.cuda.synchronize()`` after each call, so span and metric include the GPU work at the
cost of the CPU/GPU overlap; ``none`` measures the CPU side only.
"""

OTEL_MLMON_ANOMALY_DETECTION = "OTEL_MLMON_ANOMALY_DETECTION"
"""
.. envvar:: OTEL_MLMON_ANOMALY_DETECTION

``true`` runs the streaming detectors on every top-level call's signals (latency, batch size,
error rate) on the recording worker, which then ends its span; an anomalous call's span carries ``ml.anomaly.*`` attributes
and is counted in ``ml.anomaly.count``. Default: ``true``.
"""

OTEL_MLMON_ANOMALY_SIGNALS = "OTEL_MLMON_ANOMALY_SIGNALS"
"""
.. envvar:: OTEL_MLMON_ANOMALY_SIGNALS

Comma-separated signals watched by the detectors. Per call, judged on the recording worker before it ends the call's span (the
span carries the verdict): ``latency``, ``row_latency`` (latency per input row),
``batch_size``, ``error_rate`` (over windows of 50 calls). On the recording worker, one point
per model per second, however often the queue drains (the verdict is counted and alerted, spans have ended): ``output`` (mean regressor
output or mean confidence), ``data_quality`` (data-quality events per profiled row), ``drift``
(share of drifting features), ``accuracy`` and ``estimated_accuracy`` (``r2`` for regressors;
every 10 s). Default: all but ``row_latency``.
"""

OTEL_MLMON_ANOMALY_THRESHOLD = "OTEL_MLMON_ANOMALY_THRESHOLD"
"""
.. envvar:: OTEL_MLMON_ANOMALY_THRESHOLD

Score in (0, 1) above which a detector's verdict is "anomalous". Default: empty, each
detector's own default threshold.
"""

OTEL_MLMON_ANOMALY_MULTIVARIATE = "OTEL_MLMON_ANOMALY_MULTIVARIATE"
"""
.. envvar:: OTEL_MLMON_ANOMALY_MULTIVARIATE

``true`` also runs an IsolationForest per model over each call's (log latency, log rows) on the
recording worker, in micro-batches (about 9 us per call, off the call itself but on the same
interpreter); its anomalies are counted in ``ml.anomaly.count`` with signal ``multivariate``.
Default: ``false``.
"""

OTEL_MLMON_ANOMALY_PROCESSOR = "OTEL_MLMON_ANOMALY_PROCESSOR"
"""
.. envvar:: OTEL_MLMON_ANOMALY_PROCESSOR

``true`` wraps the span processors of the SDK tracer provider in
``AnomalyDetectionSpanProcessor`` when an instrumentor is instrumented (this is how it is
installed under ``opentelemetry-instrument``). Default: ``true``.
"""

OTEL_MLMON_SAMPLING_RATIO = "OTEL_MLMON_SAMPLING_RATIO"
"""
.. envvar:: OTEL_MLMON_SAMPLING_RATIO

Share of normal spans that ``AnomalyDetectionSpanProcessor`` passes on to the exporter; every
anomalous and every error span is always passed on. Default: ``1.0`` (nothing dropped).
"""

OTEL_MLMON_ALERT_COOLDOWN = "OTEL_MLMON_ALERT_COOLDOWN"
"""
.. envvar:: OTEL_MLMON_ALERT_COOLDOWN

Minimum seconds between two alerts of the same model and signal, on top of the incident layer
(which already raises one alert per incident: at its onset, none while it lasts or at its
recovery). Default: ``0`` (off): a later, separate incident always alerts.
"""

OTEL_MLMON_ALERT_WEBHOOK_URL = "OTEL_MLMON_ALERT_WEBHOOK_URL"
"""
.. envvar:: OTEL_MLMON_ALERT_WEBHOOK_URL

When set, every alert is POSTed there as JSON (bounded retry, never blocking the model call).
Default: empty (no webhook).
"""

OTEL_MLMON_ALERT_LOGS = "OTEL_MLMON_ALERT_LOGS"
"""
.. envvar:: OTEL_MLMON_ALERT_LOGS

``true`` emits one OpenTelemetry log record (severity WARN, with the span's trace and span
ids) per alert. Default: ``true``.
"""

OTEL_MLMON_DATA_MONITORING = "OTEL_MLMON_DATA_MONITORING"
"""
.. envvar:: OTEL_MLMON_DATA_MONITORING

``true`` profiles inference inputs and outputs (a bounded row sample per call, on the
recording worker) for data quality and, when the model has a reference profile, drift.
Default: ``true``.
"""

OTEL_MLMON_DRIFT_SAMPLE_ROWS = "OTEL_MLMON_DRIFT_SAMPLE_ROWS"
"""
.. envvar:: OTEL_MLMON_DRIFT_SAMPLE_ROWS

Row-sampling budget: at most this many rows of each call's input are profiled (an evenly
strided sample of larger batches). Default: ``256``.
"""

OTEL_MLMON_DRIFT_WINDOW_ROWS = "OTEL_MLMON_DRIFT_WINDOW_ROWS"
"""
.. envvar:: OTEL_MLMON_DRIFT_WINDOW_ROWS

Size of the sliding window of production rows that drift is computed over. Default: ``1000``.
"""

OTEL_MLMON_DRIFT_MAX_ROWS_PER_SECOND = "OTEL_MLMON_DRIFT_MAX_ROWS_PER_SECOND"
"""
.. envvar:: OTEL_MLMON_DRIFT_MAX_ROWS_PER_SECOND

Rate budget of drift and data-quality profiling, per model: at most this many rows per second
(bursts up to one second's worth). A call the budget cannot pay for is not profiled at all and
costs no copy. Default: ``2000``.
"""

OTEL_MLMON_DRIFT_WINDOW_SECONDS = "OTEL_MLMON_DRIFT_WINDOW_SECONDS"
"""
.. envvar:: OTEL_MLMON_DRIFT_WINDOW_SECONDS

When set, rows older than this many seconds also leave the drift window (time-based window on
top of the row window). Default: empty (rows only).
"""

OTEL_MLMON_DRIFT_MAX_FEATURES = "OTEL_MLMON_DRIFT_MAX_FEATURES"
"""
.. envvar:: OTEL_MLMON_DRIFT_MAX_FEATURES

Cardinality cap: per model, bin counts (``ml.drift.bin.count``), reference shares
(``ml.drift.reference.share``) and data-quality series are exported for the first this many
features of the reference profile, chosen when the profile is loaded (stable series, never
reshuffled by what drifts); events of later features are reported as ``_other``. Drift scores
(``ml.drift.score``) cover the same features and the output. Default: ``64``.
"""

OTEL_MLMON_PROFILE_ON_FIT = "OTEL_MLMON_PROFILE_ON_FIT"
"""
.. envvar:: OTEL_MLMON_PROFILE_ON_FIT

``true`` builds a reference profile (features, target, training predictions) when an
instrumented scikit-learn estimator is fitted and attaches it to the model, so that it travels
with pickle/joblib. Default: ``true``.
"""

OTEL_MLMON_PROFILE_DIR = "OTEL_MLMON_PROFILE_DIR"
"""
.. envvar:: OTEL_MLMON_PROFILE_DIR

Directory of reference profiles for models trained elsewhere: ``{model name}.json`` (as written
by ``otel-mlmon profile``) is loaded for a model that carries no profile. Default: empty.
"""

OTEL_MLMON_PROFILE_MAX_BYTES = "OTEL_MLMON_PROFILE_MAX_BYTES"
"""
.. envvar:: OTEL_MLMON_PROFILE_MAX_BYTES

Largest reference profile read, in bytes of JSON (a file's size is checked before it is read;
a profile attached to a model counts its characters). A larger one is not loaded: the model is
monitored for data quality only and the failure is counted in ``ml.monitor.error.count``.
Default: ``16777216`` (16 MiB; a profile at the defaults is about 7 KiB per numeric feature).
"""

OTEL_MLMON_PROFILE_MAX_FEATURES = "OTEL_MLMON_PROFILE_MAX_FEATURES"
"""
.. envvar:: OTEL_MLMON_PROFILE_MAX_FEATURES

Most features a reference profile may have (a wider one is not loaded; ``otel-mlmon profile``
refuses a file with more columns, and no profile is captured at fit for wider training data).
Default: ``1000``.
"""

OTEL_MLMON_PROFILE_MAX_BINS = "OTEL_MLMON_PROFILE_MAX_BINS"
"""
.. envvar:: OTEL_MLMON_PROFILE_MAX_BINS

Most drift bins of a numeric feature in a reference profile, and most edges of its stored fine
histogram (256 at the defaults). Also the largest ``otel-mlmon profile --bins``. Default: ``1000``.
"""

OTEL_MLMON_PROFILE_MAX_CATEGORIES = "OTEL_MLMON_PROFILE_MAX_CATEGORIES"
"""
.. envvar:: OTEL_MLMON_PROFILE_MAX_CATEGORIES

Most category values of one categorical feature in a reference profile (profiles store at most
1000 at the defaults). Default: ``10000``.
"""

OTEL_MLMON_PROFILE_MAX_VALUE_LENGTH = "OTEL_MLMON_PROFILE_MAX_VALUE_LENGTH"
"""
.. envvar:: OTEL_MLMON_PROFILE_MAX_VALUE_LENGTH

Longest feature name or category value in a reference profile, in characters. When a profile is
built, longer category values are not stored: they count in the feature's "other" bin and its
category list is marked incomplete. Default: ``1024``.
"""

OTEL_MLMON_LABEL_STORE = "OTEL_MLMON_LABEL_STORE"
"""
.. envvar:: OTEL_MLMON_LABEL_STORE

Where predictions wait for their ground-truth labels: ``sqlite`` (persistent, survives
restarts), ``memory`` or ``none`` (no quality metrics from labels). Default: ``sqlite``.
"""

OTEL_MLMON_LABEL_STORE_PATH = "OTEL_MLMON_LABEL_STORE_PATH"
"""
.. envvar:: OTEL_MLMON_LABEL_STORE_PATH

File of the SQLite label store. Default: ``$XDG_CACHE_HOME/otel-mlmon/predictions.sqlite``
(``~/.cache/...`` when ``XDG_CACHE_HOME`` is unset).
"""

OTEL_MLMON_LABEL_MAX_ENTRIES = "OTEL_MLMON_LABEL_MAX_ENTRIES"
"""
.. envvar:: OTEL_MLMON_LABEL_MAX_ENTRIES

Bound of the pending-prediction store; the oldest predictions are evicted beyond it.
Default: ``1000000``.
"""

OTEL_MLMON_LABEL_TTL = "OTEL_MLMON_LABEL_TTL"
"""
.. envvar:: OTEL_MLMON_LABEL_TTL

Seconds a prediction waits for its label before it expires. Default: ``604800`` (7 days).
"""

OTEL_MLMON_QUALITY_WINDOW = "OTEL_MLMON_QUALITY_WINDOW"
"""
.. envvar:: OTEL_MLMON_QUALITY_WINDOW

Number of most recent labelled predictions that realized quality metrics (and the
label-free estimate) are computed over. Default: ``1000``.
"""
