"""PyTorch models get drift, data quality and label-free quality too: 2-D tensor inputs are
features, classification logits are probabilities (softmax) for the estimate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

import otel_mlmon
from otel_mlmon import TorchInstrumentor, semconv

pytestmark = pytest.mark.torch


def test_tensor_inputs_are_profiled_against_an_attached_profile(make_telemetry):
    session = make_telemetry(label_store="memory", drift_max_rows_per_second=1e9)
    instrumentor = TorchInstrumentor()
    instrumentor.instrument(tracer_provider=session.tracer_provider, meter_provider=session.meter_provider,
                            label_store="memory", drift_max_rows_per_second=1e9)  # fmt: skip
    try:
        X, _ = load_breast_cancer(return_X_y=True)
        X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
        otel_mlmon.set_model_info(net, name="torch-cancer", task="classification")
        otel_mlmon.attach_profile(net, otel_mlmon.build_profile(X))
        rng = np.random.default_rng(0)
        with torch.inference_mode():
            for _ in range(20):
                net(torch.from_numpy(X[rng.integers(0, len(X), 50)]))
            shifted = X.copy()
            shifted[:, 7] += 2.0
            for _ in range(20):
                net(torch.from_numpy(shifted[rng.integers(0, len(X), 50)]))
        ids = otel_mlmon.last_prediction_ids()
        assert ids is not None and len(ids) == 50
        instrumentor.force_flush()
        rows = sum(p.value for _, _, a, p in session.points(semconv.DATA_ROW_COUNT.name)
                   if a[semconv.ML_MODEL_NAME] == "torch-cancer")  # fmt: skip
        assert rows == 2000
        psi = {a[semconv.ML_FEATURE_NAME]: p.value for _, _, a, p in session.points(semconv.DRIFT_SCORE.name)
               if a[semconv.ML_MODEL_NAME] == "torch-cancer" and a[semconv.ML_DRIFT_METHOD] == "psi"}  # fmt: skip
        assert max(psi, key=psi.get) == "x7"
        estimated = [p.value for _, _, a, p in session.points(semconv.QUALITY_SCORE.name)
                     if a[semconv.ML_MODEL_NAME] == "torch-cancer" and a[semconv.ML_QUALITY_SOURCE] == "estimated"]  # fmt: skip
        assert estimated and all(0.0 <= v <= 1.0 for v in estimated)
        assert not session.points(semconv.MONITOR_ERROR_COUNT.name)
    finally:
        instrumentor.uninstrument()
