"""A plain PyTorch application with no OpenTelemetry code (run under opentelemetry-instrument).

Prints one JSON line with what it did: the calls, whether scikit-learn is importable here.
"""

import importlib.util
import json

import torch
from torch import nn

import otel_mlmon

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
otel_mlmon.set_model_info(model, name="tabular-mlp", version="7", task="classification")

# A short training loop: training forwards are not inference, no spans.
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    optimizer.zero_grad()
    model(torch.randn(16, 8)).sum().backward()
    optimizer.step()

model.eval()
calls, argmax = [], []
for rows in (1, 8, 32, 8):
    with torch.no_grad():
        out = model(torch.randn(rows, 8))
    calls.append({"rows": rows, "error": None})
    argmax += out.argmax(1).tolist()
try:
    model(torch.randn(2, 5))
except RuntimeError:
    calls.append({"rows": 2, "error": "RuntimeError"})

print(json.dumps({
    "otel_mlmon_file": otel_mlmon.__file__,
    "calls": calls,
    "argmax": argmax,
    "parameters": sum(p.numel() for p in model.parameters()),
    "sklearn_installed": importlib.util.find_spec("sklearn") is not None,
}))
