"""``generate``: each item's prediction from its prompt (or question), by the agent pool's providers.

A base model or a named adapter answers through the LLM factory (``switchyard.llm``), exactly as an agent
run's model would; a graph answers as an agent run does (``switchyard.agents.runs.load_graph``), on a
throwaway in-memory thread so an evaluation leaves no checkpoints behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from switchyard.evaluation.resolve import tenant_adapter
from switchyard.evaluation.schemas import GenerateSpec, Item


def model_config(spec: GenerateSpec, tenant: str) -> dict[str, Any]:
    """The factory config for ``spec``: an adapter of ``tenant``, or a named/inline/default model."""
    from switchyard.llm.factory import model_spec

    if spec.adapter:
        tenant_adapter(spec.adapter, tenant)  # NotFound unless the tenant's own
        config = {"provider": "local", "adapter": spec.adapter}
    else:
        config = model_spec(spec.model)
    # Each provider spells the output budget its own way.
    if config["provider"] == "local":
        config["max_new_tokens"] = spec.max_tokens
    elif config["provider"] == "openai":
        config["max_tokens"] = spec.max_tokens
    return config


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    return [*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": prompt}]


def answerer(spec: GenerateSpec, tenant: str) -> Callable[[str, str | None], str]:
    """A function (prompt, system message) → answer text for ``spec``."""
    from switchyard.llm.factory import get_chat_model

    config = model_config(spec, tenant)
    if spec.graph is None:
        llm = get_chat_model(config)
        return lambda prompt, system: _text(llm.invoke(_messages(prompt, system)).content)

    from langgraph.checkpoint.memory import InMemorySaver

    from switchyard.agents.runs import load_graph

    graph = load_graph(spec.graph, model=config, tenant=tenant, checkpointer=InMemorySaver())

    def ask(prompt: str, system: str | None) -> str:
        state = graph.invoke({"messages": _messages(prompt, system)},
                             {"configurable": {"thread_id": f"eval-{uuid.uuid4().hex}"}})
        return _text(state["messages"][-1].content)

    return ask


def fill_predictions(items: list[Item], spec: GenerateSpec, tenant: str,
                     step: Callable[[int, int], None] | None = None) -> tuple[list[Item], dict[str, str]]:
    """Items with ``prediction`` produced from ``prompt`` (else ``question``); ``{id: reason}`` for the others.

    Up to ``spec.concurrency`` prompts are in flight at once: the local provider's server batches
    concurrent requests into one ``generate`` (docs/finetune.md, serving), and remote providers answer
    them in parallel. ``step`` runs in the calling thread, so a stop it raises ends the job there (the
    prompts not yet started are cancelled)."""
    ask = answerer(spec, tenant)
    out: list[Item] = list(items)
    failed: dict[str, str] = {}

    def answer(position: int) -> None:
        item = items[position]
        try:
            out[position] = item.model_copy(update={"prediction": ask(item.prompt or item.question, item.system)})
        except Exception as exc:  # one item's failure (a provider error) must not lose the others
            failed[item.id] = f"generate: {type(exc).__name__}: {exc}"
            out[position] = item.model_copy(update={"prediction": None})

    todo = []
    for position, item in enumerate(items):
        if item.prompt or item.question:
            todo.append(position)
        else:
            failed[item.id] = "generate: missing prompt (or question)"
    done = len(items) - len(todo)
    with ThreadPoolExecutor(max_workers=spec.concurrency, thread_name_prefix="eval-generate") as pool:
        try:
            for future in as_completed([pool.submit(answer, position) for position in todo]):
                future.result()
                done += 1
                if step is not None:
                    step(done, len(items))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if step is not None and not todo:
        step(done, len(items))
    return out, failed
