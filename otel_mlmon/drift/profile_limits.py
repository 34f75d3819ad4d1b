"""Size limits of a reference profile (:class:`ProfileLimits`), checked before anything big is
built: a profile is data from outside (a file, a model's attribute), and without limits one
profile could cost seconds and gigabytes to load and then every profiled call.

What is checked, and when:

* **bytes** — before reading: a file's size (``os.stat``), then a bounded read; the length of a
  profile's JSON text given as a string (characters).
* **features**, **bins** (a numeric feature's drift bins, and the edges of its stored fine
  histogram),
  **categories** and the longest **value** (a feature name or a category value) — first by a
  scan of the text that builds nothing (:func:`check_text`: ``str.count`` and one regular
  expression over the arrays of numbers, linear time), so a profile with a million bins or a
  hundred thousand features is rejected before ``json.loads`` builds its lists; then exactly,
  field by field, while the parsed JSON is validated (:mod:`~otel_mlmon.drift.profile_json`),
  before any array or monitor is built.
* **nesting** — a valid profile is 5 levels deep; JSON nested deeper than the parser's recursion
  limit is a ``ValueError`` like any other malformed text.

A violation is one ``ValueError`` naming the limit, the value and the variable that sets it::

    reference profile has 1000000 bins in feature 'x'; the limit is 1000 (OTEL_MLMON_PROFILE_MAX_BINS)

The defaults hold every profile that ``otel-mlmon profile`` or the fit-time capture writes at
its defaults up to 1000 features (about 7 KiB per numeric feature) with room to spare; the
instrumentation reads them from ``OTEL_MLMON_PROFILE_MAX_*``
(:mod:`otel_mlmon.environment_variables`).

>>> ProfileLimits().max_bins
1000
>>> check_text('{"features":[{"name":"x","kind":"numeric","edges":[1,2,3,4]}]}', ProfileLimits(max_bins=4))
Traceback (most recent call last):
...
ValueError: reference profile has 5 bins in feature 'x'; the limit is 4 (OTEL_MLMON_PROFILE_MAX_BINS)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from typing import Iterable

from otel_mlmon import environment_variables as env

__all__ = ["ProfileLimits", "DEFAULT_LIMITS", "check_text", "read_text"]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_FEATURES = 1000
DEFAULT_MAX_BINS = 1000
DEFAULT_MAX_CATEGORIES = 10_000
DEFAULT_MAX_VALUE_LENGTH = 1024

_VARIABLES = {
    "max_bytes": env.OTEL_MLMON_PROFILE_MAX_BYTES,
    "max_features": env.OTEL_MLMON_PROFILE_MAX_FEATURES,
    "max_bins": env.OTEL_MLMON_PROFILE_MAX_BINS,
    "max_categories": env.OTEL_MLMON_PROFILE_MAX_CATEGORIES,
    "max_value_length": env.OTEL_MLMON_PROFILE_MAX_VALUE_LENGTH,
}


@dataclass(frozen=True)
class ProfileLimits:
    """The largest reference profile that is read: JSON bytes, features, bins per numeric
    feature (its drift bins, and the edges of its stored fine histogram), categories per
    categorical feature, and characters of a feature name or category value."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_features: int = DEFAULT_MAX_FEATURES
    max_bins: int = DEFAULT_MAX_BINS
    max_categories: int = DEFAULT_MAX_CATEGORIES
    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{f.name} must be an integer >= 1, got {value!r}")

    def error(self, limit: str, what: str) -> ValueError:
        """The ``ValueError`` of a violation: ``reference profile {what}; the limit is ...``."""
        return ValueError(f"reference profile {what}; the limit is {getattr(self, limit)} ({_VARIABLES[limit]})")

    def check(self, limit: str, value: int, what: str) -> None:
        """Raise :meth:`error` when ``value`` exceeds the limit."""
        if value > getattr(self, limit):
            raise self.error(limit, what)

    def check_values(self, values: Iterable[str], where: str) -> None:
        """Every string in ``values`` within ``max_value_length``."""
        longest = max(map(len, values), default=0)
        self.check("max_value_length", longest, f"has a value of {longest} characters in {where}")


DEFAULT_LIMITS = ProfileLimits()

# An array of numbers after "edges" or "counts" (no string can be inside: no quote in the class).
_NUMBERS = re.compile(r'"(edges|counts)"\s*:\s*\[([-+0-9.eE,\s]*)\]')
_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.){0,64})')
_KIND = re.compile(r'"kind"\s*:\s*"(\w+)"')


def _around(text: str, pattern: re.Pattern[str], key: str, end: int) -> str | None:
    start = text.rfind(f'"{key}"', 0, end)
    match = pattern.match(text, start) if start >= 0 else None
    return None if match is None else match.group(1)


def check_text(text: str | bytes, limits: ProfileLimits = DEFAULT_LIMITS) -> None:
    """Check a profile's JSON text against ``limits`` without parsing it: bytes (characters for
    a ``str``), then the number of features and the longest arrays of numbers (bins,
    categories), each found in linear time without building them. Raises ``ValueError``."""
    limits.check("max_bytes", len(text), f"is {len(text)} {'bytes' if isinstance(text, bytes) else 'characters'}")
    if isinstance(text, bytes):
        return  # decoded by the caller, then checked as text
    features = text.count('"name":') + text.count('"name" :')
    if features - 2 > limits.max_features:  # the output and the target are named too
        raise limits.error("max_features", f"has at least {features - 2} features")
    for match in _NUMBERS.finditer(text):
        body_start, body_end = match.span(2)
        if body_end - body_start < 2 * min(limits.max_bins, limits.max_categories + 1) - 1:
            continue  # too short to hold too many numbers ("0," per number)
        n = text.count(",", body_start, body_end) + 1
        name = _around(text, _NAME, "name", match.start()) or "?"
        kind = _around(text, _KIND, "kind", match.start())
        if kind == "categorical":
            limits.check("max_categories", n, f"has {n} categories in feature {name!r}")
        elif text.rfind('"sketch"', 0, match.start()) > text.rfind('"name"', 0, match.start()):
            edges = n if match.group(1) == "edges" else n - 1  # the stored fine histogram
            limits.check("max_bins", edges, f"has {edges} sketch edges in feature {name!r}")
        else:
            bins = n + 1 if match.group(1) == "edges" else n
            limits.check("max_bins", bins, f"has {bins} bins in feature {name!r}")


def read_text(path: str | os.PathLike[str], limits: ProfileLimits = DEFAULT_LIMITS) -> str:
    """A profile file's text, its size checked before it is read (and the read bounded, for a
    file that grows or is not a regular file). Raises ``ValueError`` (``OSError`` for I/O)."""
    size = os.stat(path).st_size
    limits.check("max_bytes", size, f"file {os.fspath(path)!r} is {size} bytes")
    with open(path, "rb") as fh:
        data = fh.read(size + 1)  # one allocation for a regular file (its size is within the limit)
        if len(data) > size:  # a file that grew, or a pipe: read on, in bounded chunks
            chunks, total = [data], len(data)
            while total <= limits.max_bytes:
                chunk = fh.read(min(1 << 20, limits.max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            data = b"".join(chunks)
            del chunks
    limits.check("max_bytes", len(data), f"file {os.fspath(path)!r} is more than {limits.max_bytes} bytes")
    try:
        return data.decode("utf-8")  # the caller checks the text (check_text) before parsing
    except UnicodeDecodeError as exc:
        raise ValueError(f"reference profile file {os.fspath(path)!r} is not UTF-8: {exc}") from None
