"""Fork and exit: what otel-mlmon does around ``os.fork()`` and at interpreter exit, in one place
and in one order (a leaf module: it imports nothing from ``otel_mlmon``; the objects concerned
register themselves).

**Fork.** ``os.fork()`` copies the calling thread only. A lock that another thread holds at that
moment stays held for ever in the child, and an SQLite connection must not be carried into the
child. So, on the forking thread just before the fork (``before``), every registered lock is
acquired, in rank order: this waits until no otel-mlmon thread is inside the critical sections
they guard (the recording worker inside an OpenTelemetry SDK instrument call, a collection
running our observable callbacks, an SQLite transaction). ``after_in_parent`` releases them;
``after_in_child`` releases them too and then runs the child hooks (highest rank first, so the
recording worker, rank ``RECORDER``, is started last, once every lock it uses is new): fresh
locks, SQLite reopened by the child, worker threads started anew, queues emptied (the parent
delivers what it had queued).

Lock order. Locks are acquired by ascending rank, the order in which the code nests them; no
thread holding one of them ever waits for one of a lower rank, so ``before`` cannot deadlock
with the threads it waits for:

====================  ======================================================================
``SDK_READER`` -10    a metric reader's lock (``InMemoryMetricReader`` takes it, then the next)
``SDK_COLLECTION`` 0  the MeterProvider's collection lock: a collection (periodic reader,
                      Prometheus scrape, ``get_metrics_data``) runs our observable callbacks,
                      which take the locks below; taken first, so ``before`` waits for a
                      collection in progress instead of blocking it half-way
``ALERTS`` 10         an alert dispatcher's delivery (a callback sink may record labels)
``RECORDER`` 20       the recorder's drain lock: draining records into SDK instruments (whose
                      own locks the SDK does not rebuild after fork) and feeds the quality hub
``HUB_FLUSH`` 30      the quality hub's flush lock (writes and joins start under it)
``STORE`` 40          the label store's lock: every SQLite transaction runs under it
``HUB`` 50            the quality hub's state lock (a join takes it inside the store's lock)
``LEAF`` 60           locks of short sections that take no other lock, on the application's
                      threads too: the per-call detectors, the span processor's state, the
                      data plane's per-model state (acquired last, so nothing waits on them)
====================  ======================================================================

Each acquisition is bounded: all of them share ``FORK_TIMEOUT_S``; a lock not acquired in time
(a thread stuck, or the forking thread itself holding it) is skipped, logged once after the
fork, and its owner's child hook is told (``quiesced=False``), so a fork is never hung by
otel-mlmon. Locks the SDK takes on threads that are not otel-mlmon's (an application thread
recording its own metrics at the moment of fork) are outside this.

**Exit.** At interpreter exit (``atexit``, registered when the first object registers, so it
runs before the SDK providers' own exit shutdown registered earlier), the exit hooks run by
ascending rank (the recorder drains its queue into the hub, then the hub writes its buffer to
the label store) on a helper thread joined for at most ``EXIT_TIMEOUT_S``: what was accepted
reaches the disk, and exit is never hung.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Iterable

__all__ = ["ALERTS", "EXIT_TIMEOUT_S", "FORK_TIMEOUT_S", "HUB", "HUB_FLUSH", "LEAF", "RECORDER", "SDK_COLLECTION",
           "SDK_READER", "STORE", "register", "register_sdk_collection", "run_exit_hooks"]  # fmt: skip

_logger = logging.getLogger("otel_mlmon")

SDK_READER = -10
SDK_COLLECTION = 0
ALERTS = 10
RECORDER = 20
HUB_FLUSH = 30
STORE = 40
HUB = 50
LEAF = 60

FORK_TIMEOUT_S = 5.0
EXIT_TIMEOUT_S = 5.0

# (rank, sequence, weak reference to the owner, lock attribute or None, child hook, exit hook)
_entries: list[tuple[int, int, weakref.ref, Any, Callable | None, Callable | None]] = []
_sequence = itertools.count()
_registry_lock = threading.Lock()
_held: list[tuple[int, Any]] = []  # (id of the owner, lock) acquired in ``before``
_missed: list[tuple[int, str]] = []  # (id of the owner, lock) not acquired in ``before``
_exit_registered = False
_warned = False


def register(owner: Any, rank: int, lock: str | Callable[[Any], Iterable[Any]] | None = None,
             child: Callable[[Any, bool], Any] | None = None,
             exit: Callable[[Any], Any] | None = None) -> None:  # noqa: A002 # fmt: skip
    """Take part in fork and exit; ``owner`` is held weakly (a dead owner is forgotten).

    ``lock``: the name of ``owner``'s lock attribute held across fork (read at fork time, so
    a lock the owner replaces is followed), or ``lock(owner)`` returning the locks to hold.
    ``child(owner, quiesced)``: run in a forked child; ``quiesced`` is ``False`` when one of
    ``owner``'s locks could not be acquired before the fork. ``exit(owner)``: run at
    interpreter exit. Never raises.
    """
    global _exit_registered
    try:
        with _registry_lock:
            _entries[:] = [e for e in _entries if e[2]() is not None]
            _entries.append((rank, next(_sequence), weakref.ref(owner), lock, child, exit))
            if exit is not None and not _exit_registered:
                _exit_registered = True
                atexit.register(run_exit_hooks)
    except Exception:  # noqa: BLE001 - e.g. an owner that cannot be weakly referenced
        _logger.debug("otel-mlmon: %r does not take part in fork and exit handling", owner, exc_info=True)


def _is_lock(lock: Any) -> bool:
    return callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))


def register_sdk_collection(meter: Any) -> None:
    """Hold the collection locks of ``meter``'s MeterProvider across fork: its readers' own
    lock (``InMemoryMetricReader.get_metrics_data`` holds it around a collection), then the
    measurement consumer's. SDK internals, looked up defensively: what is not found is not
    registered. The periodic reader's export lock is not held: an export can take the
    exporter's whole timeout, and no otel-mlmon code runs under it."""
    meter = getattr(meter, "_real_meter", None) or meter  # the API's proxy meter
    consumer = getattr(meter, "_measurement_consumer", None)
    owners = [(reader, SDK_READER) for reader in getattr(consumer, "_reader_storages", {})]
    owners.append((consumer, SDK_COLLECTION))
    for owner, rank in owners:
        if not _is_lock(getattr(owner, "_lock", None)):
            continue
        with _registry_lock:
            if any(e[2]() is owner and e[3] == "_lock" for e in _entries):
                continue
        register(owner, rank, lock="_lock")


