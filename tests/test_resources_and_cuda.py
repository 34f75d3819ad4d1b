"""Resource metrics, and the CUDA code paths exercised without a GPU.

The CUDA paths take ``torch.cuda``'s API as an object, so a stand-in with the same methods
drives them here; the telemetry is still read through the real SDK and InMemoryMetricReader.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from helpers import metric_points
from otel_mlmon import semconv
from otel_mlmon._internal.resources import GpuMemory


def points(reader, name):
    return [point[1:] for point in metric_points(reader, name)]


def test_process_metrics_follow_semantic_conventions(telemetry):
    burn = sum(i * i for i in range(200_000))  # some CPU time
    assert burn > 0
    rss = telemetry.points(semconv.PROCESS_MEMORY_USAGE.name)
    assert len(rss) == 1 and rss[0][1] == "By"
    with open("/proc/self/statm", encoding="ascii") as fh:
        resident = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert 0.5 * resident < rss[0][3].value < 2 * resident
    cpu = {a[semconv.CPU_MODE]: p.value for _, unit, a, p in telemetry.points(semconv.PROCESS_CPU_TIME.name)}
    assert set(cpu) == {"user", "system"} and cpu["user"] > 0
    util = telemetry.points(semconv.PROCESS_CPU_UTILIZATION.name)
    assert {a[semconv.CPU_MODE] for _, _, a, _ in util} == {"user", "system"}
    assert all(0 <= p.value <= 1.0 for *_, p in util)
    again = telemetry.points(semconv.PROCESS_CPU_UTILIZATION.name)
    # a collection within a second repeats the value (10 ms CPU ticks over a shorter interval
    # would be mostly rounding)
    assert sorted(p.value for *_, p in again) == sorted(p.value for *_, p in util)


def test_resource_metrics_can_be_turned_off(make_telemetry):
    session = make_telemetry(resource_metrics=False)
    assert not session.points(semconv.PROCESS_MEMORY_USAGE.name)


class FakeCuda:
    """The subset of ``torch.cuda`` that otel-mlmon calls, for two devices."""

    def __init__(self, initialized=True):
        self.initialized = initialized
        self.synchronized = 0

    def is_available(self):
        return True

    def is_initialized(self):
        return self.initialized

    def device_count(self):
        return 2

    def memory_allocated(self, index):
        return 1000 * (index + 1)

    def memory_reserved(self, index):
        return 4000 * (index + 1)

    def get_device_properties(self, index):
        return SimpleNamespace(total_memory=16 * 2**30)

    def synchronize(self):
        self.synchronized += 1

    class Event:
        clock = [0.0]

        def __init__(self, enable_timing=False):
            assert enable_timing
            self.at = None
            self.synced = False

        def record(self):
            FakeCuda.Event.clock[0] += 12.5  # 12.5 ms of "GPU time" between two records
            self.at = FakeCuda.Event.clock[0]

        def synchronize(self):
            self.synced = True

        def elapsed_time(self, end):
            assert end.synced, "elapsed_time before the end event completed"
            return end.at - self.at


def test_gpu_memory_per_device_with_semantic_convention_names():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    GpuMemory(provider.get_meter("t"), cuda=FakeCuda())
    usage = {a[semconv.HW_ID]: p.value for _, a, p in points(reader, semconv.GPU_MEMORY_USAGE.name)}
    reserved = {a[semconv.HW_ID]: p.value for _, a, p in points(reader, semconv.GPU_MEMORY_RESERVED.name)}
    limit = {a[semconv.HW_ID]: p.value for _, a, p in points(reader, semconv.GPU_MEMORY_LIMIT.name)}
    assert usage == {"cuda:0": 1000, "cuda:1": 2000}
    assert reserved == {"cuda:0": 4000, "cuda:1": 8000}
    assert limit == {"cuda:0": 16 * 2**30, "cuda:1": 16 * 2**30}
    assert {unit for unit, _, _ in points(reader, semconv.GPU_MEMORY_USAGE.name)} == {"By"}
    provider.shutdown()


def test_gpu_memory_is_silent_until_cuda_is_initialised_and_without_torch_cuda():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    GpuMemory(provider.get_meter("t"), cuda=FakeCuda(initialized=False))
    assert points(reader, semconv.GPU_MEMORY_USAGE.name) == []
    provider.shutdown()


@pytest.mark.torch
def test_gpu_memory_on_this_cpu_only_machine_reports_nothing():
    import torch

    assert not torch.cuda.is_available()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    GpuMemory(provider.get_meter("t"))
    assert points(reader, semconv.GPU_MEMORY_USAGE.name) == []
    provider.shutdown()


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["events", "sync", "none"])
def test_cuda_timing_modes_through_the_real_wrapper(make_telemetry, mode):
    import torch

    from otel_mlmon import TorchInstrumentor

    class PretendCudaTensor(torch.Tensor):
        """A CPU tensor that says it lives on a GPU, to take the CUDA branch."""

        @property
        def is_cuda(self):
            return True

    session = make_telemetry()
    cuda = FakeCuda()
    instrumentor = TorchInstrumentor()
    instrumentor.instrument(tracer_provider=session.tracer_provider, meter_provider=session.meter_provider,
                            cuda_timing=mode, cuda_module=cuda)  # fmt: skip
    try:
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 2).eval()
        x = torch.randn(3, 4).as_subclass(PretendCudaTensor)
        expected = torch.nn.functional.linear(x.as_subclass(torch.Tensor), net.weight, net.bias)
        assert torch.equal(net(x).as_subclass(torch.Tensor), expected)
        (_, _, _, duration), = session.points(semconv.INFERENCE_DURATION.name)
        assert duration.count == 1
        if mode == "events":
            assert duration.sum == pytest.approx(0.0125)  # GPU time from the events
            assert cuda.synchronized == 0  # the caller never waited
        elif mode == "sync":
            assert cuda.synchronized == 1
            assert duration.sum < 0.0125
        else:
            assert cuda.synchronized == 0 and duration.sum < 0.0125
        assert not session.points(semconv.MONITOR_ERROR_COUNT.name)
    finally:
        instrumentor.uninstrument()
