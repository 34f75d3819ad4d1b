"""The layout of ``otel_mlmon/`` (issue 16): no import circle between its modules, layers that read
top down (public modules -> instrumentation -> ``_internal`` -> drift / anomaly / quality), no
module a reader cannot hold (500 lines or more), and ``import otel_mlmon`` loads neither PyTorch
nor scikit-learn. Imports are read from the source with ``ast``: those inside functions count too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import otel_mlmon

PACKAGE = Path(otel_mlmon.__file__).resolve().parent
MAX_LINES = 500

# The layers, top down: a module may import its own layer and the layers below it, never one
# above. Modules outside these prefixes are the public modules (``otel_mlmon``, ``cli``, ``demo``,
# ``model_info`` ...), the top layer.
LAYERS = (
    ("instrumentation", ("otel_mlmon.instrumentation",)),
    ("_internal", ("otel_mlmon._internal",)),
    ("drift / anomaly / quality", ("otel_mlmon.drift", "otel_mlmon.anomaly", "otel_mlmon.quality")),
)
# Leaf modules: they import nothing from otel_mlmon, so every layer may read them.
LEAVES = {
    "otel_mlmon._lazy": "the lazy-exports helper of the subpackages' __init__",
    "otel_mlmon.semconv": "names and units of span attributes and metrics, the one definition every layer records by",
    "otel_mlmon.version": "the version string (User-Agent of the webhook, the processor's scope)",
    "otel_mlmon.environment_variables": "the OTEL_MLMON_* variable names, read by _internal/config",
    "otel_mlmon.package": "the instrumented libraries (contrib convention), read by the instrumentors",
    "otel_mlmon._lifecycle": "fork and exit hooks in one order; the recorder, hub and stores register with it",
}

def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("otel_mlmon", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _lazy_exports(path: Path) -> dict[str, str]:
    """A package's ``_EXPORTS`` (name -> module), read by ``lazy_exports`` on first use."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in its source, functions included).

    ``from package import name`` is an import of the submodule ``package.name`` if there is
    one, else of the module a lazy package exports ``name`` from, else of the package itself.
    The parent packages that Python imports on the way are not edges (they always exist).
    """
    modules = _modules()
    lazy = {name: _lazy_exports(path) for name, path in modules.items() if path.name == "__init__.py"}

    def owner(dotted: str) -> str | None:  # the longest prefix of ``dotted`` that is a module
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                return candidate
        return None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (owner(alias.name) for alias in node.names)))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "otel_mlmon":
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:
                        targets.add(submodule)
                    elif alias.name in lazy.get(source, {}):
                        targets.add(lazy[source][alias.name])
                    elif owner(source):
                        targets.add(owner(source))
        targets.discard(name)
        graph[name] = targets
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_import_graph_is_read_from_the_source():
    graph = _import_graph()
    # a module-level import, a function-level one, and one through a lazy package export
    assert "otel_mlmon._internal.state" in graph["otel_mlmon._internal.monitor"]
    assert "otel_mlmon.drift.profile" in graph["otel_mlmon._internal.model_profiles"]  # `from otel_mlmon.drift import ...`
    assert "otel_mlmon.quality.tracker" in graph["otel_mlmon"]  # inside record_ground_truth()
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_circle_among_the_modules():
    assert [sorted(circle) for circle in _circles(_import_graph())] == []


def _layer(module: str) -> int:
    """0 for the public modules, then 1, 2, 3 down ``LAYERS``."""
    for depth, (_, prefixes) in enumerate(LAYERS, start=1):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return depth
    return 0


def test_leaves_import_nothing_from_the_package():
    graph = _import_graph()
    assert {leaf: sorted(graph[leaf]) for leaf in LEAVES if graph[leaf]} == {}


def test_no_layer_imports_a_layer_above_it():
    """public modules -> instrumentation -> _internal -> drift / anomaly / quality: nothing
    below imports upward (drift, anomaly and quality never import _internal, instrumentation
    or the public modules)."""
    upward = sorted(
        (module, target) for module, targets in _import_graph().items() for target in targets
        if target not in LEAVES and _layer(target) < _layer(module)
    )  # fmt: skip
    assert upward == []
    assert _layer("otel_mlmon.drift.monitor") == 3 and _layer("otel_mlmon._internal.data") == 2
    assert _layer("otel_mlmon.instrumentation.torch") == 1 and _layer("otel_mlmon.model_info") == 0


def test_no_module_of_500_lines_or_more():
    too_long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines >= MAX_LINES:
            too_long[relative] = lines
    assert too_long == {}


def test_import_loads_neither_torch_nor_sklearn():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import otel_mlmon"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "otel_mlmon" in imported
    heavy = [name for name in imported if name.split(".")[0] in ("torch", "sklearn")]
    assert heavy == []
