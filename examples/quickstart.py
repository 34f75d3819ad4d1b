"""Quick start: train two models, serve predictions, print a one-screen summary of what
otel-mlmon exported, where it went, and the alert if there was one.

    python examples/quickstart.py

Needs no collector: spans and metrics go to an in-memory exporter and reader in this process.
With OTEL_EXPORTER_OTLP_ENDPOINT set, they are also exported over OTLP.
"""

from __future__ import annotations

import os
import textwrap
from collections import Counter, defaultdict

import numpy as np

import otel_mlmon
from otel_mlmon import semconv
from _providers import providers as make_providers


def _points(reader) -> list[tuple[str, dict, object]]:
    """Every data point collected now, as (metric name, attributes, point)."""
    data = reader.get_metrics_data()
    return [(metric.name, dict(point.attributes), point)
            for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
            for metric in sm.metrics for point in metric.data.data_points]  # fmt: skip


def say(text: str, indent: str = "") -> None:
    print(textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False))


def main() -> None:
    tracer_provider, meter_provider, spans, reader = make_providers("otel-mlmon-quickstart")
    otel_mlmon.SklearnInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_live, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    screen = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
    otel_mlmon.set_model_info(screen, name="cancer-screen", version="1.0")
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(X_train, y_train)  # fit: no spans

    rng = np.random.default_rng(0)
    for _ in range(200):  # simulated traffic: single rows and small batches
        rows = X_live[rng.integers(0, len(X_live), size=int(rng.choice([1, 1, 1, 8, 32])))]
        screen.predict(rows)
        forest.predict_proba(rows)
    oversized = np.tile(X_live, (8, 1))  # 1368 rows, where requests have had at most 32
    for _ in range(8):  # a client sending oversized batches: an incident of the batch-size signal
        screen.predict(oversized)
    say("otel-mlmon quick start: 2 models fitted (no spans), 200 requests to each, then 8 oversized "
        "batches to cancer-screen and one request with the wrong schema")
    try:
        screen.predict(X_live[:, :5])  # a client sending the wrong schema
    except ValueError as exc:
        say(f"caller saw the model's own error, unchanged: {exc}")

    tracer_provider.force_flush()  # spans are ended by otel-mlmon's recording worker (within 1 s)
    finished = spans.get_finished_spans()
    points = _points(reader)  # a collection: the recording queue is drained first
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    print()
    say("Exported to: this process's in-memory span exporter and metric reader"
        + (f", and over OTLP to {endpoint}" if endpoint else " (set OTEL_EXPORTER_OTLP_ENDPOINT to send them over OTLP too)"))

    by_name = Counter(span.name for span in finished)
    errors = Counter((span.name, span.attributes.get(semconv.ERROR_TYPE)) for span in finished
                     if span.status.status_code.name == "ERROR")  # fmt: skip
    print(f"\n{len(finished)} spans, one per top-level call:")
    for name, n in by_name.items():
        failed = ", ".join(f"{k} {etype}" for (span_name, etype), k in errors.items() if span_name == name)
        print(f"  {name:38s} {n:4d}" + (f"  ({failed})" if failed else ""))
    example = finished[0].attributes
    say("attributes: " + ", ".join(k for k in example) + " (names and shapes, never input values)", "  ")

    per_model: dict[tuple, dict] = defaultdict(lambda: {"calls": 0, "errors": 0, "sum": 0.0, "ok": 0, "rows": 0})
    share: dict[str, float] = {}
    issues: Counter = Counter()
    for name, attrs, point in points:
        model = attrs.get(semconv.ML_MODEL_NAME)
        if name == semconv.INFERENCE_DURATION.name:
            entry = per_model[(model, attrs[semconv.ML_OPERATION])]
            entry["calls"] += point.count
            if semconv.ERROR_TYPE in attrs:
                entry["errors"] += point.count
            else:
                entry["sum"], entry["ok"] = entry["sum"] + point.sum, entry["ok"] + point.count
        elif name == semconv.INFERENCE_ROW_COUNT.name:
            per_model[(model, attrs[semconv.ML_OPERATION])]["rows"] += point.value
        elif name == semconv.DRIFT_SHARE.name:
            share[model] = point.value
        elif name == semconv.DATA_QUALITY_COUNT.name:
            issues[model] += point.value
    names = sorted({name for name, _, _ in points})
    print(f"\n{len(names)} metrics ({len(points)} points); per model:")
    print(f"  {'model':24s} {'operation':14s} {'calls':>5s} {'errors':>6s} {'rows':>5s} {'mean ms':>7s} "
          f"{'drifted':>7s} {'data-quality events':>19s}")
    for (model, operation), entry in per_model.items():
        mean = 1e3 * entry["sum"] / entry["ok"] if entry["ok"] else float("nan")
        drifted = f"{share[model]:.0%}" if model in share else "-"
        print(f"  {model:24s} {operation:14s} {entry['calls']:5d} {entry['errors']:6d} {entry['rows']:5d} "
              f"{mean:7.2f} {drifted:>7s} {issues[model]:19d}")
    shown = {semconv.INFERENCE_DURATION.name, semconv.INFERENCE_ROW_COUNT.name, semconv.DRIFT_SHARE.name,
             semconv.DATA_QUALITY_COUNT.name}
    say("also: " + ", ".join(name for name in names if name not in shown), "  ")

    alerts = [(attrs, point.value) for name, attrs, point in points if name == semconv.ALERT_COUNT.name]
    flagged = [span for span in finished if span.attributes.get(semconv.ML_ANOMALY) is True]
    print(f"\nAnomalous calls, flagged on their spans (ml.anomaly) and always kept by the sampler: {len(flagged)}")
    if not alerts:
        print("Alerts: none (no incident in this traffic; ml.alert.count has no point)")
    for attrs, count in alerts:
        model, signal = attrs[semconv.ML_MODEL_NAME], attrs[semconv.ML_ANOMALY_SIGNAL]
        opening = [span for span in flagged if span.attributes.get(semconv.ML_ANOMALY_ALERT) is True
                   and span.attributes.get(semconv.ML_MODEL_NAME) == model]  # fmt: skip
        where = f", opened by span {opening[0].context.span_id:016x} ({opening[0].name})" if opening else ""
        say(f"Alert: {signal} of {model}: {int(count)} incident(s){where}; sent as an OpenTelemetry log record "
            "(WARN) and counted in ml.alert.count")
    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
