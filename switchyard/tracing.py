"""OpenTelemetry traces across producer → API → worker → LLM call. Off by default.

``SWITCHYARD_OTEL_ENABLED=1`` (and the ``otel`` extra installed) turns it on in the API and in workers;
the exporter is configured by OpenTelemetry's own variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``, ...), OTLP over HTTP. The instrumentations are the
OpenTelemetry contrib ones, not ours: FastAPI (incoming requests, ``traceparent`` from producers),
Celery (publish in the API or a Python producer, then the task run in the worker: the context travels
in the message headers) and httpx (outgoing calls, among them OpenAI-compatible LLM endpoints).
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("switchyard.tracing")

ENABLED_ENV = "SWITCHYARD_OTEL_ENABLED"
_configured = False


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def configure(service: str, exporter: Any = None) -> bool:
    """Install a tracer provider and the Celery and httpx instrumentations, once per process.

    Returns whether tracing is on. ``exporter`` replaces the OTLP exporter (tests). The batch span
    processor restarts its thread after a fork, so calling this in a prefork worker's main process
    also covers its children.
    """
    global _configured
    if _configured:
        return True
    if exporter is None and not enabled():
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("%s is set but OpenTelemetry is not installed (pip install 'switchyard[otel]')", ENABLED_ENV)
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                       service)}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    _configured = True
    log.info("OpenTelemetry tracing on for %s", service)
    return True


def instrument_app(app: Any) -> None:
    """Trace the API's requests (a no-op unless tracing is on)."""
    if configure("switchyard-api"):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


def shutdown() -> None:
    """Flush spans still batched (a worker's clean exit)."""
    if _configured:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()
