"""The index pool's ``make demo`` step: index ``demo/corpus`` through a signed webhook, follow the job's
progress over SSE, then search over HTTP and print the answers with their cited sources.

``switchyard.demo.run`` runs it first among the pools' steps when the index extra is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
QUESTIONS = ["How many API requests may a token send per minute?",
             "Can I get my money back on a yearly plan?",
             "How long can I work offline?"]


def index_step(stack: Any, console: Any) -> None:
    from rich.rule import Rule

    from switchyard.demo.http import post_webhook, sse_events

    console.print(Rule("Index the demo corpus, then search it with cited sources"))
    api = stack.urls["SWITCHYARD_API_URL"]
    files = [{"path": str(p)} for p in sorted(CORPUS.glob("*.md"))]
    job = post_webhook(api, "index.ingest", {"collection": "handbook", "tenant": "default", "files": files})
    console.print(f"POST /hooks/index.ingest ({len(files)} Markdown files) → 202 {job}")

    for event in sse_events(job["events_url"], timeout=600):
        if event["type"] in ("progress", "status", "end"):
            console.print(f"  [cyan]{event['seq']:>3}[/cyan] {event['type']:9} {json.dumps(event['data'])[:150]}")
    result = httpx.get(job["status_url"], timeout=30).json()
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
