"""``otel-mlmon profile``: build a reference profile from a CSV or Parquet file, in streaming chunks.

::

    otel-mlmon profile train.csv --target y --output profile.json
    otel-mlmon profile train.parquet --target y --prediction score --categorical city,plan
    python -m otel_mlmon.drift.cli profile train.csv --target y      # same, without the entry point

The file is read ``--chunk-size`` rows at a time (default 100,000), and at most
:data:`MAX_CELLS` values per chunk (fewer rows for a wide file), so memory stays flat whatever
its length: CSV with pandas when it is installed (``read_csv(chunksize=...)``), else with the
standard ``csv`` module; Parquet with pyarrow (``iter_batches``) — without pyarrow a Parquet file
is refused with a clear message. Every column except ``--target`` and ``--prediction`` is a
feature.

The profile limits (:class:`~otel_mlmon.drift.profile_limits.ProfileLimits`, from
``OTEL_MLMON_PROFILE_MAX_*`` under ``otel-mlmon``) are checked before any row is read: the
number of columns on the header (read with a bounded ``readline``), ``--bins`` and ``--top-k``.
Category values longer than the value-length limit are not stored (they count as "other").
Exit status: 0 on success, 2 on a usage or input error, a file with no rows, or a limit
exceeded — with a one-line message, no traceback.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Any, Iterator

import numpy as np

from otel_mlmon.drift.profile import DEFAULT_BINS, DEFAULT_TOP_K, ProfileBuilder
from otel_mlmon.drift.profile_limits import DEFAULT_LIMITS, ProfileLimits

__all__ = ["add_profile_parser", "profile_command", "main", "MAX_CELLS"]

MAX_CELLS = 4_000_000  # values read per chunk (rows x columns): 32 MB as floats


class _InputError(Exception):
    """A problem with the command's input: reported in one line, exit status 2."""


def add_profile_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``profile`` sub-command on an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "profile",
        help="build a drift reference profile (JSON) from a CSV or Parquet file",
        description="Build a drift reference profile from a CSV or Parquet file, streaming in chunks.",
    )
    parser.add_argument("input", help="CSV or Parquet file (.parquet/.pq are read as Parquet)")
    parser.add_argument("--output", "-o", default="profile.json", help="where to write the profile (default: profile.json)")
    parser.add_argument("--target", help="column holding the ground truth (profiled as _target)")
    parser.add_argument("--prediction", help="column holding the model's outputs (profiled as _output)")
    parser.add_argument("--categorical", default="", help="comma-separated columns to treat as categorical")
    parser.add_argument("--chunk-size", type=int, default=100_000, help="rows read at a time (default: 100000)")
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help=f"quantile bins per numeric feature (default: {DEFAULT_BINS})")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help=f"categories with their own bin (default: {DEFAULT_TOP_K})")
    parser.add_argument("--format", choices=("auto", "csv", "parquet"), default="auto", help="input format (default: from the extension)")
    parser.add_argument("--delimiter", default=",", help="CSV field delimiter (default: ,)")
    parser.set_defaults(func=profile_command)
    return parser


