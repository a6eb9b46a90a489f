"""``job_task``: how a ``switchyard`` function becomes a Celery task with the ledger lifecycle.

Everything shared (ledger row, validation, lease, events, end, callbacks) is in
``switchyard.runner.run_job``; this module only translates a Celery delivery into a ``Delivery``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task

from switchyard import constants, task_catalog
from switchyard.runner import Delivery, JobFunction, PreCheck, run_job
from workers.app import app

log = logging.getLogger("switchyard.tasks")

_FORWARDED_HEADERS = (constants.HEADER_IDEMPOTENCY_KEY, constants.HEADER_CALLBACK_URL,
                      constants.HEADER_PRODUCER, constants.HEADER_TENANT)


def _header(request: Any, name: str) -> str | None:
    # Celery (protocol 2) exposes custom message headers as attributes of the request.
    value = getattr(request, name, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(name)
    return value


def send_home(task: Task, job_id: str, kwargs: dict[str, Any], headers: dict[str, Any]) -> None:
    """(Re)send a job's message to its own queue, same id and kwargs."""
    task.apply_async(kwargs=kwargs, task_id=job_id, queue=task_catalog.queue_for(task.name),
                     routing_key=task_catalog.queue_for(task.name), headers=headers)


def job_task(name: str, *, precheck: PreCheck | None = None, **options: Any) -> Callable[[JobFunction], Task]:
    """Register ``fn(params, ctx)`` as the Celery task ``name`` (its queue comes from the registry)."""
    spec = task_catalog.get_spec(name)

    def decorate(fn: JobFunction) -> Task:
        @app.task(name=name, bind=True, queue=spec.queue, acks_late=True, reject_on_worker_lost=True,
                  **options)
        def task(self: Task, **kwargs: Any) -> Any:
            request = self.request
            headers = {h: v for h in _FORWARDED_HEADERS if (v := _header(request, h)) is not None}
            routing_key = (request.delivery_info or {}).get("routing_key")
            if routing_key == constants.DEFAULT_QUEUE and spec.queue != constants.DEFAULT_QUEUE:
                # A raw producer sent it without a queue: forward it home, untouched.
                log.info("forwarding job %s from the default queue to %s", request.id, spec.queue)
                send_home(self, request.id, kwargs, headers)
                return None
            delivery = Delivery(
                task=name, job_id=request.id, kwargs=kwargs,
                producer=headers.get(constants.HEADER_PRODUCER, "celery"),
                tenant=headers.get(constants.HEADER_TENANT, "default"),
                idempotency_key=headers.get(constants.HEADER_IDEMPOTENCY_KEY),
                callback_url=headers.get(constants.HEADER_CALLBACK_URL),
                worker=request.hostname,
                redeliver=lambda: send_home(self, request.id, kwargs, headers),
            )
            return run_job(delivery, fn, precheck=precheck)

        task.__doc__ = fn.__doc__
        return task

    return decorate
