"""Process CPU and memory and GPU memory, read at collection time (nothing on the hot path).

Registered once per meter provider, whichever instrumentor comes first. GPU figures are read
only when PyTorch is already imported and has initialised CUDA: collecting never imports
torch nor creates a CUDA context.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from typing import Any, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_mlmon import semconv

_registered: weakref.WeakSet = weakref.WeakSet()
_registered_global = False
_lock = threading.Lock()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _memory() -> tuple[int, int] | None:
    """(resident, virtual) bytes of this process, or None where /proc is not available."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            virtual_pages, resident_pages = (int(x) for x in fh.read().split()[:2])
    except (OSError, ValueError):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    return resident_pages * page, virtual_pages * page


MIN_INTERVAL_S = 1.0


class ProcessMetrics:
    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._last = (time.monotonic(), os.times())
        self._utilization: tuple[float, float] | None = None
        self._cpus = _cpu_count()
        s = semconv
        meter.create_observable_counter(s.PROCESS_CPU_TIME.name, [self._cpu_time], unit=s.PROCESS_CPU_TIME.unit,
                                        description=s.PROCESS_CPU_TIME.description)  # fmt: skip
        meter.create_observable_gauge(s.PROCESS_CPU_UTILIZATION.name, [self._cpu_utilization],
                                      unit=s.PROCESS_CPU_UTILIZATION.unit,
                                      description=s.PROCESS_CPU_UTILIZATION.description)  # fmt: skip
        meter.create_observable_up_down_counter(s.PROCESS_MEMORY_USAGE.name, [self._rss],
                                                unit=s.PROCESS_MEMORY_USAGE.unit,
                                                description=s.PROCESS_MEMORY_USAGE.description)  # fmt: skip
        meter.create_observable_up_down_counter(s.PROCESS_MEMORY_VIRTUAL.name, [self._virtual],
                                                unit=s.PROCESS_MEMORY_VIRTUAL.unit,
                                                description=s.PROCESS_MEMORY_VIRTUAL.description)  # fmt: skip

    @staticmethod
    def _cpu_time(options: CallbackOptions) -> Iterable[Observation]:
        times = os.times()
        return [Observation(times.user, {semconv.CPU_MODE: "user"}),
                Observation(times.system, {semconv.CPU_MODE: "system"})]  # fmt: skip

    def _cpu_utilization(self, options: CallbackOptions) -> Iterable[Observation]:
        """CPU time over the interval since the previous value, at least MIN_INTERVAL_S long
        (``os.times()`` counts in clock ticks of 10 ms: shorter intervals would be mostly
        rounding); a collection sooner than that repeats the previous value."""
        now, times = time.monotonic(), os.times()
        with self._lock:
            then, before = self._last
            cached = self._utilization
            if cached is not None and now - then < MIN_INTERVAL_S:
                user, system = cached
            else:
                elapsed = (now - then) * self._cpus
                if elapsed <= 0:
                    return []
                user = min(max((times.user - before.user) / elapsed, 0.0), 1.0)
                system = min(max((times.system - before.system) / elapsed, 0.0), 1.0)
                self._last, self._utilization = (now, times), (user, system)
        return [Observation(user, {semconv.CPU_MODE: "user"}), Observation(system, {semconv.CPU_MODE: "system"})]

    @staticmethod
    def _rss(options: CallbackOptions) -> Iterable[Observation]:
        memory = _memory()
        return [] if memory is None else [Observation(memory[0])]

    @staticmethod
    def _virtual(options: CallbackOptions) -> Iterable[Observation]:
        memory = _memory()
        return [] if memory is None else [Observation(memory[1])]


class GpuMemory:
    """GPU memory per CUDA device through ``torch.cuda`` (or any object with its API)."""

    def __init__(self, meter: Meter, cuda: Any = None) -> None:
        self._cuda = cuda
        self._limits: dict[int, int] = {}
        s = semconv
        for spec, callback in ((s.GPU_MEMORY_USAGE, self._allocated), (s.GPU_MEMORY_RESERVED, self._reserved),
                               (s.GPU_MEMORY_LIMIT, self._limit)):  # fmt: skip
            meter.create_observable_up_down_counter(spec.name, [callback], unit=spec.unit,
                                                    description=spec.description)  # fmt: skip

    def cuda(self) -> Any:
        """``torch.cuda`` if torch is imported and CUDA initialised, else None."""
        cuda = self._cuda
        if cuda is None:
            torch = sys.modules.get("torch")
            cuda = getattr(torch, "cuda", None)
        try:
            if cuda is None or not cuda.is_available() or not cuda.is_initialized():
                return None
        except Exception:  # noqa: BLE001 - a broken CUDA install must not break collection
            return None
        return cuda

    def _per_device(self, read) -> list[Observation]:
        cuda = self.cuda()
        if cuda is None:
            return []
        out = []
        for index in range(cuda.device_count()):
            try:
                out.append(Observation(int(read(cuda, index)), {semconv.HW_ID: f"cuda:{index}"}))
            except Exception:  # noqa: BLE001, S112 - one failing device does not hide the others
                continue
        return out

    def _allocated(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_device(lambda cuda, i: cuda.memory_allocated(i))

    def _reserved(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_device(lambda cuda, i: cuda.memory_reserved(i))

    def _limit(self, options: CallbackOptions) -> Iterable[Observation]:
        def total(cuda, index):
            if index not in self._limits:
                self._limits[index] = cuda.get_device_properties(index).total_memory
            return self._limits[index]

        return self._per_device(total)


def register_resource_metrics(meter: Meter, meter_provider: Any, settings: Any) -> tuple | None:
    """Register the resource metrics once per meter provider (``None``: the global one)."""
    global _registered_global
    if not settings.resource_metrics:
        return None
    with _lock:
        if meter_provider is None:
            if _registered_global:
                return None
            _registered_global = True
        else:
            try:
                if meter_provider in _registered:
                    return None
                _registered.add(meter_provider)
            except TypeError:  # not weak-referenceable: register, at worst twice
                pass
    return ProcessMetrics(meter), GpuMemory(meter)
