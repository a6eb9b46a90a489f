"""OpenTelemetry, when switched on, carries one trace from a producer's HTTP call through the API and
the broker into the worker that runs the job. Three processes export OTLP/HTTP to a collector in this
test (the OTLP protobuf types from opentelemetry-proto), so the propagation is the real one."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from switchyard import client

pytestmark = pytest.mark.integration

pytest.importorskip("opentelemetry.sdk", reason="the `otel` extra is not installed")

PRODUCER = """
import sys, httpx
from opentelemetry import trace
from switchyard import tracing
tracing.configure("test-producer")
with trace.get_tracer("producer").start_as_current_span("nightly-batch") as span:
    job = httpx.post(sys.argv[1] + "/jobs", json={"kind": "control.ping", "params": {}}, timeout=30).json()
    print(format(span.get_span_context().trace_id, "032x"), job["job_id"])
tracing.shutdown()
"""


class Collector:
    """An OTLP/HTTP trace receiver: ``spans`` is a list of ``(service, span name, trace id hex)``."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        spans = self.spans = []
        lock = self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for resource_spans in request.resource_spans:
                        service = next(a.value.string_value for a in resource_spans.resource.attributes
                                       if a.key == "service.name")
                        for scope in resource_spans.scope_spans:
                            spans.extend((service, s.name, s.trace_id.hex()) for s in scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def in_trace(self, trace_id: str) -> set[tuple[str, str]]:
        with self.lock:
            return {(service, name) for service, name, tid in self.spans if tid == trace_id}


def test_one_trace_from_producer_through_api_to_worker(stack, start_worker, process_factory):
    from switchyard.embedded import free_port, wait_for_port

    collector = Collector()
    otel = {"SWITCHYARD_OTEL_ENABLED": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100"}
    worker = start_worker("control", env={**otel, "OTEL_SERVICE_NAME": "test-worker"}, wait=False)
    port = free_port()
    api = process_factory("api-otel", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)],
                          env={**otel, "OTEL_SERVICE_NAME": "test-api"})
    worker.wait_ready()
    wait_for_port(port, timeout=60)

    # Control workers other tests left running would take the job without tracing: pause them.
    from workers.app import app

    others = [node for reply in app.control.ping(timeout=2) for node in reply if node != worker.nodename]
    if others:
        app.control.cancel_consumer("control", destination=others, reply=True)
    try:
        out = subprocess.run([sys.executable, "-c", PRODUCER, f"http://127.0.0.1:{port}"], capture_output=True,
                             text=True, env=stack.env(**otel), timeout=120, check=True)
        trace_id, job_id = out.stdout.split()
        done = client.wait(job_id, timeout=60)
    finally:
        if others:
            app.control.add_consumer("control", destination=others, reply=True)
    assert done.status.value == "succeeded" and done.worker == worker.nodename

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        services = {service for service, _ in collector.in_trace(trace_id)}
        if {"test-producer", "test-api", "test-worker"} <= services:
            break
        time.sleep(0.2)
    spans = collector.in_trace(trace_id)
    assert ("test-producer", "nightly-batch") in spans
    assert any(s == "test-api" and "/jobs" in name for s, name in spans), spans
    assert ("test-api", "apply_async/switchyard.control.ping") in spans, spans
    assert ("test-worker", "run/switchyard.control.ping") in spans, spans
    worker.terminate()
    api.terminate()
    collector.server.shutdown()
