"""The HTML report of ``otel-mlmon demo``: one self-contained page, plots drawn as inline SVG.

No plotting library and no JavaScript: :class:`_Plot` maps data to SVG coordinates (linear or
log y axis) and draws lines, dots, bands, markers, axes and a legend as plain SVG elements.

>>> page = render_report(_EXAMPLE_SUMMARY, {"polls": [], "anomalies": [], "feature_names": []})
>>> page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4
True
"""

from __future__ import annotations

import html
import json
import math
from typing import Any, Iterable, Sequence

__all__ = ["COLORS", "render_report"]

# Exact colours (the screenshot test looks for some of them).
COLORS = {
    "p50": "#1f5fbf",
    "p95": "#7fa7e0",
    "anomaly": "#d62728",
    "realized": "#1a9641",
    "estimated": "#8e44ad",
    "threshold": "#888888",
    "detected": "#111111",
    "alert": "#d62728",
}
BANDS = {"data_drift": "#3b8bd9", "latency": "#f28e2b", "quality_drop": "#9b59b6"}
LABELS = {"data_drift": "data drift", "latency": "latency incident", "quality_drop": "quality drop"}
FEATURE_PALETTE = ("#e6550d", "#3182bd", "#31a354", "#756bb1", "#636363", "#bcbd22")
WIDTH, HEIGHT = 1000, 250
LEFT, RIGHT, TOP, BOTTOM = 112, 18, 34, 32


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if abs(value - round(value)) > 1e-9 else str(int(round(value)))


def _nice_step(span: float, target: int = 8) -> float:
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


