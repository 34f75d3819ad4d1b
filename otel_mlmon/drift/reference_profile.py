"""A reference profile (:class:`ReferenceProfile`) and how it is built (:class:`ProfileBuilder`,
:func:`build_profile`). They live together because each needs the other: a builder finishes
into a profile, and a profile merges through builders. What a profile holds is described in
:mod:`otel_mlmon.drift.profile`; each feature's state while building is
:class:`~otel_mlmon.drift.feature_state.FeatureState`, the JSON reader
:mod:`~otel_mlmon.drift.profile_json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from otel_mlmon.drift._columns import (
    BOOL_DTYPES,
    CATEGORY_DTYPES,
    STRING_DTYPES,
    Table,
    dtype_class,
    looks_numeric,
    positional_names,
)
from otel_mlmon.drift._sketch import DEFAULT_MAX_EDGES
from otel_mlmon.drift.base import CATEGORICAL, NUMERIC
from otel_mlmon.drift.feature_profile import DEFAULT_TOP_K, FeatureProfile
from otel_mlmon.drift.feature_state import FeatureState
from otel_mlmon.drift.profile_json import FORMAT, VERSION, profile_fields, reject_constant
from otel_mlmon.drift.profile_limits import DEFAULT_LIMITS, ProfileLimits, check_text, read_text

OUTPUT = "_output"
TARGET = "_target"
DEFAULT_BINS = 10
DEFAULT_MAX_CATEGORIES = 1000
DEFAULT_STORED_SKETCH = 256


# --------------------------------------------------------------------------- the profile
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
    def from_dict(cls, data: Any, *, limits: ProfileLimits = DEFAULT_LIMITS) -> ReferenceProfile:
        return ReferenceProfile(**profile_fields(data, limits))

    @classmethod
    def from_json(cls, text: str | bytes, *, limits: ProfileLimits = DEFAULT_LIMITS) -> ReferenceProfile:
        """Parse and validate; ``ValueError`` on malformed JSON, wrong format or version, or a
        profile beyond ``limits`` (:mod:`~otel_mlmon.drift.profile_limits`: checked on the
        text before it is parsed, then field by field before anything is built)."""
        if not isinstance(text, (str, bytes)):
            raise ValueError(f"a reference profile is JSON text, got {type(text).__name__}")
        check_text(text, limits)
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"reference profile is not UTF-8: {exc}") from None
            check_text(text, limits)
        try:
            data = json.loads(text, parse_constant=reject_constant)
        except json.JSONDecodeError as exc:
            raise ValueError(f"reference profile is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError("reference profile is not valid JSON: nested too deeply (a profile is 5 levels deep)") from None
        return ReferenceProfile(**profile_fields(data, limits))

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, limits: ProfileLimits = DEFAULT_LIMITS) -> ReferenceProfile:
        """Read and validate a saved profile; its size is checked before it is read."""
        return cls.from_json(read_text(path, limits), limits=limits)

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


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ProfileBuilder:
    """Streaming, mergeable builder of a :class:`ReferenceProfile`, within ``limits``
    (:class:`~otel_mlmon.drift.profile_limits.ProfileLimits`: ``n_bins``, ``max_categories``,
    the number of features and their names are checked; category values longer than
    ``max_value_length`` are not stored but counted as "other", so what it builds can be loaded).

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
        stored_sketch_edges: int | None = None,
        output_kind: str | None = None,
        limits: ProfileLimits = DEFAULT_LIMITS,
    ) -> None:
        self.feature_names = None if feature_names is None else [str(n) for n in feature_names]
        if self.feature_names is not None and len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names must be unique")
        self.limits = limits
        self.n_bins = _check_int("n_bins", n_bins, 2)
        limits.check("max_bins", self.n_bins, f"would have n_bins {self.n_bins}")
        self.top_k = _check_int("top_k", top_k, 1)
        self.max_categories = _check_int("max_categories", max_categories, 1)
        limits.check("max_categories", self.max_categories, f"would have max_categories {self.max_categories}")
        if self.max_categories < self.top_k:
            raise ValueError(f"max_categories ({max_categories}) must be >= top_k ({top_k})")
        self.sketch_edges = _check_int("sketch_edges", sketch_edges, 16)
        if stored_sketch_edges is None:  # at least one stored edge per bin
            stored_sketch_edges = max(DEFAULT_STORED_SKETCH, self.n_bins)
        self.stored_sketch_edges = _check_int("stored_sketch_edges", stored_sketch_edges, max(4, self.n_bins))
        limits.check("max_bins", self.stored_sketch_edges, f"would have {self.stored_sketch_edges} sketch edges")
        if isinstance(categorical, str):
            categorical = [c.strip() for c in categorical.split(",") if c.strip()]
        self.categorical = None if categorical is None else {str(c) for c in categorical}
        if output_kind not in (None, NUMERIC, CATEGORICAL):
            raise ValueError(f"output_kind must be None, {NUMERIC!r} or {CATEGORICAL!r}, got {output_kind!r}")
        self.output_kind = output_kind
        self._features: list[FeatureState] | None = None
        self._named = False
        self._output: FeatureState | None = None
        self._target: FeatureState | None = None
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
        self.limits.check("max_features", table.n_cols, f"would have {table.n_cols} features")
        names = names if names is not None else positional_names(table.n_cols)
        self.limits.check_values(names, "the feature names")
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
            states.append(FeatureState(name, kind, str(dtype), cls, self.sketch_edges, self.max_categories,
                                       self.limits.max_value_length))  # fmt: skip
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
                state = FeatureState(name, kind, str(vector.dtype), dtype_class(vector.dtype), self.sketch_edges,
                                     self.max_categories, self.limits.max_value_length)  # fmt: skip
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
            self._features = [FeatureState.spawn(f) for f in other._features]
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
                             stored_sketch_edges=self.stored_sketch_edges, output_kind=self.output_kind,
                             limits=self.limits)  # fmt: skip
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
        builder._features = [FeatureState.from_profile(f, *args) for f in profile.features]
        builder._named = profile.named
        builder._output = None if profile.output is None else FeatureState.from_profile(profile.output, *args)
        builder._target = None if profile.target is None else FeatureState.from_profile(profile.target, *args)
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
