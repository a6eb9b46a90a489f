"""The demo's HTTP helpers: a signed webhook in, Server-Sent Events out (shared by its steps)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import httpx

from switchyard import signing


def sse_events(url: str, *, timeout: float = 120) -> Iterator[dict]:
    """Yield the JSON of each Server-Sent Event from ``url`` until the ``end`` event."""
    with httpx.stream("GET", url, timeout=timeout) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:].strip())
                yield event
                if event["type"] == "end":
                    return


def post_webhook(api: str, kind: str, payload: dict) -> dict:
    """POST a signed webhook (the demo's secret) and return the 202 body: job_id, status_url, events_url."""
    body = json.dumps(payload).encode()
    headers = {signing.HEADER: signing.sign(os.environ["SWITCHYARD_WEBHOOK_SECRET"], body),
               "Content-Type": "application/json", "Idempotency-Key": f"demo-{kind}-{time.time_ns()}"}
    response = httpx.post(f"{api}/hooks/{kind}", content=body, headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()
