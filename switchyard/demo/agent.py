"""The agent step of ``make demo``: ``rag_answer`` asked the same held-out question with the base model
and with the adapter the fine-tune step trained, both streamed with their sources."""

from __future__ import annotations

from rich.console import Console
from rich.rule import Rule

from switchyard.dev import DevStack


def agent_step(stack: DevStack, console: Console) -> None:
    """rag_answer over the demo corpus: one held-out question to the base model and to the fine-tuned
    handbook adapter, both answers streamed with their cited sources. The held-out score of both is the
    evaluation step's job (it runs last)."""
    import sys

    from switchyard.agents.ask import ask
    from switchyard.demo.finetune import ANSWER_TOKENS, BASE_NAME
    from switchyard.finetune import adapters

    console.print(Rule(f"An agent run: rag_answer over the corpus, {BASE_NAME} without and with the adapter"))
    adapter = getattr(stack, "demo_adapter", None) or adapters.list_adapters(base_model=BASE_NAME)[0].name
    question = "How many API requests may a token send per minute?"  # held out: api.md is never trained on
    for label, model in (("base model", {"base_model": BASE_NAME}), (f"adapter {adapter}", {"adapter": adapter})):
        console.print(f"[bold]Q: {question}[/bold]  (graph rag_answer, greedy, {label})")
        result = ask(question, graph="rag_answer", collection="handbook",
                     model={"provider": "local", "max_new_tokens": ANSWER_TOKENS, **model}, out=sys.stdout)
        if result.get("status") == "error":
            raise RuntimeError(f"agent run failed: {result.get('error')}")
