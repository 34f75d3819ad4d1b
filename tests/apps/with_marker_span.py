"""Test harness (not an application): runs the app given as argument, then emits markers.

Used by the disabled-instrumentation test as a positive control. The marker span and counter
come through the same SDK and exporters that ``opentelemetry-instrument`` configured, so their
arrival at the collector proves that the export path worked in that very process, and that the
absence of ``ml.*`` telemetry is due to the instrumentation being disabled.
"""

import runpy
import sys

from opentelemetry import metrics, trace

app = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(app, run_name="__main__")

with trace.get_tracer("test-marker").start_as_current_span("marker"):
    pass
metrics.get_meter("test-marker").create_counter("test.marker.count").add(1)
