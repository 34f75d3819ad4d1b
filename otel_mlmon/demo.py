"""``otel-mlmon demo``: the main job end to end on an embedded default, with a report.

    otel-mlmon demo [--duration 30] [--rate 100] [--seed 0] [--label-delay 1] [--output ./otel-mlmon-demo]

Everything runs in this process, with no server and no download:

1. **Model.** ``SklearnInstrumentor().instrument()`` first (the wrappers and the fit-time reference
   profile are the ones ``opentelemetry-instrument`` installs), then a classifier
   (``StandardScaler`` + a ``LogisticRegression`` subclass whose ``predict_proba`` can be made
   slow) is trained on scikit-learn's bundled breast-cancer dataset.
2. **Telemetry.** Real SDK providers: spans go through an
   :class:`~otel_mlmon.anomaly.processor.AnomalyDetectionSpanProcessor` (its alerts reach a
   callback; ``instrument()`` finds it and raises the worker-side alerts, drift and quality,
   through it too) to an in-memory span exporter; metrics are read with an ``InMemoryMetricReader``.
   With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, OTLP span, metric and log exporters are added (alerts
   are then exported as log records too).
3. **Traffic.** ``predict_proba`` on batches of 1-8 rows of the dataset at ``--rate`` calls per
   second (seeded), each call inside ``otel_mlmon.prediction_ids(request ids)``; the true outcome of each
   row is recorded with ``otel_mlmon.record_ground_truth`` ``--label-delay`` seconds later.
4. **Incidents**, injected at fixed fractions of the run (see :func:`schedule`): a data drift
   (feature ``x3``, *mean area*, shifted by 1.5 standard deviations), a latency incident (the
   model's ``predict_proba`` sleeps 20 ms per call) and a quality drop (concept change: the true
   label of rows with a large *worst texture* is inverted; labels keep arriving late).
5. **Detection from the telemetry only** (the detectors never see the schedule), every 0.25 s:

   * data drift: ``ml.drift.share > 0`` (the monitor's verdict: PSI and a significance test)
     held for 0.5 s; ends when the share is back to 0 for 0.5 s;
   * latency: the median span duration of the last 0.5 s at least 3x its baseline (median of
     earlier healthy polls) *and* spans flagged ``ml.anomaly`` (signal ``latency``) in the last
     2 s, held for 0.5 s; ends below 2x the baseline;
   * quality drop: realized ``ml.quality.score{ml.quality.metric=accuracy}`` at least 0.10 below
     its baseline (median of earlier healthy polls with a full label window), held for 0.5 s;
     ends within 0.05 of the baseline.

   A detection counts for an injected incident of its kind when it falls between the injection
   and the end of the incident plus a grace period (:data:`GRACE_S`); anything else is reported
   as a false positive.
6. **Output.** A live progress line (TTY) or periodic plain-text lines, then ``report.html``
   (plots drawn as inline SVG: latency with anomalies, drift per feature, realized vs estimated
   accuracy, alert timeline) and ``summary.json`` in ``--output``.

Timing: the run takes ``--duration`` seconds plus about a second for training and the report.
Batches, rows and labels are drawn from a generator seeded with ``--seed``; which call falls
into which incident depends on the wall clock, so two runs agree as far as timing allows.

The pieces: :mod:`otel_mlmon._demo_config` (settings), :mod:`otel_mlmon._demo_incidents`
(injection and detection), :mod:`otel_mlmon._demo_telemetry` (providers, span tap, metric
points), :mod:`otel_mlmon._demo_run` (traffic, polls, summary), :mod:`otel_mlmon._demo_console`
(what is printed), :mod:`otel_mlmon._demo_report` (``report.html``); this module holds the
entry points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from otel_mlmon._demo_config import MIN_DURATION_S, DemoConfig
from otel_mlmon._demo_console import print_outcome
from otel_mlmon._demo_incidents import Incident, schedule
from otel_mlmon._demo_run import Run

__all__ = ["DemoConfig", "Incident", "add_demo_parser", "run_demo", "schedule"]


# ------------------------------------------------------------------------------ entry points
def run_demo(config: DemoConfig, stream: TextIO | None = None, environ: dict[str, str] | None = None) -> dict:
    """Run the demo; write ``report.html`` and ``summary.json`` into ``config.output``.

    Returns the summary (also written as ``summary.json``), with ``files`` naming the outputs.
    """
    from otel_mlmon._demo_report import render_report  # noqa: PLC0415

    stream = sys.stdout if stream is None else stream
    environ = dict(os.environ if environ is None else environ)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    run = Run(config, stream, environ)
    summary = run.run()
    report = output / "report.html"
    summary_path = output / "summary.json"
    summary["files"] = {"report": str(report.resolve()), "summary": str(summary_path.resolve())}
    series = {"polls": run.polls, "anomalies": run.anomaly_points, "feature_names": run.data["feature_names"]}
    report.write_text(render_report(summary, series), encoding="utf-8")
    summary_path.write_text(json.dumps(summary, indent=2, allow_nan=False, default=_json_default) + "\n", encoding="utf-8")
    print_outcome(run.console, summary)
    return summary


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _run_command(args: argparse.Namespace) -> int:
    try:
        config = DemoConfig(duration=args.duration, rate=args.rate, seed=args.seed, label_delay=args.label_delay,
                            output=args.output)  # fmt: skip
    except ValueError as exc:
        print(f"otel-mlmon demo: {exc}", file=sys.stderr)
        return 2
    try:
        import sklearn  # noqa: F401, PLC0415
    except ImportError:
        print("otel-mlmon demo needs scikit-learn: pip install 'otel-mlmon[sklearn]'", file=sys.stderr)
        return 2
    summary = run_demo(config)
    return 130 if summary["interrupted"] else 0


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``otel-mlmon demo`` on the CLI's subparsers."""
    defaults = DemoConfig()
    parser = subparsers.add_parser(
        "demo", help="the main job end to end on an embedded default, with an HTML report",
        description="Train a scikit-learn model on a bundled dataset, instrument it, serve simulated traffic, "
                    "inject a data drift, a latency incident and a quality drop (with delayed labels), detect "
                    "them from the telemetry, and write report.html and summary.json. No server needed; "
                    "set OTEL_EXPORTER_OTLP_ENDPOINT to also export over OTLP.",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=defaults.duration,
                        help=f"seconds of traffic (default {defaults.duration:g}, at least {MIN_DURATION_S:g})")
    parser.add_argument("--rate", type=float, default=defaults.rate,
                        help=f"calls per second (default {defaults.rate:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default 0)")
    parser.add_argument("--label-delay", type=float, default=defaults.label_delay,
                        help=f"seconds between a prediction and its ground-truth label (default {defaults.label_delay:g})")
    parser.add_argument("--output", default=defaults.output,
                        help=f"directory for report.html and summary.json (default ./{defaults.output})")  # fmt: skip
    parser.set_defaults(run=_run_command)
    return parser