class _Plot:
    """One chart: x in seconds (0 .. x_max), y linear or log; elements appended as SVG text."""

    def __init__(self, x_max: float, y_min: float, y_max: float, log: bool = False, height: int = HEIGHT,
                 y_label: str = "") -> None:  # fmt: skip
        if log:
            y_min = max(y_min, 1e-12)
            y_max = max(y_max, y_min * 10)
        elif y_max <= y_min:
            y_max = y_min + 1.0
        self.x_max = max(x_max, 1e-9)
        self.y_min, self.y_max, self.log = y_min, y_max, log
        self.height = height
        self.y_label = y_label
        self.back: list[str] = []  # bands, grid
        self.body: list[str] = []  # data
        self.front: list[str] = []  # markers, legend
        self.legend: list[tuple[str, str, str]] = []  # (label, colour, kind)
        self.band_label_y = TOP + 13  # where band and marker labels go (the data decides)
        self.mark_label_y = height - BOTTOM - 5

    # coordinates
    def x(self, value: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * min(max(value, 0.0), self.x_max) / self.x_max

    def y(self, value: float) -> float:
        low, high = self.y_min, self.y_max
        if self.log:
            value, low, high = math.log10(max(value, low)), math.log10(low), math.log10(high)
        value = min(max(value, low), high)
        return self.height - BOTTOM - (self.height - TOP - BOTTOM) * (value - low) / (high - low)

    # elements
    def band(self, x0: float, x1: float, colour: str, label: str) -> None:
        a, b = self.x(x0), self.x(x1)
        self.back.append(f'<rect x="{a:.1f}" y="{TOP}" width="{max(b - a, 1):.1f}" height="{self.height - TOP - BOTTOM}" '
                         f'fill="{colour}" fill-opacity="0.13"/>')  # fmt: skip
        self.front.append(f'<text x="{a + 4:.1f}" y="{self.band_label_y}" class="band" fill="{colour}">{_esc(label)}</text>')

    def vline(self, x: float, colour: str, label: str = "", dash: str = "5 3") -> None:
        px = self.x(x)
        self.front.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{self.height - BOTTOM}" stroke="{colour}" '
                          f'stroke-width="1.5" stroke-dasharray="{dash}"/>')  # fmt: skip
        if label:
            self.front.append(f'<text x="{px + 3:.1f}" y="{self.mark_label_y}" class="mark">{_esc(label)}</text>')

    def hline(self, y: float, colour: str, label: str) -> None:
        py = self.y(y)
        self.back.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="{colour}" '
                         f'stroke-width="1.2" stroke-dasharray="6 4"/>'
                         f'<text x="{WIDTH - RIGHT - 4}" y="{py - 4:.1f}" class="mark" text-anchor="end">{_esc(label)}</text>')  # fmt: skip

    def line(self, points: Iterable[tuple[float, float | None]], colour: str, label: str, width: float = 2.0,
             dash: str | None = None) -> None:  # fmt: skip
        runs: list[list[str]] = [[]]
        for x, y in points:
            if y is None or not math.isfinite(y) or (self.log and y <= 0):
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{self.x(x):.1f},{self.y(y):.1f}")
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                self.body.append(f'<circle cx="{cx}" cy="{cy}" r="1.8" fill="{colour}"/>')
            elif run:
                self.body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                                 f'stroke-width="{width}" stroke-linejoin="round"{extra}/>')  # fmt: skip
        self.legend.append((label, colour, "dash" if dash else "line"))

    def dots(self, points: Iterable[tuple[float, float]], colour: str, label: str, r: float = 3.2) -> None:
        for x, y in points:
            if y is not None and math.isfinite(y):
                self.body.append(f'<circle cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="{r}" fill="{colour}"/>')
        self.legend.append((label, colour, "dot"))

    def _axes(self, x_label: str = "seconds since the traffic started") -> list[str]:
        out = []
        bottom = self.height - BOTTOM
        step = _nice_step(self.x_max, 12)
        tick = 0.0
        while tick <= self.x_max + 1e-9:
            px = self.x(tick)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{bottom}" class="grid"/>'
                       f'<text x="{px:.1f}" y="{bottom + 15}" class="tick" text-anchor="middle">{_num(tick)}</text>')  # fmt: skip
            tick += step
        for value in self._y_ticks():
            py = self.y(value)
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" class="grid"/>'
                       f'<text x="{LEFT - 6}" y="{py + 4:.1f}" class="tick" text-anchor="end">{_fmt_tick(value)}</text>')  # fmt: skip
        out.append(f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{bottom - TOP}" class="frame"/>')
        out.append(f'<text x="{WIDTH - RIGHT}" y="{self.height - 4}" class="axis" text-anchor="end">{_esc(x_label)}</text>')
        if self.y_label:
            out.append(f'<text x="14" y="{(TOP + bottom) / 2:.1f}" class="axis" text-anchor="middle" '
                       f'transform="rotate(-90 14 {(TOP + bottom) / 2:.1f})">{_esc(self.y_label)}</text>')  # fmt: skip
        return out

    def _y_ticks(self) -> list[float]:
        if self.log:
            ticks = []
            for exponent in range(math.floor(math.log10(self.y_min)), math.ceil(math.log10(self.y_max)) + 1):
                for mantissa in (1, 2, 5):
                    value = mantissa * 10.0**exponent
                    if self.y_min <= value <= self.y_max:
                        ticks.append(value)
            if len(ticks) > 9:
                ticks = [t for t in ticks if abs(math.log10(t) - round(math.log10(t))) < 1e-9]
            return ticks
        step = _nice_step(self.y_max - self.y_min, 5)
        start = math.ceil(self.y_min / step - 1e-9) * step
        return [start + i * step for i in range(int((self.y_max - start) / step + 1e-9) + 1)]

    def _legend(self) -> tuple[list[str], int]:
        """The legend items, wrapped into rows above the plot; returns (elements, extra rows)."""
        out, x, row = [], LEFT, 0
        for label, colour, kind in self.legend:
            width = 34 + int(6.8 * len(label))
            if x > LEFT and x + width > WIDTH - RIGHT:
                x, row = LEFT, row + 1
            y = TOP - 14 + 18 * row
            if kind == "dot":
                swatch = f'<circle cx="{x + 8}" cy="{y}" r="4.5" fill="{colour}"/>'
            elif kind == "dash":
                swatch = (f'<line x1="{x}" x2="{x + 18}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="3" '
                          f'stroke-dasharray="5 3"/>')  # fmt: skip
            else:
                swatch = f'<rect x="{x}" y="{y - 3}" width="18" height="6" fill="{colour}"/>'
            out.append(swatch + f'<text x="{x + 24}" y="{y + 4}" class="legend">{_esc(label)}</text>')
            x += width
        return out, row

    def svg(self, aria: str) -> str:
        legend, rows = self._legend()
        shift = 18 * rows  # extra legend rows push the plot down
        parts = self.back + self._axes() + self.body + self.front
        return (f'<svg viewBox="0 0 {WIDTH} {self.height + shift}" width="100%" role="img" aria-label="{_esc(aria)}" '
                f'xmlns="http://www.w3.org/2000/svg">{"".join(legend)}'
                f'<g transform="translate(0 {shift})">{"".join(parts)}</g></svg>')  # fmt: skip


def _fmt_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


# ---------------------------------------------------------------------------------------- plots
def _incident_bands(plot: _Plot, summary: dict) -> None:
    for incident in summary["incidents"]:
        start = incident.get("injected_at_s")
        if start is None:
            continue  # not injected (an interrupted run)
        plot.band(start, incident["end_s"], BANDS.get(incident["kind"], "#999999"), LABELS.get(incident["kind"], incident["kind"]))


def _detection_marks(plot: _Plot, summary: dict, kinds: Sequence[str]) -> None:
    for detection in summary["detections"]:
        if detection["kind"] in kinds:
            label = "detected" if detection["matches_injected"] else "false positive"
            plot.vline(detection["detected_at_s"], COLORS["detected"], label)


def _latency_plot(summary: dict, series: dict) -> str:
    polls = series["polls"]
    duration = summary["settings"]["duration"]
    values = [p[k] for p in polls for k in ("p50_ms", "p95_ms", "max_ms") if p.get(k)]
    values += [d for _, d, _ in series["anomalies"]]
    low = min(values) / 1.6 if values else 0.01
    high = max(values) * 1.6 if values else 10.0
    plot = _Plot(duration, low, high, log=True, y_label="ms (log scale)")
    _incident_bands(plot, summary)
    plot.line([(p["t"], p["p50_ms"]) for p in polls], COLORS["p50"], "p50 of span durations, last 0.5 s", 2.2)
    plot.line([(p["t"], p["p95_ms"]) for p in polls], COLORS["p95"], "p95, last 0.5 s", 1.6)
    plot.dots([(t, d) for t, d, _ in series["anomalies"]], COLORS["anomaly"], "span flagged ml.anomaly")
    _detection_marks(plot, summary, ("latency",))
    return plot.svg("Inference latency over time with anomalous spans")


def _drift_plot(summary: dict, series: dict) -> str:
    polls = series["polls"]
    duration = summary["settings"]["duration"]
    peak: dict[str, float] = {}
    for poll in polls:
        for feature, value in poll["psi"].items():
            peak[feature] = max(peak.get(feature, 0.0), value)
    features = sorted(peak, key=lambda f: -peak[f])[: len(FEATURE_PALETTE)]
    values = [v for p in polls for f, v in p["psi"].items() if f in features and v > 0]
    plot = _Plot(duration, 0.01, max(values + [0.5]) * 1.8, log=True, y_label="PSI (log scale)")
    _incident_bands(plot, summary)
    plot.hline(0.1, COLORS["threshold"], "PSI 0.1 (drift threshold)")
    names = series.get("feature_names") or []
    for colour, feature in zip(FEATURE_PALETTE, features):
        index = int(feature[1:]) if feature[1:].isdigit() else -1
        label = f"{feature} {names[index]}" if 0 <= index < len(names) else feature
        plot.line([(p["t"], p["psi"].get(feature)) for p in polls], colour, label, 2.0 if colour == FEATURE_PALETTE[0] else 1.4)
    _detection_marks(plot, summary, ("data_drift",))
    return plot.svg("Drift score (PSI) per input feature over time")


def _accuracy_plot(summary: dict, series: dict) -> str:
    polls = series["polls"]
    duration = summary["settings"]["duration"]
    values = [p[k] for p in polls for k in ("accuracy_realized", "accuracy_estimated") if p.get(k) is not None]
    low = math.floor((min(values) if values else 0.5) * 10 - 0.5) / 10
    plot = _Plot(duration, max(low, 0.0), 1.0, y_label="accuracy")
    plot.band_label_y = plot.height - BOTTOM - 6  # the lines run along the top
    plot.mark_label_y = plot.height - BOTTOM - 22
    _incident_bands(plot, summary)
    plot.line([(p["t"], p["accuracy_realized"]) for p in polls], COLORS["realized"],
              "realized (from delayed labels)", 2.4)  # fmt: skip
    plot.line([(p["t"], p["accuracy_estimated"]) for p in polls], COLORS["estimated"],
              "estimated (CBPE, label-free)", 2.0, dash="7 4")  # fmt: skip
    _detection_marks(plot, summary, ("quality_drop",))
    return plot.svg("Realized and estimated accuracy over time")


def _timeline_plot(summary: dict, series: dict) -> str:
    duration = summary["settings"]["duration"]
    detected = {"data_drift": "detected: drift", "latency": "detected: latency", "quality_drop": "detected: quality"}
    lanes = ("injected", *detected.values(), "alerts", "ml.anomaly")
    height = 64 + 28 * len(lanes)
    plot = _Plot(duration, 0, len(lanes), height=height)
    plot._y_ticks = lambda: []  # type: ignore[method-assign]  # lanes, not values
    lane_y = {lane: plot.y(len(lanes) - i - 0.5) for i, lane in enumerate(lanes)}
    for lane, y in lane_y.items():
        plot.back.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_esc(lane)}</text>'
                         f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')  # fmt: skip
    for incident in summary["incidents"]:
        start = incident.get("injected_at_s")
        if start is None:
            continue
        colour = BANDS.get(incident["kind"], "#999999")
        a, b, y = plot.x(start), plot.x(incident["end_s"]), lane_y["injected"]
        plot.body.append(f'<rect x="{a:.1f}" y="{y - 8:.1f}" width="{max(b - a, 2):.1f}" height="16" rx="3" fill="{colour}"/>'
                         f'<text x="{a + 5:.1f}" y="{y + 4:.1f}" class="onbar">{_esc(LABELS.get(incident["kind"], incident["kind"]))}</text>')  # fmt: skip
    for detection in summary["detections"]:
        colour = BANDS.get(detection["kind"], "#999999") if detection["matches_injected"] else "#555555"
        end = detection["ended_at_s"] if detection["ended_at_s"] is not None else duration
        a, b, y = plot.x(detection["detected_at_s"]), plot.x(end), lane_y[detected.get(detection["kind"], "injected")]
        label = LABELS.get(detection["kind"], detection["kind"])
        if detection.get("delay_s") is not None:
            label += f" (+{detection['delay_s']:.1f} s)"
        elif not detection["matches_injected"]:
            label += " (false positive)"
        plot.body.append(f'<rect x="{a:.1f}" y="{y - 8:.1f}" width="{max(b - a, 2):.1f}" height="16" rx="3" fill="{colour}" '
                         f'fill-opacity="0.55" stroke="{colour}"/>'
                         f'<text x="{a + 5:.1f}" y="{y + 4:.1f}" class="onbar dark">{_esc(label)}</text>')  # fmt: skip
    for alert in summary["alerts"]:
        x, y = plot.x(alert["at_s"]), lane_y["alerts"]
        plot.body.append(f'<path d="M{x:.1f},{y - 8:.1f} L{x + 7:.1f},{y:.1f} L{x:.1f},{y + 8:.1f} L{x - 7:.1f},{y:.1f} Z" '
                         f'fill="{COLORS["alert"]}"><title>{_esc(alert["signal"])} alert at {alert["at_s"]:.2f} s</title></path>'
                         f'<text x="{x + 9:.1f}" y="{y + 4:.1f}" class="mark">{_esc(alert["signal"])}</text>')  # fmt: skip
    y = lane_y["ml.anomaly"]
    for t, _, _ in series["anomalies"]:
        x = plot.x(t)
        plot.body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 8:.1f}" y2="{y + 8:.1f}" stroke="{COLORS["anomaly"]}" stroke-width="1.5"/>')
    plot.legend = [("alert raised by AnomalyDetectionSpanProcessor", COLORS["alert"], "dot"),
                   ("span flagged ml.anomaly", COLORS["anomaly"], "line")]
    return plot.svg("Timeline of injected incidents, detections and alerts")


