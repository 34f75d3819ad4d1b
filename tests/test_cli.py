"""The ``otel-mlmon`` command: ``config`` and ``profile``, and a profile written by the CLI used
for a model trained elsewhere (``OTEL_MLMON_PROFILE_DIR``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import semconv
from otel_mlmon.cli import main
from otel_mlmon.drift import get_profile

CLI = [sys.executable, "-m", "otel_mlmon.cli"]


def test_config_reports_values_and_their_source(capsys, monkeypatch):
    env = {**os.environ, "OTEL_MLMON_SAMPLING_RATIO": "0.25", "OTEL_MLMON_QUEUE_SIZE": "-3",
           "OTEL_MLMON_SAMPLING_RATE": "0.5"}  # the last one: a typo, no such setting
    out = subprocess.run(CLI + ["config", "--json"], env=env, capture_output=True, text=True, check=True)
    config = json.loads(out.stdout)
    settings = config["settings"]
    assert settings["OTEL_MLMON_SAMPLING_RATIO"] == {"value": 0.25, "source": "environment"}
    assert settings["OTEL_MLMON_QUEUE_SIZE"] == {"value": 65536, "source": "default (invalid value ignored)"}
    assert settings["OTEL_MLMON_SAMPLING_RATE"] == {"value": "0.5", "source": "environment (unknown variable, ignored)"}
    assert config["frameworks"]["scikit-learn"]

    # Every documented OTEL_MLMON_* variable is a setting, and every setting is listed with its
    # effective value: the list comes from the one definition (the fields of Settings).
    from dataclasses import fields

    from otel_mlmon import environment_variables
    from otel_mlmon._internal.config import Settings

    documented = {name for name in vars(environment_variables) if name.startswith("OTEL_MLMON_")}
    defined = {f.metadata["variable"]: f for f in fields(Settings)}
    assert set(defined) == documented
    assert set(settings) == documented | {"OTEL_MLMON_SAMPLING_RATE"}
    resolved = Settings.resolve({}, env)
    for var, f in defined.items():
        value = getattr(resolved, f.name)
        assert settings[var]["value"] == (list(value) if isinstance(value, tuple) else value), var

    monkeypatch.setenv("OTEL_MLMON_LABEL_STORE", "memory")
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  OTEL_MLMON_")}
    assert set(lines) >= documented
    assert lines["OTEL_MLMON_LABEL_STORE"].split()[1:] == ["memory", "[environment]"]
    assert lines["OTEL_MLMON_MAX_MODELS"].split()[1:] == ["100", "[default]"]


def test_config_never_prints_the_secrets_of_a_webhook_url(monkeypatch, capsys):
    monkeypatch.setenv("OTEL_MLMON_ALERT_WEBHOOK_URL", "https://bot:s3cret@hooks.example/alert?token=t0ken#x")
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert "s3cret" not in text and "t0ken" not in text and "bot" not in text
    assert "https://...@hooks.example/alert?..." in text


def test_profile_command_and_profile_dir(tmp_path, make_telemetry):
    X, y = load_wine(return_X_y=True, as_frame=True)
    frame = X.assign(target=y)
    frame.to_csv(tmp_path / "wine.csv", index=False)
    # README's command, run where profiles/ does not exist yet: the directory is created.
    out = subprocess.run(CLI + ["profile", "wine.csv", "--target", "target", "--output", "profiles/wine.json"],
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    profile = otel_mlmon.load_profile(tmp_path / "profiles" / "wine.json")
    assert list(profile.feature_names) == list(X.columns)
    bad = subprocess.run(CLI + ["profile", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "a" / "b" / "p.json")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "missing.csv" in bad.stderr + bad.stdout
    assert not (tmp_path / "a").exists(), "a failed run leaves no empty directories behind"

    telemetry = make_telemetry(profile_on_fit=False, profile_dir=str(tmp_path / "profiles"), label_store="none")
    model = LogisticRegression(max_iter=5000).fit(X, y)
    assert get_profile(model) is None  # trained "elsewhere": no profile attached
    otel_mlmon.set_model_info(model, name="wine")
    rng = np.random.default_rng(0)
    for _ in range(20):
        model.predict(X.iloc[rng.integers(0, len(X), 20)])
    telemetry.instrumentor.force_flush()
    scores = [(a, p.value) for _, _, a, p in telemetry.points(semconv.DRIFT_SCORE.name)
              if a[semconv.ML_MODEL_NAME] == "wine"]  # fmt: skip
    assert scores, "the profile from OTEL_MLMON_PROFILE_DIR is used"
    assert {a[semconv.ML_FEATURE_NAME] for a, _ in scores} <= set(X.columns) | {"_output"}
