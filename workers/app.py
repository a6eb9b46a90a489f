"""The worker side of the Celery app: its task modules, the worker signal handlers and a transport fix.

The app itself (configuration, queue topology) lives in the core, ``switchyard.celery_app``, so that
producers never import this package; it is re-exported here, so ``celery -A workers.app worker ...``
and ``from workers.app import app`` keep working (``switchyard worker POOL`` sets the pool's profile).
"""

from __future__ import annotations

import importlib.util

from switchyard.celery_app import app
from workers import broker_compat, signals  # noqa: F401 - a Redis-transport fix; the worker signal handlers

TASK_MODULES = ["tasks.control", "tasks.index", "tasks.finetune", "tasks.agent", "tasks.evaluate"]


def _existing(modules: list[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is not None]


# Lazily, as the rest of the configuration: a worker imports these modules when it starts.
app.add_defaults(lambda: {"include": _existing(TASK_MODULES)})

__all__ = ["TASK_MODULES", "app"]
