"""What the demo prints: live progress on a terminal or plain lines, and the final table."""

from __future__ import annotations

import math
import shutil
from typing import TextIO

from otel_mlmon._demo_incidents import View

__all__ = ["Console", "fmt", "print_outcome"]


class Console:
    """Live progress on a terminal; plain lines (events, and a status line every 10 %) otherwise."""

    def __init__(self, stream: TextIO, duration: float) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.duration = duration
        self._status = ""
        self._next_plain = 0.1

    def event(self, t: float, text: str) -> None:
        line = f"[{t:6.2f}s] {text}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + "\n" + self._status)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def status(self, t: float, view: View, alerts: int) -> None:
        fraction = min(max(t / self.duration, 0.0), 1.0)
        p50 = "-" if view.p50_s is None else f"{view.p50_s * 1e3:.2f}"
        p95 = "-" if view.p95_s is None else f"{view.p95_s * 1e3:.2f}"
        drift = "-" if view.drift_share is None else f"{view.drift_share:.2f}"
        if view.psi:
            feature, psi = max(view.psi.items(), key=lambda item: item[1])
            drift += f" (max psi {feature} {psi:.2f})"
        real = "-" if view.accuracy_realized is None else f"{view.accuracy_realized:.3f}"
        est = "-" if view.accuracy_estimated is None else f"{view.accuracy_estimated:.3f}"
        fields = (f"{t:5.1f}/{self.duration:g}s  calls {view.calls} | p50 {p50} p95 {p95} ms | drift share {drift} | "
                  f"accuracy {real} est. {est} | alerts {alerts}")  # fmt: skip
        if self.tty:
            width = 24
            filled = int(round(fraction * width))
            columns = shutil.get_terminal_size((160, 24)).columns
            self._status = f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%  {fields}"[: columns - 1]
            self.stream.write("\r\x1b[2K" + self._status)
            self.stream.flush()
        elif fraction >= self._next_plain - 1e-9:
            self._next_plain = math.floor(fraction * 10 + 1e-9) / 10 + 0.1
            self.stream.write(f"progress {fraction * 100:3.0f}%  {fields}\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        self._status = ""

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def print_outcome(console: Console, summary: dict) -> None:
    console.line()
    console.line("incident        injected   detected   delay   recovered")
    for row in summary["incidents"]:
        if row["injected_at_s"] is None:
            console.line(f"{row['kind']:<14}  not injected (the run was interrupted)")
            continue
        detected = f"{row['detected_at_s']:8.2f}s" if row["detected"] else "  MISSED "
        delay = f"{row['detection_delay_s']:5.2f}s" if row["detected"] else "    - "
        recovered = f"{row['recovered_at_s']:8.2f}s" if row.get("recovered_at_s") is not None else "       -"
        console.line(f"{row['kind']:<14} {row['injected_at_s']:8.2f}s {detected} {delay}  {recovered}")
    counts = summary["counts"]
    console.line(f"\n{counts['calls']} calls, {counts['rows']} rows, {counts['spans_exported']} spans "
                 f"({counts['anomalous_spans']} flagged ml.anomaly), {counts['alerts']} alerts, "
                 f"{counts['labels']['joined']} labels joined; false-positive detections: {summary['false_positives']}; "
                 f"run took {summary['runtime_s']:.1f} s")  # fmt: skip
    console.line(f"report:  {summary['files']['report']}")
    console.line(f"summary: {summary['files']['summary']}")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
