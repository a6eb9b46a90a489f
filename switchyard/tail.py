"""``switchyard tail JOB_ID``: print a job's events as they happen (tokens inline, progress as a bar)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from switchyard import events
from switchyard.events import Event


def tail(job_id: str, *, after_seq: int = 0, console: Console | None = None, raw: bool = False) -> Event | None:
    """Follow a job to its ``end`` event; returns that event. ``raw`` prints the event JSON lines."""
    console = console or Console()
    last: Event | None = None
    in_tokens = False
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        bar = None
        for event in events.subscribe(job_id, after_seq):
            last = event
            if raw:
                console.print_json(event.to_json()) if console.is_terminal else print(event.to_json())
                continue
            if event.type == "token":
                progress.console.print(event.data.get("content", ""), end="", markup=False,
                                       highlight=False, soft_wrap=True)
                in_tokens = True
                continue
            if in_tokens:
                progress.console.print()
                in_tokens = False
            if event.type == "progress" and event.data.get("total"):
                if bar is None:
                    bar = progress.add_task(event.data.get("stage", "progress"), total=event.data["total"])
                progress.update(bar, completed=event.data.get("done", 0), total=event.data["total"])
                continue
            progress.console.print(_describe(event), highlight=False)
    return last


def _describe(event: Event) -> str:
    data = event.data
    if event.type == "status":
        extra = {k: v for k, v in data.items() if k != "status"}
        return f"[{event.seq}] status → {data.get('status')}" + (f" {json.dumps(extra)}" if extra else "")
    if event.type == "message":
        return f"[{event.seq}] {data.get('text', data)}"
    if event.type == "end":
        return f"[{event.seq}] end: {data.get('status')}" + (
            f" result={json.dumps(data.get('result'), default=str)[:500]}" if data.get("result") else ""
        ) + (f" error={data['error'].get('message')}" if data.get("error") else "")
    return f"[{event.seq}] {event.type}: {json.dumps(data, default=str)[:500]}"
