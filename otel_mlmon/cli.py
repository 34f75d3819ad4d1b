"""The ``otel-mlmon`` command.

    otel-mlmon demo      # the main job end to end on an embedded default, with a report
    otel-mlmon profile   # build a reference profile from a CSV or Parquet file (creates --output's directory)
    otel-mlmon config    # print the effective configuration

Subcommands import what they need when they run, so ``otel-mlmon --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from dataclasses import fields
from typing import Any, Sequence

from otel_mlmon.version import __version__

# OpenTelemetry SDK variables that decide where telemetry goes (shown by `otel-mlmon config`).
_OTEL_VARIABLES = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    "OTEL_SDK_DISABLED",
)


def effective_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """What ``otel-mlmon config`` prints: frameworks, exporters and every ``OTEL_MLMON_*`` value.

    The settings are listed from their one definition (the fields of ``Settings``), each with
    its effective value and where it came from; ``OTEL_MLMON_*`` variables set in the
    environment that are no setting (a typo, a removed setting) are listed as ignored."""
    from otel_mlmon._internal.config import _SPEC, Settings  # noqa: PLC0415

    environ = dict(os.environ if environ is None else environ)
    settings = Settings.resolve({}, environ)
    frameworks = {}
    for module, dist in (("sklearn", "scikit-learn"), ("torch", "torch")):
        found = importlib.util.find_spec(module) is not None
        version = None
        if found:
            try:
                from importlib.metadata import version as dist_version  # noqa: PLC0415

                version = dist_version(dist)
            except Exception:  # noqa: BLE001
                version = "unknown"
        frameworks[dist] = version
    mlmon = {}
    for name, (var, parse, _) in _SPEC.items():
        value = getattr(settings, name)
        raw = environ.get(var)
        source = "default"
        if raw is not None and raw.strip():
            try:
                parse(raw)
                source = "environment"
            except (TypeError, ValueError):
                source = "default (invalid value ignored)"
        if name == "alert_webhook_url" and value:
            value = _redact_url(value)
        mlmon[var] = {"value": list(value) if isinstance(value, tuple) else value, "source": source}
    for var in sorted(environ):
        if var.startswith("OTEL_MLMON_") and var not in mlmon:
            mlmon[var] = {"value": environ[var], "source": "environment (unknown variable, ignored)"}
    otel = {var: environ[var] for var in _OTEL_VARIABLES if var in environ}
    otel.setdefault("OTEL_TRACES_EXPORTER", "otlp (default)")
    otel.setdefault("OTEL_METRICS_EXPORTER", "otlp (default)")
    return {"otel_mlmon": __version__, "frameworks": frameworks, "opentelemetry": otel, "settings": mlmon}


def _redact_url(url: str) -> str:
    """``url`` without what may be a secret: credentials, query and fragment (``...``)."""
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if "@" in parts.netloc:
        netloc = "...@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "..." if parts.query else "", "..." if parts.fragment else ""))


def _config(args: argparse.Namespace) -> int:
    config = effective_config()
    if args.json:
        print(json.dumps(config, indent=2, default=str))
        return 0
    print(f"otel-mlmon {config['otel_mlmon']}")
    print("\nFrameworks:")
    for dist, version in config["frameworks"].items():
        print(f"  {dist:<14} {version or 'not installed'}")
    print("\nOpenTelemetry:")
    width = max(map(len, config["opentelemetry"]), default=0)
    for var, value in config["opentelemetry"].items():
        print(f"  {var:<{width}}  {value}")
    settings = config["settings"]
    print(f"\nOTEL_MLMON_* ({len(settings)}: value, source):")
    width = max(map(len, settings), default=0)
    for var, item in settings.items():
        value = item["value"]
        text = ",".join(map(str, value)) if isinstance(value, list) else "(unset)" if value is None else str(value)
        print(f"  {var:<{width}}  {text}  [{item['source']}]")
    return 0


def _profile(args: argparse.Namespace) -> int:
    """``otel-mlmon profile``: the directories of ``--output`` are created as needed (and
    removed again, if still empty, when no profile could be written); the profile limits are
    ``OTEL_MLMON_PROFILE_MAX_*``, as where the profile will be loaded."""
    from otel_mlmon._internal.config import Settings  # noqa: PLC0415
    from otel_mlmon._internal.model_profiles import limits_of  # noqa: PLC0415
    from otel_mlmon.drift.cli import profile_command  # noqa: PLC0415

    args.limits = limits_of(Settings.resolve({}))

    created = []
    directory = os.path.dirname(os.path.abspath(args.output))
    while not os.path.isdir(directory) and directory != os.path.dirname(directory):
        created.append(directory)
        directory = os.path.dirname(directory)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    except OSError as exc:
        print(f"otel-mlmon profile: error: cannot create the directory of {args.output}: {exc}", file=sys.stderr)
        return 2
    status = profile_command(args)
    if status != 0:
        for path in created:  # deepest first
            try:
                os.rmdir(path)
            except OSError:
                break
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-mlmon", description="OpenTelemetry-native ML model monitoring.")
    parser.add_argument("--version", action="version", version=f"otel-mlmon {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    config = commands.add_parser("config", help="print the effective configuration")
    config.add_argument("--json", action="store_true", help="machine-readable output")
    config.set_defaults(run=_config)
    try:
        from otel_mlmon.drift.cli import add_profile_parser  # noqa: PLC0415

        add_profile_parser(commands).set_defaults(func=_profile)
    except ImportError:  # pragma: no cover - the drift package is part of the distribution
        pass
    try:
        from otel_mlmon.demo import add_demo_parser  # noqa: PLC0415

        add_demo_parser(commands)
    except ImportError:
        pass
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None) or getattr(args, "func", None)
    if run is None:
        parser.print_help()
        return 2
    return int(run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
