"""``make demo``: start the embedded stack, push jobs through every pool, show their events, stop.

Each pool adds a step to ``STEPS`` when it is installed. A step gets the running ``DevStack`` and a
rich ``Console`` and returns normally, or raises to fail the demo.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import time
import warnings
from collections.abc import Callable

import httpx
from rich.console import Console
from rich.rule import Rule

from switchyard import signing
from switchyard.dev import DevStack

Step = Callable[[DevStack, Console], None]


def sse_events(url: str, *, timeout: float = 120):
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


def agent_step(stack: DevStack, console: Console) -> None:
    """rag_answer over the demo corpus: one held-out question to the base model and to the fine-tuned
    handbook adapter, both answers streamed with their cited sources. The held-out score of both is the
    evaluation step's job (it runs last)."""
    import sys

    from switchyard.agents.ask import ask
    from switchyard.finetune import adapters
    from switchyard.finetune.demo import ANSWER_TOKENS, BASE_NAME

    console.print(Rule(f"An agent run: rag_answer over the corpus, {BASE_NAME} without and with the adapter"))
    adapter = getattr(stack, "demo_adapter", None) or adapters.list_adapters(base_model=BASE_NAME)[0].name
    question = "How many API requests may a token send per minute?"  # held out: api.md is never trained on
    for label, model in (("base model", {"base_model": BASE_NAME}), (f"adapter {adapter}", {"adapter": adapter})):
        console.print(f"[bold]Q: {question}[/bold]  (graph rag_answer, greedy, {label})")
        result = ask(question, graph="rag_answer", collection="handbook",
                     model={"provider": "local", "max_new_tokens": ANSWER_TOKENS, **model}, out=sys.stdout)
        if result.get("status") == "error":
            raise RuntimeError(f"agent run failed: {result.get('error')}")


def _pool_steps() -> list[Step]:
    """The pools' steps, in the order the demo tells the story, for the pools that are installed."""
    steps: list[Step] = []
    index = importlib.util.find_spec("sentence_transformers") is not None
    if index:
        from switchyard.retrieval.demo import index_step

        steps.append(index_step)
    if importlib.util.find_spec("peft"):
        from switchyard.finetune.demo import finetune_step

        steps.append(finetune_step)
        if index and importlib.util.find_spec("langgraph"):  # the agent answers from the indexed corpus
            steps.append(agent_step)
    if importlib.util.find_spec("cachetools"):  # the cache extra: ask twice, the second from the cache
        from switchyard.cache.demo import cache_step

        steps.append(cache_step)
    if importlib.util.find_spec("peft") and importlib.util.find_spec("sacrebleu"):  # last: base vs. adapter
        from switchyard.evaluation.demo import eval_step

        steps.append(eval_step)
    return steps


STEPS: list[Step] = [webhook_step]


def run_demo() -> int:
    console = Console()
    # The platform's processes log to STATE_DIR/logs; the terminal is for the story.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # CPU kernels notice: expected here
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="platformdirs")
    os.environ.setdefault("SWITCHYARD_WEBHOOK_SECRET", secrets.token_hex(16))
    started = time.monotonic()
    stack = DevStack(on_event=lambda text: console.print(f"[dim]dev: {text}[/dim]"))
    try:
        console.print(Rule("switchyard demo: starting the embedded stack"))
        urls = stack.start()
        for key, value in urls.items():
            console.print(f"  {key}={value}")
        took = {"start": time.monotonic() - started}  # where the time goes, printed at the end
        for step in [*STEPS, *_pool_steps()]:
            step_started = time.monotonic()
            step(stack, console)
            took[step.__name__.removesuffix("_step")] = time.monotonic() - step_started
        console.print(Rule(f"[bold green]demo finished in {time.monotonic() - started:.0f}s[/bold green]"))
        console.print("  " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in took.items()) +
                      f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        return 0
    except Exception as exc:
        console.print(f"[bold red]demo failed:[/bold red] {exc}")
        console.print(f"logs: {stack.state / 'logs'}")
        return 1
    finally:
        stack.stop()
