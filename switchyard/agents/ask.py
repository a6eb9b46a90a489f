"""Ask a graph a question as a job and stream its answer to a terminal (``switchyard graph run``, the demo).

Runs through the platform like any producer: ``dispatch.enqueue`` → an agent worker → the job's events,
printed as they arrive: tokens inline, then the sources the answer cites.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any, TextIO

from switchyard import dispatch, events, jobs


def ask(question: str, *, graph: str = "rag_answer", thread_id: str | None = None, collection: str | None = None,
        model: str | dict[str, Any] | None = None, out: TextIO = sys.stdout, timeout: float = 600) -> dict[str, Any]:
    """Run ``graph`` on ``question``; write the answer's tokens to ``out`` as they stream. Returns the result."""
    payload: dict[str, Any] = {"messages": [{"role": "user", "content": question}]}
    if collection:
        payload["collection"] = collection
    configurable: dict[str, Any] = {"model": model} if model else {}
    job, _ = dispatch.enqueue("agent.run", {
        "graph": graph, "thread_id": thread_id or f"cli-{uuid.uuid4()}", "input": payload,
        "config": {"configurable": configurable}, "stream_mode": ["messages", "updates"],
    }, producer="cli")
    for event in events.subscribe(job.id, timeout=timeout):
        if event.type == "token":
            out.write(event.data["content"])
            out.flush()
        elif event.type == "message" and "resuming" in event.data.get("text", ""):
            out.write("\n[worker lost; resuming from the last checkpoint]\n")
    out.write("\n")
    ended = jobs.get(job.id)
    result = ended.result if isinstance(ended.result, dict) else {}
    if ended.status is not jobs.JobStatus.SUCCEEDED:
        out.write(f"[{ended.status.value}] {(ended.error or {}).get('message', '')}\n")
        return {"status": "error", "error": ended.error, "job_id": job.id}
    for source in (result.get("values") or {}).get("sources") or []:
        out.write(f"  [{source.get('n')}] {source.get('source')}\n")
    if result.get("status") == "interrupted":
        out.write(f"[paused for approval] {result.get('interrupts')}\n")
    return {**result, "job_id": job.id}
