"""Cost of ``SklearnInstrumentor().instrument()`` once scikit-learn is imported (target <= 50 ms).

Run:  python benchmarks/bench_instrument.py [--repeat 5]

Each measurement runs in a fresh interpreter: scikit-learn modules are imported first (not
timed), then ``instrument()`` is timed. Two situations: a typical service (a few estimator
modules imported) and the worst case (every estimator module imported through
``sklearn.utils.all_estimators()``). ``instrument()`` itself imports no scikit-learn module.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

SCENARIOS = {
    "typical service (linear_model, ensemble, pipeline, preprocessing)": (
        "import sklearn.linear_model, sklearn.ensemble, sklearn.pipeline, sklearn.preprocessing"
    ),
    "every estimator module imported (all_estimators)": (
        "from sklearn.utils import all_estimators; all_estimators()"
    ),
}

PROBE = """
import sys, time
{imports}
before = set(sys.modules)
import otel_mlmon
from sklearn.base import BaseEstimator
t0 = time.perf_counter()
otel_mlmon.SklearnInstrumentor().instrument()
elapsed = time.perf_counter() - t0
stack, n = [BaseEstimator], 0
while stack:
    for sub in type.__subclasses__(stack.pop()):
        n += 1; stack.append(sub)
new_sklearn = [m for m in set(sys.modules) - before if m.startswith("sklearn")]
print(elapsed, n, len(new_sklearn))
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| situation | estimator classes | instrument() median ms | sklearn modules imported by instrument() |")
    print("|---|---:|---:|---:|")
    for label, imports in SCENARIOS.items():
        times, classes, imported = [], 0, 0
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports)],
                                 capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            times.append(float(out[0]))
            classes, imported = int(out[1]), int(out[2])
        print(f"| {label} | {classes} | {statistics.median(times) * 1e3:.1f} | {imported} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
