"""PyTorch instrumentation: one span and the inference metrics per top-level module call.

Usage::

    from otel_mlmon.instrumentation.torch import TorchInstrumentor   # or otel_mlmon.TorchInstrumentor
    TorchInstrumentor().instrument(tracer_provider=..., meter_provider=...)

or with no code change: ``opentelemetry-instrument python app.py``.

``torch.nn.Module.__call__`` is wrapped once. A module called inside another module's forward
is nested and passes straight through, so a ``Sequential`` or a custom module calling its
submodules gives one span. By default only inference is traced: a module in eval mode, or a
call under ``torch.no_grad()`` / ``torch.inference_mode()``; a training forward (train mode
with gradients enabled) and everything inside it passes through, unless ``trace_training``.
While ``torch.compile`` (dynamo) or ``torch.jit.trace`` is tracing, the wrapper is a pure
pass-through, so neither sees OpenTelemetry code. Importing this module does not import
torch; ``instrument()`` waits for torch to be imported if it is not yet.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Collection

import wrapt
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from otel_mlmon import semconv
from otel_mlmon._internal.config import Settings
from otel_mlmon._internal.monitor import ACTIVE, INFERENCE, TRAINING, WRAPPED_MARK, Holder, Monitor, is_wrapper
from otel_mlmon._internal.recorder import COPY_LIMIT
from otel_mlmon._internal.state import OUT_LOGITS, OUT_VALUES
from otel_mlmon._internal.model_info import get_model_info
from otel_mlmon.package import _instruments_torch

FRAMEWORK = "torch"
OPERATION = "forward"


class _TorchAdapter:
    name = FRAMEWORK

    def __init__(self, torch: Any) -> None:
        self._tensor = torch.Tensor
        self._dtype_names: dict[Any, str] = {}

    @staticmethod
    def describe(model: Any, operation: str) -> tuple[str | None, dict[str, Any]]:
        task = get_model_info(model).task
        mode = OUT_LOGITS if task == "classification" else OUT_VALUES if task == "regression" else None
        count = sum(p.numel() for p in model.parameters())  # once per module, not per call
        return mode, {semconv.ML_MODEL_PARAMETER_COUNT: int(count)}

    @staticmethod
    def may_start_spans(model: Any) -> bool:
        """A module's forward computes tensors: its span is made by the recording worker after the
        call (``OTEL_MLMON_CURRENT_SPAN=always`` for a forward that starts spans of its own)."""
        return False

    def first_tensor(self, args: tuple, kwargs: dict) -> Any:
        tensor_type = self._tensor
        for value in args:
            if isinstance(value, tensor_type):
                return value
        for value in kwargs.values():
            if isinstance(value, tensor_type):
                return value
        return None

    def inputs(self, args: tuple, kwargs: dict, attributes: dict[str, Any]) -> int | None:
        tensor = self.first_tensor(args, kwargs)
        if tensor is None:
            return None
        shape = tuple(tensor.shape)
        attributes[semconv.ML_INPUT_SHAPE] = shape
        dtype = tensor.dtype
        name = self._dtype_names.get(dtype)
        if name is None:
            name = self._dtype_names[dtype] = str(dtype).removeprefix("torch.")
        attributes[semconv.ML_INPUT_DTYPE] = name
        attributes[semconv.ML_INPUT_DEVICE] = "cpu" if not tensor.is_cuda else str(tensor.device)
        if not shape:
            return None
        attributes[semconv.ML_BATCH_SIZE] = shape[0]
        if len(shape) == 2:
            attributes[semconv.ML_INPUT_FEATURE_COUNT] = shape[1]
        return shape[0]

    def snapshot(self, result: Any, mode: str) -> Any:
        if not isinstance(result, self._tensor) or result.ndim == 0:
            return None
        out = result.detach()
        return out.clone() if out.numel() <= COPY_LIMIT else out


class CudaTiming:
    """Latency of asynchronous CUDA work, per ``OTEL_MLMON_CUDA_TIMING``.

    ``cuda`` is ``torch.cuda`` (or any object with ``Event`` and ``synchronize``), so that
    the logic is testable without a GPU.
    """

    def __init__(self, cuda: Any, mode: str) -> None:
        self.cuda = cuda
        self.mode = mode

    def begin(self) -> Any:
        if self.mode != "events":
            return None
        start = self.cuda.Event(enable_timing=True)
        start.record()
        return start

    def end(self, start_event: Any, cpu_duration: float, started: float, clock) -> Any:
        """The call's duration: seconds, or an :class:`EventTiming` the recorder resolves."""
        if self.mode == "sync":
            self.cuda.synchronize()
            return clock() - started
        if self.mode == "events" and start_event is not None:
            end = self.cuda.Event(enable_timing=True)
            end.record()
            return EventTiming(start_event, end)
        return cpu_duration


