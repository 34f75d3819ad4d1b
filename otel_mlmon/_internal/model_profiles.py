"""A model's reference profile: built and attached when the model is fitted
(:func:`capture_profile`, not per call) and loaded off the caller's thread after its first call
(:class:`ProfileLoad`: the profile attached at fit, else ``{profile_dir}/{name}.json``).

A model's first call only notes where its profile is (:func:`profile_source`: one attribute
read, no I/O, no parsing) and queues a :class:`ProfileLoad`; a background thread
(``otel-mlmon-profile-load``, at most four) reads, checks against the size limits
(:class:`~otel_mlmon.drift.profile_limits.ProfileLimits`, ``OTEL_MLMON_PROFILE_MAX_*``), parses
the profile and builds its drift monitor. ``predict`` never waits for it:
the recording worker profiles a model's samples once its load is done, waiting for a load at
most :data:`LOAD_WAIT_S` in all (so a small profile loaded right after the first call misses no
sample), and drops the samples that arrive before a slower load is done. A failed load (a
profile beyond the limits, malformed, unreadable) leaves the model monitored for data quality
only; it is counted in ``ml.monitor.error.count`` and logged once by the worker.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Callable

from otel_mlmon._internal.samples import strided

PROFILE_MAX_ROWS = 200_000  # rows of the training data profiled at fit (evenly strided)
PROFILE_PREDICT_ROWS = 10_000  # training rows predicted at fit for the output reference
LOAD_WAIT_S = 1.0  # the recording worker waits at most this long in all for one load
_MAX_QUEUED = 256  # loads waiting for a loader thread; beyond, a load fails at once
_THREADS = 4  # loader threads at most
_CACHED = 32  # parsed profiles kept by digest (a model deserialised per request is parsed once)


def limits_of(settings: Any) -> Any:
    """The profile limits of ``settings`` (``OTEL_MLMON_PROFILE_MAX_*``)."""
    from otel_mlmon.drift.profile_limits import ProfileLimits  # noqa: PLC0415

    return ProfileLimits(max_bytes=settings.profile_max_bytes, max_features=settings.profile_max_features,
                         max_bins=settings.profile_max_bins, max_categories=settings.profile_max_categories,
                         max_value_length=settings.profile_max_value_length)  # fmt: skip


def profile_source(model: Any, name: str, profile_dir: str | None) -> tuple[str, Any] | None:
    """Where the model's profile is, without reading it: ``("text", json)`` for the profile
    attached at fit, ``("file", path)`` for ``{profile_dir}/{name}.json`` (which may not exist),
    else None. O(1), no I/O: safe on the caller's thread."""
    target = getattr(model, "_orig_mod", model)
    text = getattr(target, "_otel_mlmon_profile", None)
    if isinstance(text, str):
        return ("text", text)
    if profile_dir:
        return ("file", Path(profile_dir) / f"{name}.json")
    return None


_parsed: OrderedDict[tuple[str, Any], Any] = OrderedDict()


def read_profile(source: tuple[str, Any], limits: Any) -> tuple[Any, str | None]:
    """(profile, digest of its text) from a :func:`profile_source`; (None, None) when the file
    does not exist. ``ValueError`` beyond ``limits`` or for a malformed profile."""
    from otel_mlmon.drift import ReferenceProfile  # noqa: PLC0415
    from otel_mlmon.drift.profile_limits import check_text, read_text  # noqa: PLC0415

    kind, where = source
    if kind == "file":
        if not os.path.exists(where) or os.path.isdir(where):
            return None, None
        text = read_text(where, limits)
    else:
        text = where
        check_text(text, limits)  # before the digest: a huge text is not even hashed
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
    profile = _parsed.get((digest, limits))
    if profile is None:
        profile = ReferenceProfile.from_json(text, limits=limits)
        _parsed[(digest, limits)] = profile
        while len(_parsed) > _CACHED:
            _parsed.popitem(last=False)
    return profile, digest


