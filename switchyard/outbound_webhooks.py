"""Outbound webhooks: when a job with a ``callback_url`` ends, POST it there, signed, with retries."""

from __future__ import annotations

import json
import logging

import httpx

from switchyard import egress, jobs, signing
from switchyard.config import get_settings
from switchyard.db import connection
from switchyard.errors import InputRefused
from switchyard.jobs import Job

log = logging.getLogger("switchyard.outbound_webhooks")

UPSERT_SQL = """
INSERT INTO callback_deliveries (job_id, url) VALUES (%s, %s)
ON CONFLICT (job_id) DO UPDATE SET url = EXCLUDED.url, status = 'pending', updated_at = now()
"""
RECORD_SQL = """
UPDATE callback_deliveries SET status = %(status)s, attempts = attempts + 1, last_error = %(error)s,
       response_code = %(code)s, updated_at = now()
WHERE job_id = %(job_id)s
RETURNING attempts
"""
SET_STATUS_SQL = "UPDATE callback_deliveries SET status = %s WHERE job_id = %s"


def schedule_callback(job: Job) -> None:
    with connection() as conn:
        conn.execute(UPSERT_SQL, (job.id, job.callback_url))
    from switchyard.celery_app import app

    app.send_task("switchyard.control.callback", kwargs={"job_id": job.id}, queue="control",
                  routing_key="control")


def callback_body(job: Job) -> bytes:
    return json.dumps({"type": "job.ended", "job": job.to_dict()}, default=str).encode()


def deliver_callback(job_id: str, *, timeout_s: float = 10.0) -> float | None:
    """Try once. Returns ``None`` when done (delivered, or gave up), else seconds until the retry."""
    settings = get_settings()
    job = jobs.get(job_id)
    if not job.callback_url:
        return None
    body = callback_body(job)
    headers = {"Content-Type": "application/json", "Switchyard-Job-Id": job.id}
    secret = settings.webhook_secret_for(None)
    if secret:
        headers[signing.HEADER] = signing.sign(secret, body)
    code, error = None, None
    try:
        # The caller named this URL: the egress policy decides where it may go (checked at the way in
        # and again here, at the connect, since DNS answers and configuration can change).
        with egress.client(timeout=timeout_s) as http:
            response = http.post(job.callback_url, content=body, headers=headers)
        code = response.status_code
        if response.is_success:
            _record(job.id, "delivered", None, code)
            return None
        error = f"HTTP {code}"
    except InputRefused as exc:  # refused stays refused: no retries
        _record(job.id, "failed", str(exc), None)
        log.error("callback for job %s refused: %s", job.id, exc)
        return None
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    attempts = _record(job.id, "pending", error, code)
    if attempts > settings.callback_max_retries:
        _record(job.id, "failed", error, code, count=False)
        log.error("callback for job %s failed for good after %d attempts: %s", job.id, attempts, error)
        return None
    delay = min(2 ** (attempts - 1), 300)
    log.warning("callback for job %s failed (%s); retry %d in %ss", job.id, error, attempts, delay)
    return float(delay)


def _record(job_id: str, status: str, error: str | None, code: int | None, *, count: bool = True) -> int:
    with connection() as conn:
        if not count:
            conn.execute(SET_STATUS_SQL, (status, job_id))
            return 0
        row = conn.execute(RECORD_SQL, {"status": status, "error": error, "code": code,
                                        "job_id": job_id}).fetchone()
    return row["attempts"] if row else 0
