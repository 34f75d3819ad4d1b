"""``import otel_mlmon`` stays light: no scikit-learn, no torch, no pandas."""

import subprocess
import sys


def test_import_does_not_pull_frameworks():
    code = "import sys, otel_mlmon; print(sorted(m for m in ('sklearn', 'torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_instrument_before_sklearn_import_waits_for_it():
    code = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_mlmon import SklearnInstrumentor
exporter = InMemorySpanExporter(); provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
SklearnInstrumentor().instrument(tracer_provider=provider)
assert 'sklearn' not in sys.modules
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
X, y = load_iris(return_X_y=True)
DecisionTreeClassifier().fit(X, y).predict(X[:2])
provider.force_flush()  # the recording worker ends the span
print([s.name for s in exporter.get_finished_spans()])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['predict DecisionTreeClassifier']"


def test_torch_instrumentor_without_torch_is_idle():
    code = """
import sys

class NoTorch:  # `import torch` fails, as in an environment without it
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, NoTorch())
from otel_mlmon import TorchInstrumentor, SklearnInstrumentor
TorchInstrumentor().instrument()
SklearnInstrumentor().instrument()
from sklearn.tree import DecisionTreeClassifier
DecisionTreeClassifier().fit([[0], [1]], [0, 1]).predict([[0]])
TorchInstrumentor().uninstrument()
assert "torch" not in sys.modules
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok" and "Traceback" not in proc.stderr
