"""A batch scoring job: score a CSV in chunks with your own ids, join the labels that arrive later.

    python examples/batch_scoring.py                    # writes and scores a sample CSV
    python examples/batch_scoring.py --csv orders.csv   # columns: id, then the 30 feature columns

1. Train a model (breast-cancer dataset bundled with scikit-learn; the fit captures the reference
   profile used for drift).
2. Score the CSV in chunks of ``--chunk`` rows. Each chunk runs inside
   ``otel_mlmon.prediction_ids(chunk_ids)``: the file's ``id`` column identifies each prediction.
   Before any label, the quality metric is the label-free estimate (``source=estimated``).
3. Later the true outcomes arrive (here: in two deliveries, out of order, one id unknown) and
   ``otel_mlmon.record_ground_truth`` joins them by id; the realized accuracy exported as
   ``ml.quality.score`` then equals ``sklearn.metrics.accuracy_score`` on the same rows.

The pending predictions are kept in memory here (``label_store="memory"``); with the default
SQLite store, a later job run (another process, days later) joins the labels the same way.
With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the telemetry is also exported over OTLP.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

import otel_mlmon
from _providers import providers as make_providers
from otel_mlmon import semconv

MODEL = ("cancer-batch", "2024-11")


def providers():
    return make_providers("otel-mlmon-batch-scoring")


def quality(reader) -> dict[tuple[str, str], float]:
    """The model's ml.quality.score points now: {(metric, source): value}."""
    out = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != semconv.QUALITY_SCORE.name:
                    continue
                for point in metric.data.data_points:
                    a = point.attributes
                    if a.get(semconv.ML_MODEL_NAME) == MODEL[0]:
                        out[(a[semconv.ML_QUALITY_METRIC], a[semconv.ML_QUALITY_SOURCE])] = point.value
    return out


def write_sample_csv(path: Path, X: np.ndarray, names: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *names])
        for i, row in enumerate(X):
            writer.writerow([f"order-{1000 + i}", *(f"{v:.6g}" for v in row)])


def read_chunks(path: Path, chunk: int):
    """(ids, X) per chunk of rows: the file is never loaded whole."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)  # header
        ids, rows = [], []
        for record in reader:
            ids.append(record[0])
            rows.append([float(v) for v in record[1:]])
            if len(rows) == chunk:
                yield ids, np.asarray(rows)
                ids, rows = [], []
        if rows:
            yield ids, np.asarray(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Batch scoring with delayed labels.")
    parser.add_argument("--csv", type=Path, help="CSV to score (default: a sample written to a temporary directory)")
    parser.add_argument("--chunk", type=int, default=50, help="rows per predict call (default 50)")
    args = parser.parse_args(argv)

    tracer_provider, meter_provider, spans, reader = providers()
    instrumentor = otel_mlmon.SklearnInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, label_store="memory")

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    X_train, X_new, y_train, y_new = train_test_split(data.data, data.target, test_size=0.4, random_state=0)
    model = otel_mlmon.set_model_info(HistGradientBoostingClassifier(max_iter=60, random_state=0), *MODEL)
    model.fit(X_train, y_train)
    truth = {f"order-{1000 + i}": int(label) for i, label in enumerate(y_new)}  # known only later

    with tempfile.TemporaryDirectory() as tmp:
        path = args.csv
        if path is None:
            path = Path(tmp) / "orders.csv"
            write_sample_csv(path, X_new, [n.replace(" ", "_") for n in data.feature_names])
        # ---- the scoring job
        scored: dict[str, int] = {}
        for ids, X in read_chunks(path, args.chunk):
            with otel_mlmon.prediction_ids(ids):
                proba = model.predict_proba(X)
            scored.update(zip(ids, model.classes_[proba.argmax(axis=1)].tolist()))
    instrumentor.force_flush()
    calls = len(spans.get_finished_spans())
    print(f"scored {len(scored)} rows from {path.name} in {calls} predict_proba calls ({calls} spans)")
    before = quality(reader)
    print(f"before any label: estimated accuracy {before.get(('accuracy', 'estimated'), float('nan')):.4f}, "
          f"realized: {'none yet' if ('accuracy', 'realized') not in before else before[('accuracy', 'realized')]}")

    # ---- later: the outcomes arrive, out of order, in two deliveries (plus one unknown id).
    # (Quality metrics are computed at collection time and reused for 0.5 s by the collections
    # that follow; the pause stands for "hours later".)
    time.sleep(0.6)
    known = [i for i in scored if i in truth]
    rng = np.random.default_rng(0)
    order = [known[i] for i in rng.permutation(len(known))]
    half = len(order) // 2
    for number, delivery in enumerate((order[:half], order[half:] + ["order-unknown"]), 1):
        labels = [truth.get(i, 0) for i in delivery]
        result = otel_mlmon.record_ground_truth(delivery, labels)
        print(f"label delivery {number}: {len(delivery)} labels -> joined {result.joined}, "
              f"unknown id {result.unknown_id}, duplicate {result.duplicate}, invalid {result.invalid}")
    after = quality(reader)
    expected = accuracy_score([truth[i] for i in known], [scored[i] for i in known])
    print(f"realized accuracy (ml.quality.score) {after[('accuracy', 'realized')]:.6f}; "
          f"sklearn.metrics.accuracy_score {expected:.6f}")
    others = ", ".join(f"{metric} {value:.4f}" for (metric, source), value in sorted(after.items())
                       if source == "realized" and metric != "accuracy")
    print(f"other realized metrics: {others}")
    instrumentor.uninstrument()
    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
