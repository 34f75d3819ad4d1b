"""A PyTorch MLP classifier, instrumented with TorchInstrumentor.

    python examples/pytorch_model.py

Trains a small ``nn.Module`` on synthetic 3-class tabular data (training forwards are not
inference: no spans), then serves it in eval mode under ``torch.inference_mode()``. The
``task="classification"`` hint of ``set_model_info`` tells otel-mlmon that the module's
(batch, classes) outputs are class scores: predicted-class counts and confidence (softmax)
statistics are exported too. Needs no collector; with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the
telemetry is also exported over OTLP.
"""

from __future__ import annotations


import torch
from torch import nn

import otel_mlmon
from _providers import providers as make_providers
from otel_mlmon import semconv


class MLP(nn.Module):
    """Two hidden layers; ``forward`` calls submodules, which are nested: one span per call."""

    def __init__(self, features: int = 16, hidden: int = 64, classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.head(self.body(x))


def providers():
    return make_providers("otel-mlmon-pytorch-example")


def main() -> None:
    tracer_provider, meter_provider, spans, reader = providers()
    instrumentor = otel_mlmon.TorchInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    torch.manual_seed(0)
    torch.set_num_threads(1)
    centres = torch.randn(3, 16) * 0.45  # overlapping classes: confidences below 1

    def sample(n: int):
        y = torch.randint(0, 3, (n,))
        return centres[y] + torch.randn(n, 16), y

    net = otel_mlmon.set_model_info(MLP(), name="tabular-mlp", version="1", task="classification")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):  # training: train mode with gradients, no spans
        X, y = sample(128)
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        optimizer.step()
    print(f"trained: {len(spans.get_finished_spans())} spans during training (training forwards are not traced)")

    net.eval()
    correct = total = 0
    with torch.inference_mode():
        for batch in (1, 8, 32, 128, 8, 1):
            X, y = sample(batch)
            predicted = net(X).argmax(dim=1)
            correct += int((predicted == y).sum())
            total += batch
    print(f"served 6 batches ({total} rows), accuracy {correct / total:.3f}")
    instrumentor.force_flush()

    finished = spans.get_finished_spans()
    print(f"\n{len(finished)} spans; the first:")
    first = finished[0]
    print(f"  {first.name}  {(first.end_time - first.start_time) / 1e3:.1f} us")
    for key, value in first.attributes.items():
        print(f"    {key} = {value}")
    print("\nmetrics of tabular-mlp:")
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    attrs = dict(point.attributes)
                    if attrs.get(semconv.ML_MODEL_NAME) != "tabular-mlp":
                        continue
                    extra = {k: v for k, v in attrs.items() if k not in (semconv.ML_MODEL_NAME, semconv.ML_MODEL_VERSION,
                                                                          semconv.ML_FRAMEWORK, semconv.ML_OPERATION)}
                    value = f"count={point.count} sum={point.sum:.4g}" if hasattr(point, "count") else f"value={point.value:.4g}"
                    print(f"  {metric.name:30s} {value:28s} {extra}")
    instrumentor.uninstrument()
    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