# ---------------------------------------------------------------------------------------- page
_CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;color:#1b1f24;background:#fff;margin:0}
main{max-width:1100px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:16px;margin:22px 0 2px}
p.sub{color:#555;margin:0 0 12px}p.note{color:#555;margin:2px 0 4px;font-size:13px}
.cards{display:flex;gap:12px;margin:12px 0 6px}
.card{flex:1;border:1px solid #d8dde3;border-left:6px solid var(--c);border-radius:6px;padding:8px 12px}
.card b{font-size:15px}.card .big{font-size:20px;font-weight:600}.ok{color:#1a7f37}.bad{color:#c62828}
table{border-collapse:collapse;margin:6px 0;font-size:13px}td,th{border-bottom:1px solid #e3e6ea;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#555;font-weight:600}code{font-size:12.5px;background:#f3f4f6;padding:0 3px;border-radius:3px}
svg{display:block;margin:2px 0}
svg .grid{stroke:#eceef1;stroke-width:1}svg .frame{fill:none;stroke:#b9c0c8}
svg .tick{font-size:11px;fill:#555}svg .axis{font-size:11px;fill:#777}svg .legend{font-size:12px;fill:#333}
svg .band{font-size:11px;font-weight:600}svg .mark{font-size:11px;fill:#222}
svg .onbar{font-size:11px;fill:#fff;font-weight:600}svg .onbar.dark{fill:#1b1f24}
"""


def _card(incident: dict) -> str:
    colour = BANDS.get(incident["kind"], "#999999")
    start = incident["injected_at_s"] if incident.get("injected_at_s") is not None else incident["start_s"]
    if incident.get("injected_at_s") is None:
        verdict = '<span class="big">not injected</span><br>the run was interrupted before'
    elif incident["detected"]:
        verdict = (f'<span class="big ok">detected after {incident["detection_delay_s"]:.1f} s</span><br>'
                   f'injected at {start:.1f} s, detected at {incident["detected_at_s"]:.1f} s')  # fmt: skip
        if incident.get("recovered_at_s") is not None:
            verdict += f', recovered at {incident["recovered_at_s"]:.1f} s'
    else:
        verdict = f'<span class="big bad">missed</span><br>injected at {start:.1f} s'
    return (f'<div class="card" style="--c:{colour}"><b>{_esc(LABELS.get(incident["kind"], incident["kind"]))}</b><br>'
            f'{verdict}<br><span class="note">{_esc(incident["description"])}</span></div>')  # fmt: skip


def _evidence(detection: dict) -> str:
    items = []
    for key, value in detection["evidence"].items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        items.append(f"{_esc(key)}={_esc(value)}")
    return ", ".join(items)


def render_report(summary: dict, series: dict) -> str:
    """The report page: summary cards, four inline-SVG plots, detections, alerts, settings."""
    counts = summary["counts"]
    model = summary["model"]
    settings = summary["settings"]
    rows = "".join(
        f"<tr><td>{_esc(LABELS.get(d['kind'], d['kind']))}</td><td>{d['first_signal_at_s']:.2f} s</td>"
        f"<td>{d['detected_at_s']:.2f} s</td><td>{'-' if d['delay_s'] is None else format(d['delay_s'], '.2f') + ' s'}</td>"
        f"<td>{'-' if d['ended_at_s'] is None else format(d['ended_at_s'], '.2f') + ' s'}</td>"
        f"<td>{'yes' if d['matches_injected'] else 'no (false positive)'}</td><td>{_evidence(d)}</td></tr>"
        for d in summary["detections"]
    ) or '<tr><td colspan="7">none</td></tr>'
    alerts = "".join(
        f"<tr><td>{a['at_s']:.2f} s</td><td>{_esc(a['signal'])}</td><td>{_esc(a.get('during_incident') or 'none (noise)')}</td><td>{_esc(a['detector'])}</td>"
        f"<td>{'-' if a['score'] is None else format(a['score'], '.3f')}</td><td><code>{_esc(a['trace_id'] or '-')}</code></td></tr>"
        for a in summary["alerts"]
    ) or '<tr><td colspan="6">none</td></tr>'
    latency = summary["latency_ms"]
    otlp = summary.get("otlp")
    exported = (f"also exported over OTLP ({_esc(otlp['protocol'])}) to <code>{_esc(otlp['endpoint'])}</code>"
                if otlp else "in-process only (set <code>OTEL_EXPORTER_OTLP_ENDPOINT</code> to export over OTLP)")  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>otel-mlmon demo report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><main>
<h1>otel-mlmon demo: three incidents, detected from OpenTelemetry data</h1>
<p class="sub">Model <code>{_esc(model['name'])}</code> ({_esc(model['estimator'])}, {model['features']} features,
hold-out accuracy {model['holdout_accuracy']:.3f}) served for {settings['duration']:g} s at {settings['rate']:g} calls/s
(seed {settings['seed']}, labels {settings['label_delay']:g} s late): {counts['calls']} calls, {counts['rows']} rows,
{counts['spans_exported']} spans, {counts['anomalous_spans']} flagged <code>ml.anomaly</code>, {counts['alerts']} alerts,
{counts['labels']['joined']} labels joined. Latency p50 {latency['p50']} ms, p95 {latency['p95']} ms. Telemetry {exported}.
Started {_esc(summary['started_at'])}, otel-mlmon {_esc(summary['otel_mlmon_version'])}.</p>
<div class="cards">{''.join(_card(i) for i in summary['incidents'])}</div>
<h2>Latency</h2><p class="note">Span durations of <code>predict_proba</code> (what <code>ml.inference.duration</code> records): median and
95th percentile over the last 0.5 s, and every span the inline detector flagged <code>ml.anomaly=true</code>.</p>
{_latency_plot(summary, series)}
<h2>Data drift per feature</h2><p class="note"><code>ml.drift.score{{ml.drift.method=psi}}</code> of the features that drifted most
(the monitor exports the scores of every feature, up to 64, as stable series). A feature counts as drifted when its PSI is &ge; 0.1
<em>and</em> its KS test is significant (p &lt; 0.01 over the features tested); <code>ml.drift.share</code> is the share of such features.
Features that did not drift stay around PSI 0.05: the sampling noise of a window of
{settings['instrument'].get('drift_window_rows', 1000)} rows (otel-mlmon's default window).</p>
{_drift_plot(summary, series)}
<h2>Model quality: realized vs estimated accuracy</h2><p class="note"><code>ml.quality.score{{ml.quality.metric=accuracy}}</code>:
realized from ground truth joined by prediction id {settings['label_delay']:g} s after each prediction (window of the last
{settings['instrument'].get('quality_window')} labels), and estimated from the model's probabilities (CBPE) before labels arrive.
The estimate is calibrated on the labels joined so far: on its own it cannot see a concept change (same inputs, new meaning),
so it only follows the realized accuracy once the late labels show the change.</p>
{_accuracy_plot(summary, series)}
<h2>Timeline</h2>
{_timeline_plot(summary, series)}
<h2>Detections</h2><p class="note">From the telemetry only, polled every {settings['poll_s']:g} s; a condition must hold
{settings['hold_s']:g} s. Drift: <code>ml.drift.share &gt; 0</code>. Latency: median span duration &ge; 3&times; its baseline with
<code>ml.anomaly</code> spans in the last 2 s. Quality: realized accuracy &ge; 0.10 below its baseline.</p>
<table><tr><th>incident</th><th>first signal</th><th>detected</th><th>delay</th><th>recovered</th><th>matches injection</th><th>evidence</th></tr>{rows}</table>
<h2>Alerts</h2><p class="note">Raised by <code>AnomalyDetectionSpanProcessor</code> (one per incident per model and signal;
one per incident, from the incident layer), delivered to a callback{', and as OpenTelemetry log records over OTLP' if otlp else ''}.</p>
<table><tr><th>span time</th><th>signal</th><th>explained by an injected incident</th><th>detector</th><th>score</th><th>trace id</th></tr>{alerts}</table>
<p class="note">Command: <code>{_esc(summary['command'])}</code>. Settings passed to <code>instrument()</code>:
<code>{_esc(json.dumps(settings['instrument']))}</code>. Summary: <code>summary.json</code> next to this page.</p>
</main></body></html>
"""


_EXAMPLE_SUMMARY: dict = {
    "otel_mlmon_version": "0", "command": "otel-mlmon demo", "started_at": "1970-01-01T00:00:00Z", "otlp": None,
    "settings": {"duration": 10, "rate": 10, "seed": 0, "label_delay": 1, "poll_s": 0.25, "hold_s": 0.5,
                 "alert_cooldown_s": 2, "instrument": {"quality_window": 200}},
    "model": {"name": "m", "estimator": "e", "features": 1, "holdout_accuracy": 1.0},
    "counts": {"calls": 0, "rows": 0, "spans_exported": 0, "anomalous_spans": 0, "alerts": 0, "labels": {"joined": 0}},
    "latency_ms": {"p50": None, "p95": None}, "incidents": [], "detections": [], "alerts": [],
}  # fmt: skip
