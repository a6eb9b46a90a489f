"""Control queue: the health probe (a ledger job), and housekeeping run by beat (not ledger jobs)."""

from __future__ import annotations

from switchyard import housekeeping
from switchyard.outbound_webhooks import deliver_callback
from tasks._base import job_task
from workers.app import app

ping = job_task("switchyard.control.ping")(housekeeping.ping)


@app.task(name="switchyard.control.reap", ignore_result=True)
def reap() -> dict:
    """Requeue jobs whose worker died (expired lease) and dispatch never-sent ones."""
    return housekeeping.reap()


@app.task(name="switchyard.control.callback", bind=True, ignore_result=True, acks_late=True,
          max_retries=None)
def callback(self, job_id: str) -> None:
    """POST a finished job to its callback URL, retrying with exponential backoff."""
    retry_in = deliver_callback(job_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
