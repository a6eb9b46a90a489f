"""Step 1 of ``make demo``: a job in by signed webhook, its events out by SSE."""

from __future__ import annotations

import json

import httpx
from rich.console import Console
from rich.rule import Rule

from switchyard.demo.http import post_webhook, sse_events
from switchyard.dev import DevStack


def webhook_step(stack: DevStack, console: Console) -> None:
    """A signed webhook starts a ping job; its events stream back over SSE."""
    console.print(Rule("A job in by signed webhook, its events out by SSE"))
    api = stack.urls["SWITCHYARD_API_URL"]
    accepted = post_webhook(api, "control.ping", {"seconds": 1.5})
    console.print(f"POST /hooks/control.ping → 202 {accepted}")
    unsigned = httpx.post(f"{api}/hooks/control.ping", json={"seconds": 1.5}, timeout=30)
    console.print(f"the same body unsigned → {unsigned.status_code} {unsigned.json()}")
    for event in sse_events(accepted["events_url"]):
        console.print(f"  [cyan]{event['seq']:>3}[/cyan] {event['type']:9} {json.dumps(event['data'])}")
    job = httpx.get(accepted["status_url"], timeout=30).json()
    console.print(f"GET {accepted['status_url']} → status={job['status']} result={job['result']}")
    if job["status"] != "succeeded":
        raise RuntimeError(f"ping job ended {job['status']}")
