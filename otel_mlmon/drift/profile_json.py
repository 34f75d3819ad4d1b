"""A reference profile's JSON: the format's name and version, and the reader that validates
every field of a profile being loaded (``ValueError`` naming the offending field). Writing is
:meth:`~otel_mlmon.drift.profile.ReferenceProfile.to_dict` / ``to_json``."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from otel_mlmon.drift._columns import DTYPE_CLASSES
from otel_mlmon.drift.base import CATEGORICAL, NUMERIC
from otel_mlmon.drift.feature_profile import FeatureProfile, frozen_array
from otel_mlmon.drift.profile_limits import DEFAULT_LIMITS, ProfileLimits

FORMAT = "otel-mlmon.reference-profile"
VERSION = 1


def reject_constant(name: str) -> Any:
    raise ValueError(f"reference profile JSON must not contain {name}")


class _Reader:
    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ValueError(f"reference profile: {path or 'top level'} must be an object, got {type(data).__name__}")
        self.data, self.path, self.used = data, path, set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, *, optional: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if optional:
                return None
            raise ValueError(f"reference profile: missing field {self._where(key)!r}")
        return self.data[key]

    def int(self, key: str, *, minimum: int = 0) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"reference profile: {self._where(key)} must be an integer >= {minimum}, got {value!r}")
        return value

    def number(self, key: str, *, nullable: bool = False) -> float | None:
        value = self.get(key)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"reference profile: {self._where(key)} must be a finite number, got {value!r}")
        return float(value)

    def str(self, key: str, choices: Iterable[str] | None = None) -> str:
        value = self.get(key)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            expected = f"one of {tuple(choices)}" if choices is not None else "a string"
            raise ValueError(f"reference profile: {self._where(key)} must be {expected}, got {value!r}")
        return value

    def bool(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise ValueError(f"reference profile: {self._where(key)} must be true or false, got {value!r}")
        return value

    def numbers(self, key: str, *, integer: bool = False, value: Any = None) -> list[Any]:
        values = self.get(key) if value is None else value
        ok = isinstance(values, list) and all(
            (isinstance(v, int) and not isinstance(v, bool) and v >= 0) if integer
            else (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            for v in values
        )  # fmt: skip
        if not ok:
            kind = "non-negative integers" if integer else "finite numbers"
            raise ValueError(f"reference profile: {self._where(key)} must be a list of {kind}")
        return values

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise ValueError(f"reference profile: unknown field(s) {', '.join(self._where(k) for k in extra)}")


def _increasing(values: list[float], where: str) -> None:
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"reference profile: {where} must be strictly increasing")


def _sizes(r: _Reader, kind: str, name: str, limits: ProfileLimits) -> None:
    """The feature's lists within ``limits``, checked before their elements are read."""
    where = f"feature {name[:64]!r}"
    counts = r.data.get("counts")
    if kind == NUMERIC:
        edges, sketch = r.data.get("edges"), r.data.get("sketch")
        sketch = sketch if isinstance(sketch, dict) else {}
        for values, extra, what in ((edges, 1, "bins"), (counts, 0, "bins"), (sketch.get("edges"), 0, "sketch edges"),
                                    (sketch.get("counts"), -1, "sketch edges")):  # fmt: skip
            if isinstance(values, list):
                n = len(values) + extra
                limits.check("max_bins", n, f"has {n} {what} in {where}")
    else:
        values = r.data.get("values")
        for items in (values, counts):
            if isinstance(items, list):
                limits.check("max_categories", len(items), f"has {len(items)} categories in {where}")
        if isinstance(values, list) and all(isinstance(v, str) for v in values):
            limits.check_values(values, where)