def _live(entries: list) -> list[tuple[int, int, Any, Any, Callable | None, Callable | None]]:
    out = []
    for rank, seq, ref, lock, child, exit_hook in entries:
        owner = ref()
        if owner is not None:
            out.append((rank, seq, owner, lock, child, exit_hook))
    return sorted(out, key=lambda e: (e[0], e[1]))


# ---------------------------------------------------------------------------------- fork
def _before() -> None:
    _held.clear()
    _missed.clear()
    try:
        _quiesce()
    except Exception:  # noqa: BLE001 - a fork hook must not raise; what is held is released after
        _missed.append((0, "otel-mlmon's locks"))


def _quiesce() -> None:
    if not _registry_lock.acquire(timeout=FORK_TIMEOUT_S):
        _missed.append((0, "registry"))
        return
    _held.append((0, _registry_lock))
    deadline = time.monotonic() + FORK_TIMEOUT_S
    for _, _, owner, name, _, _ in _live(_entries):
        if name is None:
            continue
        try:
            locks = [getattr(owner, name, None)] if isinstance(name, str) else list(name(owner))
        except Exception:  # noqa: BLE001
            locks = []
        for lock in locks:
            if lock is None or any(lock is held for _, held in _held):
                continue
            try:
                acquired = lock.acquire(True, max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001
                acquired = False
            if acquired:
                _held.append((id(owner), lock))
            else:
                _missed.append((id(owner), f"{type(owner).__name__}.{getattr(name, '__name__', name)}"))


def _release() -> None:
    """Release what ``before`` acquired, newest first."""
    while _held:
        _, lock = _held.pop()
        try:
            lock.release()
        except Exception:  # noqa: BLE001
            pass


def _after_in_parent() -> None:
    global _warned
    _release()
    if _missed and not _warned:
        _warned = True
        _logger.warning("otel-mlmon: before fork, could not wait for %s within %s s; the child may find "
                        "it locked (logged once)", ", ".join(m for _, m in _missed), FORK_TIMEOUT_S)  # fmt: skip


def _after_in_child() -> None:
    global _registry_lock
    missed = {owner for owner, _ in _missed}
    _release()
    _registry_lock = threading.Lock()
    entries = _live(_entries)
    for _, _, owner, _, child, _ in reversed(entries):
        if child is None:
            continue
        try:
            child(owner, id(owner) not in missed and 0 not in missed)
        except Exception:  # noqa: BLE001 - a fork hook must not raise
            _logger.warning("otel-mlmon: rebuilding %s after fork failed", type(owner).__name__, exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child)


# ---------------------------------------------------------------------------------- exit
def _run_exit_hooks_now() -> None:
    with _registry_lock:
        entries = _live(_entries)
    for _, _, owner, _, _, exit_hook in entries:
        if exit_hook is None:
            continue
        try:
            exit_hook(owner)
        except Exception:  # noqa: BLE001
            _logger.debug("otel-mlmon: exit hook of %s failed", type(owner).__name__, exc_info=True)


def run_exit_hooks(timeout_s: float = EXIT_TIMEOUT_S) -> bool:
    """Run the exit hooks (by ascending rank) on a helper thread, waiting ``timeout_s`` at
    most; ``False`` if they did not finish in time. Registered with ``atexit``; never raises."""
    try:
        thread = threading.Thread(target=_run_exit_hooks_now, name="otel-mlmon-exit", daemon=True)
        thread.start()
    except RuntimeError:  # no new threads at this point of the shutdown (Python >= 3.12): inline
        _run_exit_hooks_now()
        return True
    thread.join(timeout_s)
    if thread.is_alive():
        _logger.warning("otel-mlmon: writing pending predictions at exit took over %s s; exiting anyway", timeout_s)
        return False
    return True
