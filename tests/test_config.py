"""Settings precedence: argument, then OTEL_MLMON_* variable, then default."""

from __future__ import annotations

import logging

import pytest

from otel_mlmon import environment_variables as env
from otel_mlmon._internal.config import DEFAULT_OPERATIONS, Settings


def test_defaults():
    assert Settings.resolve({}, {}) == Settings()
    assert Settings().operations == DEFAULT_OPERATIONS


def test_environment_then_argument_precedence():
    environ = {env.OTEL_MLMON_MAX_CLASS_LABELS: "5", env.OTEL_MLMON_DETAIL_SPANS: "true",
               env.OTEL_MLMON_OPERATIONS: "predict, transform"}  # fmt: skip
    settings = Settings.resolve({}, environ)
    assert settings.max_class_labels == 5 and settings.detail_spans is True
    assert settings.operations == ("predict", "transform")
    assert Settings.resolve({"max_class_labels": 9}, environ).max_class_labels == 9


@pytest.mark.parametrize(
    ("variable", "value"),
    [(env.OTEL_MLMON_MAX_CLASS_LABELS, "many"), (env.OTEL_MLMON_QUEUE_SIZE, "-1"),
     (env.OTEL_MLMON_DETAIL_SPANS, "maybe"), (env.OTEL_MLMON_OPERATIONS, "predict,explode"),
     (env.OTEL_MLMON_FLUSH_INTERVAL, "0")],  # fmt: skip
)
def test_malformed_environment_warns_and_falls_back(variable, value, caplog):
    with caplog.at_level(logging.WARNING):
        settings = Settings.resolve({}, {variable: value})
    assert settings == Settings()
    assert any(variable in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_class_labels": 0}, {"max_class_labels": "x"}, {"operations": ["fit"]}, {"operations": []},
     {"detail_spans": "perhaps"}, {"queue_size": 3.5}, {"max_models": True}],  # fmt: skip
)
def test_bad_argument_raises_value_error(kwargs):
    with pytest.raises(ValueError):
        Settings.resolve(kwargs, {})


def test_every_variable_is_a_documented_constant():
    names = [n for n in dir(env) if n.startswith("OTEL_MLMON_")]
    assert names and all(getattr(env, n) == n for n in names)
