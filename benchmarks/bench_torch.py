"""Per-call overhead of otel-mlmon on a small PyTorch MLP vs the bare call and a hand-written span.

Run:  python benchmarks/bench_torch.py [--rounds 15] [--calls 2000]

Same method as ``bench_overhead.py``: one process, interleaved blocks (bare, hand-written,
otel-mlmon), each block's time including the flush of what it queued, medians over blocks.
The MLP (64 -> 128 -> 128 -> 10) runs in eval mode under ``torch.inference_mode()`` at batch
1 and batch 256, on the CPU, with one intra-op thread so that timings are stable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from time import perf_counter

import torch
from torch import nn

import otel_mlmon
from bench_overhead import make_providers


def run(rounds: int, calls: int, sampler_name: str) -> list[dict]:
    tracer_provider, span_processor, meter_provider = make_providers(sampler_name)
    tracer = tracer_provider.get_tracer("hand-written")
    histogram = meter_provider.get_meter("hand-written").create_histogram("forward.duration", unit="s")
    instrumentor = otel_mlmon.TorchInstrumentor()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    results = []
    for batch in (1, 256):
        x = torch.randn(batch, 64)
        attrs = {"ml.model.name": "bench"}

        def bare():
            with torch.inference_mode():
                for _ in range(calls):
                    model(x)

        def hand_written():
            with torch.inference_mode():
                for _ in range(calls):
                    with tracer.start_as_current_span("forward"):
                        t0 = perf_counter()
                        model(x)
                        histogram.record(perf_counter() - t0, attrs)
            span_processor.force_flush()

        def instrumented():
            with torch.inference_mode():
                for _ in range(calls):
                    model(x)
            instrumentor.force_flush()  # judges the queued calls and ends their spans
            span_processor.force_flush()  # then exports them, inside this block

        times: dict[str, list[float]] = {"bare": [], "hand_written": [], "otel_mlmon": []}
        for round_index in range(rounds + 1):
            for name, body in (("bare", bare), ("hand_written", hand_written), ("otel_mlmon", instrumented)):
                if name == "otel_mlmon":
                    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider,
                                            resource_metrics=False)  # fmt: skip
                t0 = perf_counter()
                body()
                elapsed = (perf_counter() - t0) / calls
                if name == "otel_mlmon":
                    instrumentor.uninstrument()
                if round_index:
                    times[name].append(elapsed)
        med = {k: statistics.median(v) for k, v in times.items()}
        hand, ours = med["hand_written"] - med["bare"], med["otel_mlmon"] - med["bare"]
        results.append({"case": f"MLP forward, batch {batch}", "sampler": sampler_name, "bare_us": med["bare"] * 1e6,
                        "hand_us": hand * 1e6, "ours_us": ours * 1e6, "ratio": ours / hand})  # fmt: skip
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = run(args.rounds, args.calls, "always_on") + run(args.rounds, args.calls, "ratio_0.1")
    print(f"torch {torch.__version__}, otel-mlmon {otel_mlmon.__version__}; {args.rounds} rounds x {args.calls} calls, medians")
    print("| case | sampler | bare µs | hand-written overhead µs | otel-mlmon overhead µs | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['sampler']} | {r['bare_us']:.1f} | {r['hand_us']:.1f} | {r['ours_us']:.1f} | "
              f"{r['ratio']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
