"""Quick start: train a model, serve predictions, print the telemetry otel-mlmon produced.

    python examples/quickstart.py

Needs no collector. With OTEL_EXPORTER_OTLP_ENDPOINT set, it also exports over OTLP.
"""

from __future__ import annotations


import numpy as np

import otel_mlmon
from _providers import providers as make_providers


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
    churn = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
    otel_mlmon.set_model_info(churn, name="cancer-screen", version="1.0")
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(X_train, y_train)  # fit: no spans

    rng = np.random.default_rng(0)
    for _ in range(200):  # simulated traffic: single rows and small batches
        rows = X_live[rng.integers(0, len(X_live), size=int(rng.choice([1, 1, 1, 8, 32])))]
        churn.predict(rows)
        forest.predict_proba(rows)
    try:
        churn.predict(X_live[:, :5])  # a client sending the wrong schema
    except ValueError as exc:
        print(f"caller saw the model's own error, unchanged: {exc}\n")

    finished = spans.get_finished_spans()
    print(f"{len(finished)} spans; the last three:")
    for span in finished[-3:]:
        attrs = ", ".join(f"{k}={v}" for k, v in span.attributes.items())
        print(f"  {span.name:32s} {(span.end_time - span.start_time) / 1e3:8.1f} us  {span.status.status_code.name:5s}  {attrs}")
    print("\nmetrics:")
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    attrs = {k: v for k, v in point.attributes.items() if k != "ml.framework"}
                    if hasattr(point, "count"):
                        value = f"count={point.count} sum={point.sum:.6g}"
                    else:
                        value = f"value={point.value:.6g}"
                    print(f"  {metric.name:28s} [{metric.unit}] {value:32s} {attrs}")
    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
