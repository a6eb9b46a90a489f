"""The FastAPI application: each concern is a router in its own module."""

from __future__ import annotations

import importlib
import importlib.util
import logging

from fastapi import FastAPI

from switchyard import tracing
from switchyard.api.limits import RequestLimits
from switchyard.api.ratelimit import RateLimit

log = logging.getLogger("switchyard.api")

# Routers, in the order their paths are matched. A pool's router is mounted when its module exists.
ROUTERS = [
    "switchyard.api.health",
    "switchyard.api.jobs",
    "switchyard.api.webhooks",
    "switchyard.api.collections",
    "switchyard.api.openai_files",
    "switchyard.api.openai_finetune",
    "switchyard.api.langgraph",
    "switchyard.api.evaluation",
]


def create_app() -> FastAPI:
    app = FastAPI(title="switchyard", version="0.1.0",
                  description="Event-driven worker platform for LLM work.")
    for module_name in ROUTERS:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        app.include_router(module.router)
        if hasattr(module, "install"):
            module.install(app)  # exception handlers and the like
    # Every route, whatever its router: body size and JSON depth limits inside the per-caller rate
    # limit (added last = outermost), so a flood of oversized requests is also counted.
    app.add_middleware(RequestLimits)
    app.add_middleware(RateLimit)
    tracing.instrument_app(app)  # OpenTelemetry, off unless SWITCHYARD_OTEL_ENABLED
    return app