def _parse_feature(data: Any, path: str, top_k: int, limits: ProfileLimits = DEFAULT_LIMITS) -> FeatureProfile:
    r = _Reader(data, path)
    name = r.str("name")
    limits.check("max_value_length", len(name), f"has a feature name of {len(name)} characters ({path})")
    kind = r.str("kind", (NUMERIC, CATEGORICAL))
    _sizes(r, kind, name, limits)
    common = dict(name=name, kind=kind, dtype=r.str("dtype"), dtype_class=r.str("dtype_class", DTYPE_CLASSES),
                  rows=r.int("rows"), count=r.int("count"), missing=r.int("missing"), top_k=top_k)  # fmt: skip
    counts = r.numbers("counts", integer=True)
    if kind == NUMERIC:
        edges = r.numbers("edges")
        _increasing(edges, f"{path}.edges")
        if len(counts) != len(edges) + 1 or sum(counts) != common["count"]:
            raise ValueError(f"reference profile: {path}.counts must have len(edges) + 1 entries summing to count")
        stats = {k: r.number(k, nullable=True) for k in ("min", "max", "mean", "std")}
        if common["count"] and any(v is None for v in stats.values()):
            raise ValueError(f"reference profile: {path} has values but no min/max/mean/std")
        if common["count"] and edges and not stats["min"] <= edges[0] <= edges[-1] <= stats["max"]:  # type: ignore[operator]
            raise ValueError(f"reference profile: {path}.edges must lie within [min, max]")
        sketch = r.get("sketch")
        if sketch is not None:
            s = _Reader(sketch, f"{path}.sketch")
            s_edges = s.numbers("edges")
            _increasing(s_edges, f"{path}.sketch.edges")
            s_counts = s.numbers("counts", integer=True)
            s.bool("exact")
            s.done()
            if not s_edges or len(s_counts) != len(s_edges) + 1 or sum(s_counts) != common["count"]:
                raise ValueError(f"reference profile: {path}.sketch.counts must have len(edges) + 1 entries summing to count")
            sketch = {"edges": [float(v) for v in s_edges], "counts": s_counts, "exact": sketch["exact"]}
        elif common["count"]:
            raise ValueError(f"reference profile: {path}.sketch is required when the feature has values")
        feature = FeatureProfile(**common, nan=r.int("nan"), inf=r.int("inf"), minimum=stats["min"],
                                 maximum=stats["max"], mean=stats["mean"], std=stats["std"],
                                 edges=frozen_array(edges, np.float64), counts=frozen_array(counts, np.int64), sketch=sketch)  # fmt: skip
    else:
        values = r.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or len(set(values)) != len(values):
            raise ValueError(f"reference profile: {path}.values must be a list of distinct strings")
        other = r.int("other")
        if len(counts) != len(values) or sum(counts) + other != common["count"]:
            raise ValueError(f"reference profile: {path}.counts must match values, and counts + other must equal count")
        feature = FeatureProfile(**common, counts=frozen_array(counts, np.int64), values=tuple(values), other=other,
                                 complete=r.bool("complete"))  # fmt: skip
    r.done()
    return feature


def profile_fields(data: Any, limits: ProfileLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The validated fields of a :class:`~otel_mlmon.drift.profile.ReferenceProfile` read from
    parsed JSON; ``ValueError`` naming the offending field or the limit exceeded
    (:class:`~otel_mlmon.drift.profile_limits.ProfileLimits`), sizes checked before the
    elements are read."""
    r = _Reader(data, "")
    fmt = r.get("format")
    if fmt != FORMAT:
        raise ValueError(f"not an otel-mlmon reference profile (format {fmt!r}, expected {FORMAT!r})")
    version = r.get("version")
    if version != VERSION:
        raise ValueError(f"unsupported reference profile version {version!r}; this otel-mlmon reads version {VERSION}")
    n_bins = r.int("n_bins", minimum=2)
    limits.check("max_bins", n_bins, f"has n_bins {n_bins}")
    top_k = r.int("top_k", minimum=1)
    limits.check("max_categories", top_k, f"has top_k {top_k}")
    features_data = r.get("features")
    if not isinstance(features_data, list):
        raise ValueError("reference profile: features must be a list")
    limits.check("max_features", len(features_data), f"has {len(features_data)} features")
    features = tuple(_parse_feature(f, f"features[{i}]", top_k, limits) for i, f in enumerate(features_data))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError("reference profile: feature names must be unique")
    output_data, target_data = r.get("output"), r.get("target")
    fields = dict(
        features=features,
        rows=r.int("rows"),
        n_bins=n_bins,
        top_k=top_k,
        named=r.bool("named"),
        output=None if output_data is None else _parse_feature(output_data, "output", top_k, limits),
        target=None if target_data is None else _parse_feature(target_data, "target", top_k, limits),
    )
    r.done()
    return fields
