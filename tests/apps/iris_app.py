"""A plain scikit-learn application with no OpenTelemetry code at all.

Run by ``tests/test_auto_instrumentation.py`` under ``opentelemetry-instrument``: any telemetry
it produces comes from the installed otel-mlmon entry point and the distro's configurator. The
only otel-mlmon call is ``set_model_info`` (naming one model). On stdout it prints one JSON
line describing what it did, so the test can check the telemetry against it.
"""

import json

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import otel_mlmon

iris = load_iris()
X = iris.data
y = iris.target_names[iris.target]  # string labels: "setosa", "versicolor", "virginica"

named = otel_mlmon.set_model_info(LogisticRegression(max_iter=1000), name="iris-logreg", version="v3")
named.fit(X, y)
pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]).fit(X, y)

report = {"otel_mlmon_file": otel_mlmon.__file__, "calls": [], "features_sent": []}


def call(model_name, model, operation, rows):
    batch = X[rows]
    report["features_sent"].extend(batch.ravel().tolist())
    result = getattr(model, operation)(batch)
    entry = {"model": model_name, "operation": operation, "rows": len(batch), "columns": batch.shape[1]}
    if operation == "predict":
        entry["labels"] = [str(label) for label in result]
    report["calls"].append(entry)


call("iris-logreg", named, "predict", slice(0, 5))
call("iris-logreg", named, "predict", slice(50, 53))
call("iris-logreg", named, "predict_proba", slice(100, 104))

# Wrong number of features: scikit-learn raises ValueError, the application carries on.
wrong = X[140:142, :3]
report["features_sent"].extend(wrong.ravel().tolist())
try:
    named.predict(wrong)
except ValueError as exc:
    report["calls"].append({"model": "iris-logreg", "operation": "predict", "rows": 2, "columns": 3,
                            "error": type(exc).__name__})
else:
    raise SystemExit("expected a ValueError for 3 features")

call("Pipeline", pipeline, "predict", slice(10, 17))
call("Pipeline", pipeline, "predict", np.array([120]))
call("Pipeline", pipeline, "predict_proba", slice(60, 66))

print(json.dumps(report))
