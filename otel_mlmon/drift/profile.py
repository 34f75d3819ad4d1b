"""Reference profiles: the fixed-size summary of training (or baseline) data that drift is measured
against, built in one streaming pass and stored as JSON.

What a profile holds, per input feature (names from DataFrame/mapping string columns, else
``x0, x1, ...``):

* **numeric** features (int/float dtypes, object columns holding numbers, datetimes as epoch
  seconds): ``n_bins`` (default 10) quantile bins — interior ``edges`` and exact ``counts`` of
  the finite values — plus ``min``/``max``/``mean``/``std`` (population), and counts of
  ``nan``, ``inf`` and ``missing`` (None/NA in object columns). A bounded fine histogram
  (``sketch``, at most ``stored_sketch_edges`` edges) is kept as well so that profiles merge.
* **categorical** features (object/string/category/bool dtypes, or named in ``categorical=``):
  the most frequent values with their counts (at most ``max_categories``), the count of every
  other value, and whether that list is ``complete`` (then values outside it are "unseen").
  Drift bins are the ``top_k`` (default 20) most frequent values plus one "other" bin.
* the model **output** (``predictions``) and the **target** (``y``), each as one feature named
  ``_output`` / ``_target``: float outputs are numeric, labels (int, bool, str) categorical.
  2-D outputs: one column is used as is, two columns (binary ``predict_proba``) give the
  positive-class column, more give the row maximum (confidence).

**How bins are built** (one pass, flat memory, see ``_sketch.py``): the first 8192 finite values
of each feature seed a fine grid of up to 1024 edges (every distinct value if there are fewer;
else quantiles), every row is then counted exactly into it (values beyond its range extend it
outwards), and the final quantile edges are picked among the grid's edges, so the bin counts
count every row exactly and the edges sit within ~0.1 % of the target quantiles when the first
rows are representative (shuffled data, or data sorted by that feature). Data whose first rows
cover only part of the range *and* whose later rows fill gaps inside it gets coarser edges there.

The size of a profile depends on the number of features, ``n_bins``, ``max_categories`` and
``stored_sketch_edges`` — never on the number of rows. It is serialised as strict JSON only
(:meth:`ReferenceProfile.to_json`, :meth:`~ReferenceProfile.save`), never pickled, and
validated on load (``ValueError`` naming the offending field).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(5000, 2))
>>> profile = build_profile(X, predictions=(X[:, 0] > 0).astype(int))
>>> profile.feature_names, profile.rows
(('x0', 'x1'), 5000)
>>> profile.feature("x0").n_bins, int(profile.feature("x0").counts.sum())
(10, 5000)
>>> profile.output.kind, profile.output.values
('categorical', ('0', '1'))
>>> ReferenceProfile.from_json(profile.to_json()) == profile
True
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from otel_mlmon.drift._columns import (
    BOOL_DTYPES,
    CATEGORY_DTYPES,
    DTYPE_CLASSES,
    STRING_DTYPES,
    Table,
    count_categories,
    dtype_class,
    looks_numeric,
    positional_names,
    to_float,
)
from otel_mlmon.drift._sketch import DEFAULT_MAX_EDGES, CategoryCounter, NumericSketch
from otel_mlmon.drift.base import CATEGORICAL, NUMERIC

__all__ = [
    "FORMAT",
    "VERSION",
    "PROFILE_ATTRIBUTE",
    "FeatureProfile",
    "ReferenceProfile",
    "ProfileBuilder",
    "build_profile",
    "attach_profile",
    "get_profile",
    "load_profile",
    "output_vector",
]

FORMAT = "otel-mlmon.reference-profile"
VERSION = 1
OUTPUT = "_output"
TARGET = "_target"
PROFILE_ATTRIBUTE = "_otel_mlmon_profile"
"""Model attribute holding the profile's JSON text (a plain ``str``, so it travels with pickle,
joblib and ``torch.save`` and loads where otel-mlmon is not installed)."""

DEFAULT_BINS = 10
DEFAULT_TOP_K = 20
DEFAULT_MAX_CATEGORIES = 1000
DEFAULT_STORED_SKETCH = 256


def _frozen(values: Any, dtype: Any) -> np.ndarray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------- the profile
@dataclass(frozen=True, eq=False)
class FeatureProfile:
    """Reference distribution of one feature (or of ``_output`` / ``_target``). Read-only.

    ``bins`` is the number of drift bins and :attr:`bin_counts` the reference counts over them:
    numeric — ``len(edges) + 1`` quantile bins ``(-inf, e0), [e0, e1), ..., [e_last, inf)``;
    categorical — one bin per :attr:`top` value, then "other".
    """

    name: str
    kind: str
    dtype: str
    dtype_class: str
    rows: int
    count: int
    missing: int
    nan: int = 0
    inf: int = 0
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    edges: np.ndarray = field(default_factory=lambda: _frozen([], np.float64))
    counts: np.ndarray = field(default_factory=lambda: _frozen([], np.int64))
    sketch: dict[str, Any] | None = None
    values: tuple[str, ...] = ()
    other: int = 0
    complete: bool = True
    top_k: int = DEFAULT_TOP_K

    @property
    def n_bins(self) -> int:
        return int(self.edges.size + 1) if self.kind == NUMERIC else min(self.top_k, len(self.values)) + 1

    @property
    def top(self) -> tuple[str, ...]:
        """Categorical: the values that have a bin of their own, by decreasing frequency."""
        return self.values[: self.top_k]

    @property
    def bin_counts(self) -> np.ndarray:
        """Reference counts over the drift bins."""
        if self.kind == NUMERIC:
            return self.counts
        k = min(self.top_k, len(self.values))
        head = self.counts[:k]
        return np.concatenate((head, [self.count - int(head.sum())])).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype,
                               "dtype_class": self.dtype_class, "rows": self.rows, "count": self.count,
                               "missing": self.missing}  # fmt: skip
        if self.kind == NUMERIC:
            out.update(nan=self.nan, inf=self.inf, min=self.minimum, max=self.maximum, mean=self.mean,
                       std=self.std, edges=self.edges.tolist(), counts=self.counts.tolist(), sketch=self.sketch)  # fmt: skip
        else:
            out.update(values=list(self.values), counts=self.counts.tolist(), other=self.other, complete=self.complete)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureProfile) and self.to_dict() == other.to_dict() and self.top_k == other.top_k

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """A fixed-size, mergeable, JSON-serialisable reference profile. Build one with
    :func:`build_profile` or :class:`ProfileBuilder`; read one with :meth:`from_json`,
    :func:`load_profile` or :func:`get_profile`."""

    features: tuple[FeatureProfile, ...]
    rows: int
    n_bins: int = DEFAULT_BINS
    top_k: int = DEFAULT_TOP_K
    named: bool = False
    output: FeatureProfile | None = None
    target: FeatureProfile | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> FeatureProfile:
        for f in self.features:
            if f.name == name:
                return f
        if name == OUTPUT and self.output is not None:
            return self.output
        if name == TARGET and self.target is not None:
            return self.target
        raise KeyError(name)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "rows": self.rows,
            "n_bins": self.n_bins,
            "top_k": self.top_k,
            "named": self.named,
            "features": [f.to_dict() for f in self.features],
            "output": None if self.output is None else self.output.to_dict(),
            "target": None if self.target is None else self.target.to_dict(),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """Strict JSON (no NaN/Infinity); floats round-trip exactly."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, separators=None if indent else (",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceProfile:
        return _parse_profile(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Parse and validate; ``ValueError`` on malformed JSON, wrong format or version."""
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise ValueError(f"a reference profile is JSON text, got {type(text).__name__}")
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise ValueError(f"reference profile is not valid JSON: {exc}") from None
        return _parse_profile(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(fh.read())

    # ------------------------------------------------------------------ merge
    def merge(self, other: ReferenceProfile) -> ReferenceProfile:
        """The profile of both datasets together (same features, kinds and bin settings).

        Counts, moments and categories add exactly; numeric edges are re-chosen from the merged
        fine histograms (exact where the two grids agree, interpolated inside a fine bin where
        they do not)."""
        if not isinstance(other, ReferenceProfile):
            raise TypeError(f"cannot merge a ReferenceProfile with {type(other).__name__}")
        return ProfileBuilder.from_profile(self).merge(ProfileBuilder.from_profile(other)).finish()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReferenceProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kinds = [f.kind for f in self.features]
        return (f"ReferenceProfile(rows={self.rows}, features={len(self.features)} "
                f"({kinds.count(NUMERIC)} numeric, {kinds.count(CATEGORICAL)} categorical), "
                f"output={None if self.output is None else self.output.kind})")  # fmt: skip


# --------------------------------------------------------------------------- validation
def _reject_constant(name: str) -> Any:
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


def _parse_feature(data: Any, path: str, top_k: int) -> FeatureProfile:
    r = _Reader(data, path)
    name = r.str("name")
    kind = r.str("kind", (NUMERIC, CATEGORICAL))
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
                                 edges=_frozen(edges, np.float64), counts=_frozen(counts, np.int64), sketch=sketch)  # fmt: skip
    else:
        values = r.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or len(set(values)) != len(values):
            raise ValueError(f"reference profile: {path}.values must be a list of distinct strings")
        other = r.int("other")
        if len(counts) != len(values) or sum(counts) + other != common["count"]:
            raise ValueError(f"reference profile: {path}.counts must match values, and counts + other must equal count")
        feature = FeatureProfile(**common, counts=_frozen(counts, np.int64), values=tuple(values), other=other,
                                 complete=r.bool("complete"))  # fmt: skip
    r.done()
    return feature


def _parse_profile(data: Any) -> ReferenceProfile:
    r = _Reader(data, "")
    fmt = r.get("format")
    if fmt != FORMAT:
        raise ValueError(f"not an otel-mlmon reference profile (format {fmt!r}, expected {FORMAT!r})")
    version = r.get("version")
    if version != VERSION:
        raise ValueError(f"unsupported reference profile version {version!r}; this otel-mlmon reads version {VERSION}")
    n_bins = r.int("n_bins", minimum=2)
    top_k = r.int("top_k", minimum=1)
    features_data = r.get("features")
    if not isinstance(features_data, list):
        raise ValueError("reference profile: features must be a list")
    features = tuple(_parse_feature(f, f"features[{i}]", top_k) for i, f in enumerate(features_data))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError("reference profile: feature names must be unique")
    output_data, target_data = r.get("output"), r.get("target")
    profile = ReferenceProfile(
        features=features,
        rows=r.int("rows"),
        n_bins=n_bins,
        top_k=top_k,
        named=r.bool("named"),
        output=None if output_data is None else _parse_feature(output_data, "output", top_k),
        target=None if target_data is None else _parse_feature(target_data, "target", top_k),
    )
    r.done()
    return profile


# --------------------------------------------------------------------------- building
def output_vector(values: Any) -> np.ndarray | None:
    """The 1-D view of a model output used for ``_output``: see the module docstring."""
    if values is None:
        return None
    array = values if isinstance(values, np.ndarray) else np.asarray(getattr(values, "values", values))
    if array.ndim == 0:
        return array.reshape(1)
    if array.ndim == 1:
        return array
    array = array.reshape(array.shape[0], -1)
    if array.shape[1] == 1:
        return array[:, 0]
    if array.shape[1] == 2:
        return array[:, 1]
    if array.dtype.kind in "iuf":
        return array.max(axis=1)
    return array[:, 0]


def _output_kind(values: np.ndarray) -> str:
    return NUMERIC if values.dtype.kind == "f" else CATEGORICAL


class _FeatureState:
    __slots__ = ("name", "kind", "dtype", "dtype_class", "rows", "missing", "nan", "inf", "sketch", "counter")

    def __init__(self, name: str, kind: str, dtype: str, cls: str, sketch_edges: int, max_categories: int) -> None:
        self.name, self.kind, self.dtype, self.dtype_class = name, kind, dtype, cls
        self.rows = self.missing = self.nan = self.inf = 0
        self.sketch = NumericSketch(max_edges=sketch_edges) if kind == NUMERIC else None
        self.counter = CategoryCounter(max_categories) if kind == CATEGORICAL else None

    def add_numeric(self, values: np.ndarray, missing: np.ndarray | None) -> None:
        assert self.sketch is not None
        self.rows += values.size
        finite = np.isfinite(values)
        if finite.all():
            self.sketch.update(values)
            return
        nan = np.isnan(values)
        n_missing = int(missing.sum()) if missing is not None else 0
        self.missing += n_missing
        self.nan += int(nan.sum()) - n_missing
        self.inf += int(values.size - finite.sum() - nan.sum())
        self.sketch.update(values[finite])

    def add_categorical(self, values: np.ndarray) -> None:
        assert self.counter is not None
        keys, counts, n_missing = count_categories(values)
        self.rows += values.size
        self.missing += n_missing
        self.counter.update(keys, counts)

    def add(self, values: np.ndarray) -> None:
        if self.kind == NUMERIC:
            self.add_numeric(*to_float(values))
        else:
            self.add_categorical(values)

    def merge(self, other: _FeatureState) -> None:
        if (other.name, other.kind) != (self.name, self.kind):
            raise ValueError(f"cannot merge feature {other.name!r} ({other.kind}) into {self.name!r} ({self.kind})")
        self.rows += other.rows
        self.missing += other.missing
        self.nan += other.nan
        self.inf += other.inf
        if self.sketch is not None and other.sketch is not None:
            self.sketch.merge(other.sketch)
        if self.counter is not None and other.counter is not None:
            self.counter.merge(other.counter)

    def spawn(self) -> _FeatureState:
        new = _FeatureState.__new__(_FeatureState)
        new.name, new.kind, new.dtype, new.dtype_class = self.name, self.kind, self.dtype, self.dtype_class
        new.rows = new.missing = new.nan = new.inf = 0
        new.sketch = None if self.sketch is None else self.sketch.spawn()
        new.counter = None if self.counter is None else CategoryCounter(self.counter.capacity)
        return new

    def finish(self, n_bins: int, top_k: int, stored_edges: int) -> FeatureProfile:
        common = dict(name=self.name, kind=self.kind, dtype=self.dtype, dtype_class=self.dtype_class,
                      rows=self.rows, missing=self.missing, top_k=top_k)  # fmt: skip
        if self.kind == NUMERIC:
            sk = self.sketch
            assert sk is not None
            edges, counts = sk.quantile_bins(n_bins)
            has = sk.n > 0
            return FeatureProfile(**common, count=int(sk.n), nan=self.nan, inf=self.inf,
                                  minimum=sk.minimum if has else None, maximum=sk.maximum if has else None,
                                  mean=sk.mean if has else None, std=math.sqrt(sk.m2 / sk.n) if has else None,
                                  edges=_frozen(edges, np.float64), counts=_frozen(counts, np.int64),
                                  sketch=sk.state(stored_edges))  # fmt: skip
        assert self.counter is not None
        ranked = self.counter.ranked()[: self.counter.capacity]
        count = self.rows - self.missing
        listed = sum(c for _, c in ranked)
        return FeatureProfile(**common, count=count, values=tuple(k for k, _ in ranked),
                              counts=_frozen([c for _, c in ranked], np.int64), other=count - listed,
                              complete=not self.counter.overflow and len(self.counter.counts) <= self.counter.capacity)  # fmt: skip

    @classmethod
    def from_profile(cls, f: FeatureProfile, sketch_edges: int, max_categories: int) -> _FeatureState:
        state = cls(f.name, f.kind, f.dtype, f.dtype_class, sketch_edges, max_categories)
        state.rows, state.missing, state.nan, state.inf = f.rows, f.missing, f.nan, f.inf
        if f.kind == NUMERIC:
            state.sketch = NumericSketch.from_state(f.sketch, n=f.count, mean=f.mean or 0.0, std=f.std or 0.0,
                                                    minimum=f.minimum if f.count else math.inf,
                                                    maximum=f.maximum if f.count else -math.inf,
                                                    max_edges=sketch_edges)  # fmt: skip
        else:
            assert state.counter is not None
            state.counter.counts = dict(zip(f.values, (int(c) for c in f.counts)))
            state.counter.pruned = f.other
            state.counter.overflow = not f.complete
        return state


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ProfileBuilder:
    """Streaming, mergeable builder of a :class:`ReferenceProfile`.

    ``update(chunk, y=None, predictions=None)`` adds rows (any input of ``build_profile``); the
    first chunk fixes the schema — feature names and kinds. ``finish()`` returns the profile
    and can be called again after more updates. ``merge(other)`` adds another builder's rows
    (built in another process, e.g. one per shard); ``spawn()`` gives an empty builder on this
    one's fine grids, whose merges are then exact. Memory is bounded per feature (about
    ``sketch_edges + 8192`` floats, ``2 x max_categories`` keys), whatever the number of rows.

    >>> import numpy as np
    >>> X = np.arange(2_000, dtype=float).reshape(-1, 2)
    >>> builder = ProfileBuilder(["a", "b"], n_bins=4)
    >>> for chunk in np.array_split(X, 4):
    ...     _ = builder.update(chunk)
    >>> profile = builder.finish()
    >>> profile.feature("a").edges.tolist(), profile.feature("a").counts.tolist()
    ([500.0, 1000.0, 1500.0], [250, 250, 250, 250])
    """

    def __init__(
        self,
        feature_names: Iterable[str] | None = None,
        *,
        n_bins: int = DEFAULT_BINS,
        top_k: int = DEFAULT_TOP_K,
        categorical: Iterable[str] | None = None,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        sketch_edges: int = DEFAULT_MAX_EDGES,
        stored_sketch_edges: int = DEFAULT_STORED_SKETCH,
        output_kind: str | None = None,
    ) -> None:
        self.feature_names = None if feature_names is None else [str(n) for n in feature_names]
        if self.feature_names is not None and len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names must be unique")
        self.n_bins = _check_int("n_bins", n_bins, 2)
        self.top_k = _check_int("top_k", top_k, 1)
        self.max_categories = _check_int("max_categories", max_categories, 1)
        if self.max_categories < self.top_k:
            raise ValueError(f"max_categories ({max_categories}) must be >= top_k ({top_k})")
        self.sketch_edges = _check_int("sketch_edges", sketch_edges, 16)
        self.stored_sketch_edges = _check_int("stored_sketch_edges", stored_sketch_edges, max(4, self.n_bins))
        if isinstance(categorical, str):
            categorical = [c.strip() for c in categorical.split(",") if c.strip()]
        self.categorical = None if categorical is None else {str(c) for c in categorical}
        if output_kind not in (None, NUMERIC, CATEGORICAL):
            raise ValueError(f"output_kind must be None, {NUMERIC!r} or {CATEGORICAL!r}, got {output_kind!r}")
        self.output_kind = output_kind
        self._features: list[_FeatureState] | None = None
        self._named = False
        self._output: _FeatureState | None = None
        self._target: _FeatureState | None = None
        self._rows = 0

    # ------------------------------------------------------------------ schema
    def _schema(self, table: Table) -> None:
        names = table.names
        if self.feature_names is not None:
            if names is not None and names != self.feature_names:
                raise ValueError(f"feature_names {self.feature_names} differ from the input's columns {names}")
            if len(self.feature_names) != table.n_cols:
                raise ValueError(f"{len(self.feature_names)} feature_names for {table.n_cols} columns")
            names = self.feature_names
        self._named = names is not None
        names = names if names is not None else positional_names(table.n_cols)
        unknown = (self.categorical or set()) - set(names)
        if unknown:
            raise ValueError(f"categorical names unknown features: {sorted(unknown)}")
        states = []
        for j, name in enumerate(names):
            dtype = table.dtypes[j]
            cls = dtype_class(dtype)
            if self.categorical is not None and name in self.categorical:
                kind = CATEGORICAL
            elif cls in (BOOL_DTYPES, CATEGORY_DTYPES):
                kind = CATEGORICAL
            elif cls == STRING_DTYPES:
                kind = NUMERIC if looks_numeric(table.column(j)) else CATEGORICAL
            else:
                kind = NUMERIC
            states.append(_FeatureState(name, kind, str(dtype), cls, self.sketch_edges, self.max_categories))
        self._features = states

    def _order(self, table: Table) -> list[int]:
        """Column index of each profiled feature in ``table``."""
        assert self._features is not None
        names = [f.name for f in self._features]
        if table.n_cols != len(names):
            raise ValueError(f"expected {len(names)} columns, got {table.n_cols}")
        if self._named and table.names is not None:
            if set(table.names) != set(names):
                raise ValueError(f"columns {table.names} differ from the profile's features {names}")
            where = {n: j for j, n in enumerate(table.names)}
            return [where[n] for n in names]
        return list(range(len(names)))

    # ------------------------------------------------------------------ updates
    def update(self, X: Any, y: Any = None, predictions: Any = None) -> ProfileBuilder:
        """Add a chunk of rows (and optionally its targets and the model's outputs)."""
        table = X if isinstance(X, Table) else Table(X)
        if self._features is None:
            self._schema(table)
        order = self._order(table)
        assert self._features is not None
        numeric = [k for k, f in enumerate(self._features) if f.kind == NUMERIC]
        if numeric:
            block, missing = table.float_block([order[k] for k in numeric])
            for col, k in enumerate(numeric):
                self._features[k].add_numeric(block[:, col], None if missing is None else missing[:, col])
        for k, f in enumerate(self._features):
            if f.kind == CATEGORICAL:
                f.add_categorical(table.column(order[k]))
        self._rows += table.n_rows
        for values, attr, name in ((predictions, "_output", OUTPUT), (y, "_target", TARGET)):
            vector = output_vector(values)
            if vector is None:
                continue
            if vector.shape[0] != table.n_rows:
                raise ValueError(f"{name} has {vector.shape[0]} rows, X has {table.n_rows}")
            state = getattr(self, attr)
            if state is None:
                kind = self.output_kind or _output_kind(vector)
                state = _FeatureState(name, kind, str(vector.dtype), dtype_class(vector.dtype), self.sketch_edges,
                                      self.max_categories)  # fmt: skip
                setattr(self, attr, state)
            state.add(vector)
        return self

    def merge(self, other: ProfileBuilder) -> ProfileBuilder:
        """Add the rows ``other`` has seen (same features and settings); returns ``self``."""
        if not isinstance(other, ProfileBuilder):
            raise TypeError(f"cannot merge a ProfileBuilder with {type(other).__name__}")
        if (self.n_bins, self.top_k) != (other.n_bins, other.top_k):
            raise ValueError("cannot merge builders with different n_bins or top_k")
        if other._features is None:
            return self
        if self._features is None:
            self._features = [_FeatureState.spawn(f) for f in other._features]
            self._named = other._named
        if [(f.name, f.kind) for f in self._features] != [(f.name, f.kind) for f in other._features]:
            raise ValueError("cannot merge builders over different features")
        for mine, theirs in zip(self._features, other._features):
            mine.merge(theirs)
        for attr in ("_output", "_target"):
            theirs = getattr(other, attr)
            if theirs is None:
                continue
            mine = getattr(self, attr)
            if mine is None:
                mine = theirs.spawn()
                setattr(self, attr, mine)
            mine.merge(theirs)
        self._rows += other._rows
        return self

    def spawn(self) -> ProfileBuilder:
        """An empty builder with this one's schema and fine grids (for exact shard merges)."""
        new = ProfileBuilder(self.feature_names, n_bins=self.n_bins, top_k=self.top_k, categorical=self.categorical,
                             max_categories=self.max_categories, sketch_edges=self.sketch_edges,
                             stored_sketch_edges=self.stored_sketch_edges, output_kind=self.output_kind)  # fmt: skip
        if self._features is not None:
            new._features = [f.spawn() for f in self._features]
            new._named = self._named
        new._output = None if self._output is None else self._output.spawn()
        new._target = None if self._target is None else self._target.spawn()
        return new

    def finish(self) -> ReferenceProfile:
        if self._features is None:
            raise ValueError("no rows: call update() before finish()")
        done = [f.finish(self.n_bins, self.top_k, self.stored_sketch_edges) for f in self._features]
        return ReferenceProfile(
            features=tuple(done),
            rows=self._rows,
            n_bins=self.n_bins,
            top_k=self.top_k,
            named=self._named,
            output=None if self._output is None else self._output.finish(self.n_bins, self.top_k, self.stored_sketch_edges),
            target=None if self._target is None else self._target.finish(self.n_bins, self.top_k, self.stored_sketch_edges),
        )

    @classmethod
    def from_profile(cls, profile: ReferenceProfile, **kwargs: Any) -> ProfileBuilder:
        """A builder holding ``profile``'s data (to merge profiles, or to keep adding rows)."""
        kwargs.setdefault("n_bins", profile.n_bins)
        kwargs.setdefault("top_k", profile.top_k)
        largest = max([len(f.values) for f in profile.features if f.kind == CATEGORICAL] + [DEFAULT_MAX_CATEGORIES])
        kwargs.setdefault("max_categories", largest)
        builder = cls(**kwargs)
        args = (builder.sketch_edges, builder.max_categories)
        builder._features = [_FeatureState.from_profile(f, *args) for f in profile.features]
        builder._named = profile.named
        builder._output = None if profile.output is None else _FeatureState.from_profile(profile.output, *args)
        builder._target = None if profile.target is None else _FeatureState.from_profile(profile.target, *args)
        builder._rows = profile.rows
        return builder


def _row_chunks(table: Table, chunk_size: int) -> Iterable[Table]:
    for start in range(0, max(table.n_rows, 1), chunk_size):
        yield table.rows(slice(start, start + chunk_size))


def build_profile(
    X: Any,
    y: Any = None,
    predictions: Any = None,
    feature_names: Iterable[str] | None = None,
    chunk_size: int = 100_000,
    **options: Any,
) -> ReferenceProfile:
    """Profile an in-memory dataset, ``chunk_size`` rows at a time (bounded temporary memory).

    ``X``: numpy array, DataFrame, mapping of columns, ...; ``y``: targets; ``predictions``: the
    model's outputs on ``X`` (labels or scores). ``options`` go to :class:`ProfileBuilder`
    (``n_bins``, ``top_k``, ``categorical``, ``max_categories``, ``output_kind`` ...). For data
    that does not fit in memory use :class:`ProfileBuilder` or ``otel-mlmon profile``.
    """
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    table = Table(X)
    builder = ProfileBuilder(feature_names, **options)
    y_vec, p_vec = output_vector(y), output_vector(predictions)
    for start in range(0, max(table.n_rows, 1), chunk_size):
        sl = slice(start, start + chunk_size)
        builder.update(table.rows(sl), None if y_vec is None else y_vec[sl], None if p_vec is None else p_vec[sl])
    return builder.finish()


# --------------------------------------------------------------------------- models and files
def attach_profile(model: Any, profile: ReferenceProfile) -> Any:
    """Store ``profile`` (as its JSON text) on ``model``; returns the model.

    The text lives in the instance ``__dict__`` under ``_otel_mlmon_profile``: it travels with
    pickle, joblib and ``torch.save`` and is ignored by ``get_params``/``clone``.
    """
    if not isinstance(profile, ReferenceProfile):
        raise TypeError(f"expected a ReferenceProfile, got {type(profile).__name__}")
    try:
        object.__setattr__(model, PROFILE_ATTRIBUTE, profile.to_json())
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"cannot attach a profile to {type(model).__name__}: {exc}") from None
    return model


@functools.lru_cache(maxsize=32)
def _parse_cached(text: str) -> ReferenceProfile:
    return ReferenceProfile.from_json(text)


def get_profile(model: Any) -> ReferenceProfile | None:
    """The profile attached to ``model`` by :func:`attach_profile`, or None.

    Parsed once per distinct JSON text (cached), so calling it per prediction is cheap. Raises
    ``ValueError`` when the attribute holds something that is not a valid profile."""
    text = getattr(model, "__dict__", {}).get(PROFILE_ATTRIBUTE)
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{PROFILE_ATTRIBUTE} must hold the profile's JSON text, got {type(text).__name__}")
    return _parse_cached(text)


def load_profile(path: str | os.PathLike[str]) -> ReferenceProfile:
    """Read and validate a profile saved with :meth:`ReferenceProfile.save` or the CLI."""
    return ReferenceProfile.load(path)
