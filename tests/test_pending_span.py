"""A call's span made by the recording worker after the call (issue 15), and when it is not.

By default a model made only of known ML libraries gets no SDK span on the caller's thread: the
worker starts it at the call's start time under the caller's context and ends it at the call's
end time. What must hold: the same parent, sampling, attributes, times and error details as a
span made inline; a model that runs code of its own keeps a span current during the call, so
spans its code starts are children of it (``OTEL_MLMON_CURRENT_SPAN``).
"""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import StatusCode, get_current_span
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from otel_mlmon import SklearnInstrumentor, semconv
from otel_mlmon.instrumentation.sklearn import runs_foreign_code

X, y = load_iris(return_X_y=True)
TRACER = None  # the app tracer of the session, for the transformer below


class LookupTransformer(BaseEstimator, TransformerMixin):
    """Code of the user's own inside a pipeline: it starts a span (a feature-store lookup)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        with TRACER.start_as_current_span("feature lookup"):
            return X


def _user_function(x):
    return x


@pytest.mark.parametrize(
    ("model", "foreign"),
    [
        (LogisticRegression(), False),
        (make_pipeline(StandardScaler(), LogisticRegression()), False),
        (ColumnTransformer([("scale", StandardScaler(), [0, 1])]), False),
        (FunctionTransformer(np.log1p), False),
        (FunctionTransformer(_user_function), True),
        (FunctionTransformer(lambda x: x), True),
        (make_pipeline(LookupTransformer(), LogisticRegression()), True),
        (LookupTransformer(), True),
    ],
)
def test_foreign_code_is_found_in_the_estimator_tree(model, foreign):
    assert runs_foreign_code(model) is foreign


def _session(make_telemetry, **options):
    global TRACER
    session = make_telemetry(**options)
    TRACER = session.tracer_provider.get_tracer("app")
    return session, TRACER


def test_builtin_model_span_has_the_callers_parent_and_its_duration(make_telemetry):
    session, tracer = _session(make_telemetry)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    session.clear()
    with tracer.start_as_current_span("request") as request:
        seen_inside = []
        model.predict(X[:3])
        seen_inside.append(get_current_span())
    assert seen_inside == [request]  # the caller's context is untouched
    spans = session.spans()
    (predict,) = [s for s in spans if s.name.startswith("predict")]
    (req,) = [s for s in spans if s.name == "request"]
    assert predict.parent.span_id == req.context.span_id
    assert predict.context.trace_id == req.context.trace_id
    assert req.start_time <= predict.start_time <= predict.end_time <= req.end_time
    assert predict.attributes[semconv.ML_BATCH_SIZE] == 3
    assert predict.attributes[semconv.ML_MODEL_NAME] == "Pipeline"
    (point,) = [p for _, _, _, p in session.points(semconv.INFERENCE_DURATION.name)]
    assert (predict.end_time - predict.start_time) * 1e-9 == pytest.approx(point.sum, abs=1e-9)


@pytest.mark.parametrize("mode", ["auto", "never"])
def test_spans_started_by_the_models_own_code_are_its_children_unless_never(make_telemetry, mode):
    session, tracer = _session(make_telemetry, current_span=mode)
    model = make_pipeline(LookupTransformer(), LogisticRegression(max_iter=500)).fit(X, y)
    session.clear()
    with tracer.start_as_current_span("request"):
        model.predict(X[:2])
    spans = {s.name: s for s in session.spans()}
    predict = next(s for name, s in spans.items() if name.startswith("predict"))
    lookup_parent = predict if mode == "auto" else spans["request"]
    assert spans["feature lookup"].parent.span_id == lookup_parent.context.span_id
    assert predict.parent.span_id == spans["request"].context.span_id


def test_current_span_always_makes_every_span_current(make_telemetry):
    session, tracer = _session(make_telemetry, current_span="always")
    model = LogisticRegression(max_iter=500).fit(X, y)
    seen = []
    original = LogisticRegression.decision_function

    def spy(self, X):  # called inside predict, not instrumented itself
        seen.append(get_current_span())
        return original(self, X)

    LogisticRegression.decision_function = spy
    try:
        model.predict(X[:1])
    finally:
        LogisticRegression.decision_function = original
    (predict,) = [s for s in session.spans() if s.name.startswith("predict")]
    assert seen[0].get_span_context().span_id == predict.context.span_id


@pytest.mark.parametrize("capture", [False, True])
def test_a_failed_call_gets_the_error_details_on_its_worker_made_span(make_telemetry, capture):
    session, _ = _session(make_telemetry, capture_exception_message=capture)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(ValueError, match="features") as raised:
        model.predict(X[:2, :2])
    assert raised.type is ValueError  # unchanged for the caller
    (span,) = [s for s in session.spans() if s.name.startswith("predict")]
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.timestamp == span.end_time
    if capture:
        assert "features" in event.attributes["exception.message"]
        assert "Traceback" in event.attributes["exception.stacktrace"]
        assert "features" in span.status.description
    else:
        assert "exception.message" not in event.attributes
        assert span.status.description == "ValueError"


def test_the_worker_made_span_follows_the_callers_sampling_decision(make_telemetry):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    session = make_telemetry()
    instrumentor = SklearnInstrumentor()
    session.instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider, meter_provider=session.meter_provider)
    try:
        model = LogisticRegression(max_iter=500).fit(X, y)
        app = provider.get_tracer("app")
        model.predict(X[:1])  # a root call: ALWAYS_OFF drops it
        with app.start_as_current_span("request"):  # not sampled either: its child is dropped
            model.predict(X[:1])
        provider.force_flush()
        assert [s.name for s in exporter.get_finished_spans()] == []
        points = [p for _, _, _, p in session.points(semconv.INFERENCE_DURATION.name)]
        assert sum(p.count for p in points) == 2  # sampled out, still measured
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def test_at_ratio_zero_a_failed_builtin_call_keeps_its_request_span(make_telemetry):
    """The request span ends before the worker starts and judges the call's span: it waits for
    that judgement (held by the caller's trace id), kept when the call failed, dropped otherwise."""
    session, tracer = _session(make_telemetry, sampling_ratio=0.0)
    model = LogisticRegression(max_iter=500).fit(X, y)
    for i in range(20):
        with tracer.start_as_current_span("request"):
            model.predict(X[i : i + 1])
    assert session.spans() == []  # ordinary requests and their calls: dropped by the ratio
    with tracer.start_as_current_span("request") as request:
        with pytest.raises(ValueError):
            model.predict(X[:1, :2])
    spans = session.spans()
    assert sorted(s.name for s in spans) == ["predict LogisticRegression", "request"]
    assert {s.context.trace_id for s in spans} == {request.get_span_context().trace_id}
    processor = session.instrumentor._holder.monitor._processor
    assert not processor._held and not processor._pending


def test_each_worker_made_span_has_its_own_callers_parent_under_threads(make_telemetry):
    import threading  # noqa: PLC0415

    session, tracer = _session(make_telemetry)
    model = LogisticRegression(max_iter=500).fit(X, y)
    session.clear()
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        for i in range(50):
            with tracer.start_as_current_span("request"):
                model.predict(X[i : i + 1])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = session.spans()
    requests = {s.context.span_id: s for s in spans if s.name == "request"}
    calls = [s for s in spans if s.name.startswith("predict")]
    assert len(requests) == len(calls) == 200
    parents = [requests[s.parent.span_id] for s in calls]  # every parent is a request span
    assert len({p.context.span_id for p in parents}) == 200  # one call per request, none shared
    assert all(p.context.trace_id == s.context.trace_id and p.start_time <= s.start_time <= s.end_time <= p.end_time
               for p, s in zip(parents, calls))
