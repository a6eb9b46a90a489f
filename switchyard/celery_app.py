"""The one Celery app: configuration and queue topology, imported by producers and workers alike.

Producers (``dispatch.send``, ``callbacks.schedule_callback``) send with this app; ``workers/app.py``
adds what only a worker process needs (the task modules, signal handlers, a transport fix) and
re-exports it, so ``celery -A workers.app worker`` and ``from workers.app import app`` keep working.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from switchyard import constants
from switchyard.config import get_settings


def celery_config() -> dict:
    """The app's configuration, read from the settings when the app is first used (not at import), so
    a process that sets SWITCHYARD_* after importing this module still reaches the right broker."""
    settings = get_settings()
    return dict(
        broker_url=settings.effective_broker_url,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # A broker restart is waited out, never fatal: retry forever (RELIABILITY.md); the reaper re-sends
        # whatever the broker lost meanwhile.
        broker_connection_max_retries=None,
        task_queues=[Queue(q, routing_key=q) for q in (*constants.QUEUES, constants.DEFAULT_QUEUE)],
        task_default_queue=constants.DEFAULT_QUEUE,
        task_routes={f"switchyard.{q}.*": {"queue": q, "routing_key": q} for q in constants.QUEUES},
        # The Redis transport redelivers an unacked message after the visibility timeout; leases make
        # such a duplicate harmless, so keep it long enough not to fire during normal work.
        broker_transport_options={"visibility_timeout": 3600},
        worker_send_task_events=False,
        beat_schedule={
            "reap-expired-leases": {
                "task": "switchyard.control.reap",
                "schedule": settings.reaper_interval_s,
                "options": {"queue": "control", "expires": max(settings.reaper_interval_s * 2, 5)},
            },
            "prune-agent-checkpoints": {
                "task": "switchyard.control.prune_checkpoints",
                "schedule": 3600.0,
                "options": {"queue": "control", "expires": 1800},
            },
        },
    )


def make_app() -> Celery:
    app = Celery("switchyard")
    app.add_defaults(celery_config)
    return app


app = make_app()