class ProfileLoad:
    """One model's profile being loaded on the loader thread: read, checked, parsed, and its
    monitor built by ``build(profile, digest)`` (which may return the model's current monitor
    when its profile has the same digest). ``done`` is set when ``result`` (monitor, digest) or
    ``error`` is ready; ``waited`` is the time the recording worker has waited for it."""

    __slots__ = ("source", "limits", "build", "done", "result", "error", "waited")

    def __init__(self, source: tuple[str, Any], limits: Any, build: Callable[[Any, str | None], Any]) -> None:
        self.source, self.limits, self.build = source, limits, build
        self.done = threading.Event()
        self.result: tuple[Any, str | None] | None = None
        self.error: BaseException | None = None
        self.waited = 0.0

    def run(self) -> None:
        try:
            profile, digest = read_profile(self.source, self.limits)
            self.result = (self.build(profile, digest), digest)
        except Exception as exc:  # noqa: BLE001 - reported by the worker (ml.monitor.error.count)
            self.error = exc
        finally:
            self.source = None  # type: ignore[assignment] - the text can be large
            self.done.set()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.done.set()


class _Loader:
    """The loads waiting for a background thread, and those threads: at most
    :data:`_THREADS`, started when a load is queued and fewer are running, each ending when the
    queue is empty (so one load stuck on slow storage does not hold up every other model's).
    Rebuilt after ``fork``: the parent's threads are gone; their unfinished loads are queued again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: deque[ProfileLoad] = deque()
        self.running: set[ProfileLoad | None] = set()  # a thread's current load (None between loads)
        self.threads = 0

    def submit(self, load: ProfileLoad) -> None:
        with self.lock:
            if len(self.queue) >= _MAX_QUEUED:
                load.fail(RuntimeError(f"more than {_MAX_QUEUED} reference profiles waiting to load"))
                return
            self.queue.append(load)
            if self.threads < _THREADS:
                self.threads += 1
                threading.Thread(target=self._run, name="otel-mlmon-profile-load", daemon=True).start()

    def _run(self) -> None:
        load = None
        while True:
            with self.lock:
                self.running.discard(load)
                if not self.queue:
                    self.threads -= 1
                    return
                load = self.queue.popleft()
                self.running.add(load)
            load.run()

    def after_fork(self) -> None:
        unfinished = [load for load in self.running if load is not None and not load.done.is_set()]
        self.lock = threading.Lock()
        self.running, self.threads = set(), 0
        self.queue.extendleft(load for load in unfinished if load.source is not None)
        if self.queue:
            self.submit(self.queue.popleft())


_LOADER = _Loader()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _LOADER.after_fork())


def start_load(load: ProfileLoad) -> ProfileLoad:
    """Queue ``load`` for the background thread; returns it. Never blocks, never raises."""
    _LOADER.submit(load)
    return load


def capture_profile(model: Any, X: Any, y: Any, run_predict: Callable[[Any], Any], limits: Any = None) -> None:
    """Build the reference profile of a model just fitted and attach it (at fit, not per call).
    Training data wider than the profile limit's features gets none (``ValueError``)."""
    from otel_mlmon.drift import attach_profile, build_profile  # noqa: PLC0415
    from otel_mlmon.drift.profile_limits import DEFAULT_LIMITS  # noqa: PLC0415

    limits = DEFAULT_LIMITS if limits is None else limits
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        limits.check("max_features", int(shape[1]), f"would have {shape[1]} features")
    Xs = strided(X, PROFILE_MAX_ROWS)
    ys = None if y is None or not hasattr(y, "__len__") or len(y) != _rows(X) else strided(y, PROFILE_MAX_ROWS)
    predictions = None
    try:
        predictions = run_predict(strided(X, PROFILE_PREDICT_ROWS))
    except Exception:  # noqa: BLE001 - some estimators cannot predict their training input
        predictions = None
    profile = build_profile(Xs, y=ys, predictions=predictions)
    attach_profile(model, profile)


def _rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    return shape[0] if shape else len(X)
