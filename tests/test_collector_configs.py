"""Structural checks of the OpenTelemetry Collector configurations in collector-config/.

The collector binary cannot be downloaded here, so instead of ``otelcol-contrib validate`` these
tests check what the collector would reject or silently mis-wire: undefined or unknown
components, pipelines of the wrong signal, connectors used on one side only, processor order,
missing required keys, and the sampling policies that otel-mlmon's ``ml.anomaly`` attribute
relies on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prom_servers import require_module  # noqa: E402

from otel_mlmon import semconv  # noqa: E402

yaml = require_module("yaml", "PyYAML>=6.0")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
CONFIGS = sorted(CONFIG_DIR.glob("otelcol-*.yaml"))

# The release the configurations target, and component types it ships (a subset of
# distributions/otelcol-contrib/manifest.yaml of opentelemetry-collector-releases at that
# version: the types these configurations use and common alternatives).
COLLECTOR_CONTRIB_VERSION = "0.136.0"
KNOWN_TYPES = {
    "receivers": {
        "otlp", "prometheus", "hostmetrics", "filelog", "jaeger", "zipkin", "kafka",
        "k8s_cluster", "kubeletstats", "docker_stats", "nop",
    },
    "processors": {
        "batch", "memory_limiter", "resourcedetection", "resource", "attributes", "filter",
        "transform", "tail_sampling", "probabilistic_sampler", "k8sattributes",
        "cumulativetodelta", "deltatocumulative", "groupbytrace", "groupbyattrs",
        "metricstransform", "redaction", "span", "interval",
    },
    "exporters": {
        "otlp", "otlphttp", "debug", "nop", "prometheus", "prometheusremotewrite",
        "loadbalancing", "file", "kafka", "zipkin",
    },
    "connectors": {
        "forward", "spanmetrics", "servicegraph", "count", "routing", "failover",
        "roundrobin", "exceptions", "sum", "signaltometrics",
    },
    "extensions": {
        "health_check", "pprof", "zpages", "basicauth", "bearertokenauth", "headers_setter",
        "oauth2client", "file_storage",
    },
}
# Signals each used component type supports (receiver/processor/exporter side).
SIGNALS = {"traces", "metrics", "logs"}
COMPONENT_SIGNALS = {
    ("receivers", "otlp"): SIGNALS,
    ("processors", "memory_limiter"): SIGNALS,
    ("processors", "batch"): SIGNALS,
    ("processors", "resourcedetection"): SIGNALS,
    ("processors", "tail_sampling"): {"traces"},
    ("exporters", "otlp"): SIGNALS,
    ("exporters", "otlphttp"): SIGNALS,
    ("exporters", "debug"): SIGNALS,
    ("exporters", "prometheus"): {"metrics"},
    ("exporters", "prometheusremotewrite"): {"metrics"},
    ("exporters", "loadbalancing"): {"traces", "logs"},  # metrics: development stability
}
# connector type -> {(exporter-side signal, receiver-side signal)}
CONNECTOR_SIGNALS = {
    "forward": {(s, s) for s in SIGNALS},
    "spanmetrics": {("traces", "metrics")},
}
_ENV = re.compile(r"\$\{env:([A-Z0-9_]+)(?::-([^}]*))?\}")


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _signal(pipeline_id: str) -> str:
    return pipeline_id.split("/", 1)[0]


def _components(config: dict, kind: str) -> dict:
    return config.get(kind) or {}


def _pipelines(config: dict) -> dict:
    return config["service"]["pipelines"]


def _env_refs(node) -> list[tuple[str, str | None]]:
    if isinstance(node, dict):
        return [ref for value in node.values() for ref in _env_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _env_refs(value)]
    if isinstance(node, str):
        return [(m.group(1), m.group(2)) for m in _ENV.finditer(node)]
    return []


def _resolved(value):
    """A ${env:X:-default} value as the collector would see it with X unset."""
    if isinstance(value, str):
        match = _ENV.fullmatch(value)
        if match:
            return yaml.safe_load(match.group(2) or "") if match.group(2) is not None else None
    return value


def test_there_are_configurations():
    names = {path.name for path in CONFIGS}
    assert {"otelcol-minimal.yaml", "otelcol-agent.yaml", "otelcol-agent-loadbalancing.yaml",
            "otelcol-gateway.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
class TestEveryConfig:
    def test_top_level_keys(self, path):
        config = _load(path)
        assert set(config) <= {"receivers", "processors", "exporters", "connectors", "extensions", "service"}
        assert set(config["service"]) <= {"pipelines", "extensions", "telemetry"}
        assert _pipelines(config), "no pipelines"

    def test_target_version_is_stated(self, path):
        if path.name == "otelcol-minimal.yaml":
            return  # older file, kept as it was; the README states the version for all
        assert f"v{COLLECTOR_CONTRIB_VERSION}" in path.read_text()

    def test_component_types_exist_in_the_release(self, path):
        config = _load(path)
        for kind, known in KNOWN_TYPES.items():
            for component_id in _components(config, kind):
                assert _type(component_id) in known, (
                    f"{path.name}: {kind[:-1]} type {_type(component_id)!r} is not a component of "
                    f"otelcol-contrib {COLLECTOR_CONTRIB_VERSION}")

    def test_pipelines_reference_defined_components(self, path):
        config = _load(path)
        receivers = set(_components(config, "receivers")) | set(_components(config, "connectors"))
        exporters = set(_components(config, "exporters")) | set(_components(config, "connectors"))
        processors = set(_components(config, "processors"))
        for pid, pipeline in _pipelines(config).items():
            assert _signal(pid) in SIGNALS, f"{path.name}: pipeline {pid!r} has no signal type"
            assert set(pipeline) <= {"receivers", "processors", "exporters"}, pid
            assert pipeline.get("receivers"), f"{path.name}: {pid} has no receiver"
            assert pipeline.get("exporters"), f"{path.name}: {pid} has no exporter"
            for ref in pipeline["receivers"]:
                assert ref in receivers, f"{path.name}: {pid} receives from undefined {ref!r}"
            for ref in pipeline.get("processors") or ():
                assert ref in processors, f"{path.name}: {pid} uses undefined processor {ref!r}"
            for ref in pipeline["exporters"]:
                assert ref in exporters, f"{path.name}: {pid} exports to undefined {ref!r}"
            for kind in ("receivers", "processors", "exporters"):
                refs = pipeline.get(kind) or []
                assert len(refs) == len(set(refs)), f"{path.name}: {pid} lists a {kind[:-1]} twice"
        for ext in config["service"].get("extensions") or ():
            assert ext in _components(config, "extensions"), f"{path.name}: undefined extension {ext!r}"

    def test_every_component_is_used(self, path):
        config = _load(path)
        used = {kind: set() for kind in ("receivers", "processors", "exporters")}
        for pipeline in _pipelines(config).values():
            for kind in used:
                used[kind] |= set(pipeline.get(kind) or ())
        connectors = set(_components(config, "connectors"))
        for kind in used:
            defined = set(_components(config, kind))
            assert defined <= used[kind], f"{path.name}: unused {kind}: {sorted(defined - used[kind])}"
        assert set(_components(config, "extensions")) <= set(config["service"].get("extensions") or ())
        assert connectors <= used["receivers"] | used["exporters"]

    def test_connectors_are_used_on_both_sides_with_matching_signals(self, path):
        config = _load(path)
        for cid in _components(config, "connectors"):
            as_exporter = {_signal(p) for p, pl in _pipelines(config).items() if cid in pl["exporters"]}
            as_receiver = {_signal(p) for p, pl in _pipelines(config).items() if cid in pl["receivers"]}
            assert as_exporter, f"{path.name}: connector {cid} is never an exporter"
            assert as_receiver, f"{path.name}: connector {cid} is never a receiver"
            allowed = CONNECTOR_SIGNALS[_type(cid)]
            for pair in {(e, r) for e in as_exporter for r in as_receiver}:
                assert pair in allowed, f"{path.name}: connector {cid} cannot connect {pair[0]} -> {pair[1]}"

    def test_components_support_their_pipelines_signal(self, path):
        config = _load(path)
        for pid, pipeline in _pipelines(config).items():
            signal = _signal(pid)
            for kind in ("receivers", "processors", "exporters"):
                for ref in pipeline.get(kind) or ():
                    if ref in _components(config, "connectors"):
                        continue
                    supported = COMPONENT_SIGNALS[(kind, _type(ref))]
                    assert signal in supported, f"{path.name}: {ref} does not take {signal} ({pid})"

    def test_processor_order(self, path):
        config = _load(path)
        for pid, pipeline in _pipelines(config).items():
            processors = [_type(p) for p in pipeline.get("processors") or ()]
            if "memory_limiter" in processors:
                assert processors[0] == "memory_limiter", f"{path.name}: {pid}: memory_limiter must come first"
            if "batch" in processors:
                assert processors[-1] == "batch", f"{path.name}: {pid}: batch must come last"
            if "tail_sampling" in processors and "batch" in processors:
                assert processors.index("tail_sampling") < processors.index("batch")
            # pipelines fed by an OTLP receiver protect the collector's memory
            if any(_type(r) == "otlp" for r in pipeline["receivers"]):
                assert "memory_limiter" in processors, f"{path.name}: {pid} has no memory_limiter"

    def test_required_settings(self, path):
        config = _load(path)
        for cid, receiver in _components(config, "receivers").items():
            if _type(cid) == "otlp":
                assert set(receiver["protocols"]) == {"grpc", "http"}, cid
                for protocol in ("grpc", "http"):
                    assert receiver["protocols"][protocol]["endpoint"], (cid, protocol)
        for cid, processor in _components(config, "processors").items():
            if _type(cid) == "memory_limiter":
                assert processor["check_interval"]
                assert "limit_mib" in processor or "limit_percentage" in processor
        for cid, exporter in _components(config, "exporters").items():
            if _type(cid) in ("otlp", "otlphttp", "prometheus", "prometheusremotewrite"):
                assert exporter.get("endpoint"), f"{path.name}: {cid} has no endpoint"
            if _type(cid) == "otlp":
                # sending queue and retries, so that a backend outage is absorbed
                assert exporter.get("sending_queue", {}).get("enabled", True)

    def test_environment_references_are_documented(self, path):
        readme = (CONFIG_DIR / "README.md").read_text()
        for name, default in _env_refs(_load(path)):
            assert f"`{name}`" in readme, f"{path.name}: ${{env:{name}}} is not documented in collector-config/README.md"
            assert default is not None, f"{path.name}: ${{env:{name}}} has no default"


def _tail_sampling(path: Path) -> dict:
    return _load(CONFIG_DIR / path)["processors"]["tail_sampling"]


@pytest.mark.parametrize("name", ["otelcol-agent.yaml", "otelcol-gateway.yaml"])
def test_tail_sampling_keeps_anomalies_and_errors_and_samples_the_rest(name):
    sampling = _tail_sampling(name)
    assert sampling["decision_wait"]
    policies = sampling["policies"]
    assert len({p["name"] for p in policies}) == len(policies)
    for policy in policies:
        assert policy["type"] in policy, f"policy {policy['name']} lacks its {policy['type']} settings"
    by_type = {p["type"]: p[p["type"]] for p in policies}
    # policies are OR-ed: any "sample" decision keeps the trace
    assert by_type["boolean_attribute"] == {"key": semconv.ML_ANOMALY, "value": True}
    assert by_type["status_code"]["status_codes"] == ["ERROR"]
    percentage = _resolved(by_type["probabilistic"]["sampling_percentage"])
    assert isinstance(percentage, (int, float)) and 0 < percentage < 100
    assert set(by_type) == {"boolean_attribute", "status_code", "probabilistic"}


def test_agent_and_gateway_sample_alike():
    assert _tail_sampling("otelcol-agent.yaml") == _tail_sampling("otelcol-gateway.yaml")


@pytest.mark.parametrize("name", ["otelcol-agent.yaml", "otelcol-agent-loadbalancing.yaml"])
def test_span_metrics_see_every_span_before_sampling(name):
    config = _load(CONFIG_DIR / name)
    spanmetrics = config["connectors"]["spanmetrics"]
    dimensions = [d["name"] for d in spanmetrics["dimensions"]]
    assert {semconv.ML_MODEL_NAME, semconv.ML_OPERATION, semconv.ML_ANOMALY} <= set(dimensions)
    buckets = spanmetrics["histogram"]["explicit"]["buckets"]
    assert buckets == sorted(buckets) and spanmetrics["histogram"]["unit"] == "s"
    feeding = [pl for pl in _pipelines(config).values() if "spanmetrics" in pl["exporters"]]
    assert feeding
    for pipeline in feeding:
        assert "otlp" in pipeline["receivers"]
        assert "tail_sampling" not in (pipeline.get("processors") or ()), "span metrics must count every span"
    # span metrics reach the Prometheus exporter
    assert any("spanmetrics" in pl["receivers"] and "prometheus" in pl["exporters"]
               for pl in _pipelines(config).values())


def test_agent_exports_traces_metrics_and_debug():
    config = _load(CONFIG_DIR / "otelcol-agent.yaml")
    exporters = {pid: set(pl["exporters"]) for pid, pl in _pipelines(config).items()}
    sampled = [pid for pid, pl in _pipelines(config).items() if "tail_sampling" in (pl.get("processors") or ())]
    assert len(sampled) == 1 and {"otlp/traces", "debug"} <= exporters[sampled[0]]
    assert {"prometheus", "debug"} <= exporters["metrics"]
    assert "resourcedetection" in _pipelines(config)["metrics"]["processors"]


def test_loadbalancing_routes_by_trace_id_to_the_gateways():
    agent = _load(CONFIG_DIR / "otelcol-agent-loadbalancing.yaml")
    gateway = _load(CONFIG_DIR / "otelcol-gateway.yaml")
    lb = agent["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    resolvers = set(lb["resolver"]) & {"static", "dns", "k8s"}
    assert len(resolvers) == 1, "exactly one resolver"
    assert lb["resolver"]["dns"]["hostname"]
    assert "endpoint" not in lb["protocol"]["otlp"], "the resolver supplies the endpoints"
    for pid, pipeline in _pipelines(agent).items():
        if "loadbalancing" in pipeline["exporters"]:
            assert _signal(pid) == "traces"
            assert "tail_sampling" not in (pipeline.get("processors") or ()), "the gateways sample"
    # the port the agents send to is the gateways' gRPC port
    port = _resolved(lb["resolver"]["dns"]["port"])
    assert gateway["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(f":{port}")
    assert "tail_sampling" in _pipelines(gateway)["traces"]["processors"]
    assert "otlp/traces" in _pipelines(gateway)["traces"]["exporters"]


def test_minimal_config_is_unchanged_in_shape():
    config = _load(CONFIG_DIR / "otelcol-minimal.yaml")
    assert set(_pipelines(config)) == {"traces", "metrics"}
    for pipeline in _pipelines(config).values():
        assert pipeline == {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["debug"]}


def test_readme_states_version_and_documents_every_file():
    readme = (CONFIG_DIR / "README.md").read_text()
    assert f"v{COLLECTOR_CONTRIB_VERSION}" in readme
    for path in sorted(CONFIG_DIR.rglob("*")):
        if path.is_file() and path.name != "README.md" and path.parent.name != "tests":
            rel = path.relative_to(CONFIG_DIR).as_posix()
            assert f"`{rel}`" in readme, f"{rel} is not described in collector-config/README.md"
    for variable in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                     "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"):
        assert variable in readme


def test_readmes_say_what_runs_per_file():
    """collector-config/README.md has one row per file saying what the tests run for real and
    what they only check; the otelcol files are checked structurally and run by nothing, and the
    top-level README says so instead of calling the pipelines tested."""
    readme = (CONFIG_DIR / "README.md").read_text()
    section = readme.split("## What the tests run, per file", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            for name in cells[0].split(", "):
                rows[name.strip("`")] = cells
    files = {path.relative_to(CONFIG_DIR).as_posix() for path in CONFIG_DIR.rglob("*")
             if path.is_file() and path.name != "README.md" and path.parent.name != "tests"}  # fmt: skip
    assert files | {"prometheus/tests/*.test.yml"} == set(rows)
    for path in CONFIGS:
        _, run, checked, _ = rows[path.name]
        assert run == "nothing" and checked.startswith("structurally"), path.name
    assert "rotel" in section and "runs none of the `otelcol-*.yaml` files" in section
    top = (CONFIG_DIR.parent / "README.md").read_text()
    assert "pipelines that were tested" not in top
    assert "structurally only" in top and "collector-config/README.md#what-the-tests-run-per-file" in top
