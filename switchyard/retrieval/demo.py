"""The index pool's ``make demo`` step: index ``demo/corpus`` through a signed webhook, follow the job's
progress over SSE, then search over HTTP and print the answers with their cited sources.

``switchyard.demo.STEPS.append(index_step)`` adds it (the lead's demo module owns the list).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
QUESTIONS = ["How many API requests may a token send per minute?",
             "Can I get my money back on a yearly plan?",
             "How long can I work offline?"]


def index_step(stack: Any, console: Any) -> None:
    from rich.rule import Rule

    from switchyard import signing
    from switchyard.demo import sse_events

    console.print(Rule("Index the demo corpus, then search it with cited sources"))
    api = stack.urls["SWITCHYARD_API_URL"]
    files = [{"path": str(p)} for p in sorted(CORPUS.glob("*.md"))]
    body = json.dumps({"collection": "handbook", "tenant": "default", "files": files}).encode()
    headers = {signing.HEADER: signing.sign(os.environ["SWITCHYARD_WEBHOOK_SECRET"], body),
               "Content-Type": "application/json", "Idempotency-Key": f"demo-index-{time.time_ns()}"}
    accepted = httpx.post(f"{api}/hooks/index.ingest", content=body, headers=headers, timeout=30)
    accepted.raise_for_status()
    job = accepted.json()
    console.print(f"POST /hooks/index.ingest ({len(files)} Markdown files) → {accepted.status_code} {job}")
    def absolute(url: str) -> str:
        return url if url.startswith("http") else f"{api}{url}"

    for event in sse_events(absolute(job["events_url"]), timeout=600):
        if event["type"] in ("progress", "status", "end"):
            console.print(f"  [cyan]{event['seq']:>3}[/cyan] {event['type']:9} {json.dumps(event['data'])[:150]}")
    result = httpx.get(absolute(job["status_url"]), timeout=30).json()
    if result["status"] != "succeeded":
        raise RuntimeError(f"index job ended {result['status']}: {result.get('error')}")
    console.print(f"result: {result['result']}")
    for question in QUESTIONS:
        answer = httpx.post(f"{api}/collections/handbook/search", json={"query": question, "k": 2},
                            timeout=60)
        answer.raise_for_status()
        console.print(f"\n[bold]Q: {question}[/bold]")
        for hit in answer.json()["results"]:
            meta = hit["metadata"]
            cite = f"{Path(meta['source']).name} › {' › '.join(meta['heading_path'])} (chunk {meta['position']})"
            console.print(f"  [green]{hit['score']:.3f}[/green] {hit['text'][:110]!r}\n      [dim]{cite}[/dim]")