class EventTiming:
    """A pair of recorded CUDA events; ``seconds()`` blocks until the end event completed."""

    __slots__ = ("start", "end")

    def __init__(self, start: Any, end: Any) -> None:
        self.start, self.end = start, end

    def seconds(self) -> float:
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1000.0


def module_call_wrapper(original: Any, holder: Holder, torch: Any) -> Any:
    is_compiling = torch.compiler.is_compiling
    tracing_state = torch._C._get_tracing_state
    grad_enabled = torch.is_grad_enabled

    @functools.wraps(original)
    def __call__(self, *args, **kwargs):  # noqa: N807
        monitor = holder.monitor
        # Checked first: under dynamo or jit tracing nothing else of ours may run.
        if monitor is None or is_compiling() or tracing_state() is not None:
            return original(self, *args, **kwargs)
        active = ACTIVE.get()
        if active is not None:
            if active is INFERENCE and monitor.detail_spans:
                return monitor.detail(original, OPERATION, self, args, kwargs)
            return original(self, *args, **kwargs)
        if get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return original(self, *args, **kwargs)
        if self.training and grad_enabled() and not monitor.settings.trace_training:
            token = ACTIVE.set(TRAINING)
            try:
                return original(self, *args, **kwargs)
            finally:
                ACTIVE.reset(token)
        gpu = None
        if holder.cuda_timing is not None and args and getattr(args[0], "is_cuda", False):
            gpu = holder.cuda_timing
        return monitor.traced_call(original, OPERATION, self, args, kwargs, gpu)

    setattr(__call__, WRAPPED_MARK, True)
    return __call__


class _TorchHolder(Holder):
    __slots__ = ("cuda_timing",)

    def __init__(self) -> None:
        super().__init__()
        self.cuda_timing: CudaTiming | None = None


class TorchInstrumentor(BaseInstrumentor):
    """Traces and measures inference of every ``torch.nn.Module``.

    Keyword arguments of :meth:`instrument`, as for :class:`otel_mlmon.SklearnInstrumentor`,
    plus ``trace_training`` and ``cuda_timing`` (see ``docs/configuration.md``).
    """

    def __init__(self) -> None:
        if not hasattr(self, "_holder"):
            self._holder = _TorchHolder()
            self._patched: tuple[Any, Any, Any] | None = None
            self._active = False
            self._settings: Settings | None = None
            self._cuda: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments_torch

    def _instrument(self, **kwargs: Any) -> None:
        self._settings = Settings.resolve(kwargs)
        self._providers = (kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._cuda = kwargs.get("cuda_module")  # testing hook: an object with torch.cuda's API
        self._active = True
        if "torch" in sys.modules and hasattr(sys.modules["torch"], "nn"):
            self._install(sys.modules["torch"])
        else:
            wrapt.register_post_import_hook(self._install, "torch")

    def _install(self, torch: Any) -> None:
        if not self._active or self._patched is not None:
            return
        settings = self._settings
        tracer_provider, meter_provider = self._providers
        self._holder.monitor = Monitor(_TorchAdapter(torch), settings, tracer_provider, meter_provider)
        cuda = self._cuda if self._cuda is not None else torch.cuda
        self._holder.cuda_timing = None if settings.cuda_timing == "none" else CudaTiming(cuda, settings.cuda_timing)
        module = torch.nn.Module
        original = module.__dict__["__call__"]
        if is_wrapper(original):
            return
        wrapper = module_call_wrapper(original, self._holder, torch)
        module.__call__ = wrapper
        self._patched = (module, original, wrapper)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._active = False
        monitor, self._holder.monitor = self._holder.monitor, None
        if self._patched is not None:
            module, original, wrapper = self._patched
            if module.__dict__.get("__call__") is wrapper:
                module.__call__ = original
            self._patched = None
        if monitor is not None:
            monitor.shutdown()

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """End the spans queued so far (after judging their calls) and record everything queued
        into the metric instruments (including calls held for their prediction ids: from here
        on, ids read for earlier calls are not stored)."""
        monitor = self._holder.monitor
        return True if monitor is None else monitor.force_flush(timeout_millis)
