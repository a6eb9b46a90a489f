"""Demo step: the same question twice through the chat-model factory; the second answer is a cache hit."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rich.console import Console
from rich.rule import Rule


def cache_step(stack: Any, console: Console) -> None:
    from switchyard.cache.config import reload_cache_settings
    from switchyard.cache.layered import MARKER
    from switchyard.config import reload_settings
    from switchyard.llm import get_chat_model

    reload_settings()
    reload_cache_settings()
    console.print(Rule("The LLM cache: the same question twice, the second answer from the cache"))
    # The default model of this stack, cached exactly for the demo's tenant (whatever the provider).
    model = get_chat_model(None, tenant="demo")
    from switchyard.cache import attach_cache

    attach_cache(model, provider="demo", tenant="demo", mode="exact")
    question = f"In one sentence: what does a railway switchyard do? (demo {uuid.uuid4().hex[:6]})"
    console.print(f"[bold]Q: {question}[/bold]")
    timings = []
    for attempt in ("first", "second"):
        started = time.perf_counter()
        answer = model.invoke(question)
        took = time.perf_counter() - started
        timings.append(took)
        hit = (answer.response_metadata or {}).get(MARKER)
        usage = answer.usage_metadata or {}
        where = f"cache hit ({hit['layer']} layer)" if hit else "the model"
        console.print(f"  {attempt} ask: {took * 1000:8.1f} ms from {where}; tokens spent "
                      f"{usage.get('total_tokens', 0)}; A: {str(answer.content)[:100]!r}")
    if not hit:
        raise RuntimeError("the second answer did not come from the cache")
    saved = hit["saved"]
    console.print(f"  saved: {(timings[0] - timings[1]) * 1000:.1f} ms and {saved['total_tokens']} tokens "
                  f"({saved['input_tokens']} in, {saved['output_tokens']} out); "
                  "`switchyard cache stats` shows the totals")
