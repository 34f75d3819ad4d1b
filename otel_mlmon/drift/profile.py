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

Where it lives: :class:`ReferenceProfile` and its builder in
:mod:`~otel_mlmon.drift.reference_profile`, one feature's reference in
:mod:`~otel_mlmon.drift.feature_profile`, one feature's state while building and merging in
:mod:`~otel_mlmon.drift.feature_state`, the JSON format and its validating reader in
:mod:`~otel_mlmon.drift.profile_json`. This module holds profiles on models and in files
(:func:`attach_profile`, :func:`get_profile`, :func:`load_profile`) and re-exports the rest.

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
import os
from typing import Any

from otel_mlmon.drift.feature_profile import DEFAULT_TOP_K, FeatureProfile
from otel_mlmon.drift.profile_json import FORMAT, VERSION
from otel_mlmon.drift.reference_profile import (
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_STORED_SKETCH,
    OUTPUT,
    TARGET,
    ProfileBuilder,
    ReferenceProfile,
    build_profile,
    output_vector,
)

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

PROFILE_ATTRIBUTE = "_otel_mlmon_profile"
"""Model attribute holding the profile's JSON text (a plain ``str``, so it travels with pickle,
joblib and ``torch.save`` and loads where otel-mlmon is not installed)."""


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