def _split(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


# --------------------------------------------------------------------------- readers
def _csv_chunks_pandas(path: str, chunk_size: int, delimiter: str, categorical: list[str]) -> Iterator[dict[str, np.ndarray]]:
    import pandas as pd  # noqa: PLC0415 - optional

    dtype = {c: "string" for c in categorical} or None
    with pd.read_csv(path, chunksize=chunk_size, sep=delimiter, dtype=dtype) as reader:
        for frame in reader:
            yield {str(c): frame[c].to_numpy() for c in frame.columns}


def _parse_floats(values: list[str]) -> np.ndarray | None:
    """Floats for a column of CSV text (empty = NaN), or None if some value is not a number."""
    out = np.empty(len(values), dtype=np.float64)
    for i, text in enumerate(values):
        text = text.strip()
        if not text:
            out[i] = np.nan
            continue
        try:
            out[i] = float(text)
        except ValueError:
            return None
    return out


def _csv_chunks_stdlib(path: str, chunk_size: int, delimiter: str, categorical: list[str]) -> Iterator[dict[str, np.ndarray]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise _InputError(f"{path} is empty")
        kinds: dict[str, str] = {}
        rows: list[list[str]] = []

        def emit() -> dict[str, np.ndarray]:
            columns: dict[str, np.ndarray] = {}
            for j, name in enumerate(header):
                raw = [row[j] if j < len(row) else "" for row in rows]
                if name not in kinds:
                    numeric = name not in categorical and _parse_floats(raw) is not None
                    kinds[name] = "numeric" if numeric else "text"
                floats = _parse_floats(raw) if kinds[name] == "numeric" else None
                if floats is None and kinds[name] == "numeric":
                    floats = np.array([_float_or_nan(v) for v in raw], dtype=np.float64)
                if floats is not None:
                    columns[name] = floats
                else:
                    columns[name] = np.array([v if v != "" else None for v in raw], dtype=object)
            return columns

        for row in reader:
            rows.append(row)
            if len(rows) >= chunk_size:
                yield emit()
                rows = []
        if rows:
            yield emit()


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _parquet_chunks(path: str, chunk_size: int, limits: ProfileLimits = DEFAULT_LIMITS,
                    reserved: int = 0) -> Iterator[dict[str, np.ndarray]]:  # fmt: skip
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional
    except ImportError:
        raise _InputError("reading Parquet files needs pyarrow, which is not installed: pip install pyarrow "
                          "(or convert the file to CSV)") from None  # fmt: skip
    parquet = pq.ParquetFile(path)
    columns = len(parquet.schema_arrow.names)
    limits.check("max_features", columns - reserved, f"would have {columns - reserved} features: {path} has "
                 f"{columns} columns")  # fmt: skip
    for batch in parquet.iter_batches(batch_size=max(1, min(chunk_size, MAX_CELLS // max(columns, 1)))):
        yield {name: batch.column(i).to_numpy(zero_copy_only=False) for i, name in enumerate(batch.schema.names)}


def _csv_columns(path: str, delimiter: str, limits: ProfileLimits, reserved: int) -> int:
    """The number of columns on the CSV header, read with a bounded ``readline``: a header too
    long for ``limits`` is refused without being read whole."""
    most = (limits.max_features + reserved) * (limits.max_value_length + 3) + 2
    with open(path, newline="", encoding="utf-8") as fh:
        line = fh.readline(most)
    if not line.strip():
        raise _InputError(f"{path} is empty")
    if len(line) >= most and not line.endswith("\n"):
        seen = line.count(delimiter) + 1
        limits.check("max_features", seen - reserved, f"would have at least {seen - reserved} features: the "
                     f"header of {path} has at least {seen} columns")  # fmt: skip
        raise limits.error("max_value_length", f"header of {path} is longer than {most} characters: a "
                           f"column name is longer than the {limits.max_value_length} characters")  # fmt: skip
    return len(next(csv.reader([line], delimiter=delimiter), []))


def _chunks(args: argparse.Namespace, categorical: list[str], limits: ProfileLimits) -> Iterator[dict[str, np.ndarray]]:
    fmt = args.format
    if fmt == "auto":
        fmt = "parquet" if args.input.lower().endswith((".parquet", ".pq")) else "csv"
    reserved = (args.target is not None) + (args.prediction is not None)
    if fmt == "parquet":
        return _parquet_chunks(args.input, args.chunk_size, limits, reserved)
    columns = _csv_columns(args.input, args.delimiter, limits, reserved)
    limits.check("max_features", columns - reserved, f"would have {columns - reserved} features: {args.input} "
                 f"has {columns} columns")  # fmt: skip
    rows = max(1, min(args.chunk_size, MAX_CELLS // max(columns, 1)))
    try:
        import pandas  # noqa: F401, PLC0415 - optional
    except ImportError:
        return _csv_chunks_stdlib(args.input, rows, args.delimiter, categorical)
    return _csv_chunks_pandas(args.input, rows, args.delimiter, categorical)


def _check_options(args: argparse.Namespace, limits: ProfileLimits) -> None:
    if args.chunk_size < 1:
        raise _InputError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if args.bins < 2:
        raise _InputError(f"--bins must be >= 2, got {args.bins}")
    if args.bins > limits.max_bins:
        raise _InputError(f"--bins {args.bins} is more than the limit of {limits.max_bins} bins per feature "
                          f"(OTEL_MLMON_PROFILE_MAX_BINS)")  # fmt: skip
    if args.top_k < 1:
        raise _InputError(f"--top-k must be >= 1, got {args.top_k}")
    if args.top_k > limits.max_categories:
        raise _InputError(f"--top-k {args.top_k} is more than the limit of {limits.max_categories} categories "
                          f"per feature (OTEL_MLMON_PROFILE_MAX_CATEGORIES)")  # fmt: skip


# --------------------------------------------------------------------------- the command
def _build(args: argparse.Namespace) -> tuple[Any, int]:
    if not os.path.exists(args.input):
        raise _InputError(f"no such file: {args.input}")
    limits = getattr(args, "limits", None) or DEFAULT_LIMITS
    _check_options(args, limits)
    categorical = _split(args.categorical)
    builder: ProfileBuilder | None = None
    chunks = 0
    for columns in _chunks(args, categorical, limits):
        if not columns or not len(next(iter(columns.values()))):
            continue  # a header without rows (pandas yields one empty chunk)
        for name in (args.target, args.prediction):
            if name and name not in columns:
                raise _InputError(f"column {name!r} not found; columns are {', '.join(columns)}")
        y = columns.pop(args.target) if args.target else None
        predictions = columns.pop(args.prediction) if args.prediction else None
        if builder is None:
            unknown = [c for c in categorical if c not in columns]
            if unknown:
                raise _InputError(f"--categorical names unknown column(s): {', '.join(unknown)}")
            try:
                builder = ProfileBuilder(n_bins=args.bins, top_k=args.top_k, categorical=categorical or None,
                                         limits=limits)  # fmt: skip
            except ValueError as exc:
                raise _InputError(str(exc)) from None
        builder.update(columns, y=y, predictions=predictions)
        chunks += 1
    if builder is None:
        raise _InputError(f"{args.input} has no rows")
    return builder.finish(), chunks


def profile_command(args: argparse.Namespace) -> int:
    """Run ``otel-mlmon profile`` for parsed ``args``; returns the exit status."""
    try:
        profile, chunks = _build(args)
        profile.save(args.output)
    except (_InputError, OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        print(f"otel-mlmon profile: error: {exc}", file=sys.stderr)
        return 2
    kinds = [f.kind for f in profile.features]
    size = os.path.getsize(args.output)
    print(f"wrote {args.output} ({size / 1024:.1f} KiB): {profile.rows} rows in {chunks} chunk(s), "
          f"{len(kinds)} features ({kinds.count('numeric')} numeric, {kinds.count('categorical')} categorical)"
          f"{', target' if profile.target is not None else ''}{', output' if profile.output is not None else ''}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-mlmon")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_profile_parser(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
