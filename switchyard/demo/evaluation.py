"""The evaluation step of ``make demo``: the demo's base model against the same base with the adapter
the fine-tuning step just trained, on its held-out set, then ``compare`` with paired bootstrap intervals.

``eval_step(stack, console)`` is the last of ``switchyard.demo.run``'s steps; it runs after ``finetune_step``. Both jobs
go in over HTTP (``POST /jobs``), run on the eval pool, generate their predictions through the LLM
factory's local provider, and score text overlap and held-out perplexity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HELDOUT = Path(__file__).resolve().parents[2] / "demo" / "eval" / "capitals_heldout.jsonl"
METRICS = ["chrf", "rouge1", "rougeL", "exact_match", "perplexity", "token_accuracy"]


def held_out_items() -> list[dict[str, Any]]:
    """The fine-tuning demo's held-out chats as eval items (system + user → the assistant's answer);
    the shipped capitals set where that demo has none."""
    from switchyard.demo.finetune import held_out

    rows = held_out()
    if not rows:
        return [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    items = []
    for n, row in enumerate(rows):
        messages = row["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        items.append({"id": f"held-out-{n}", "system": system, "prompt": messages[-2]["content"],
                      "references": [messages[-1]["content"]], "text": messages[-1]["content"]})
    return items


def _submit(api: str, params: dict[str, Any]) -> str:
    import httpx

    response = httpx.post(f"{api}/jobs", json={"kind": "eval.run", "params": params}, timeout=30)
    response.raise_for_status()
    return response.json()["job_id"]


def _print_answers(console: Any, job_ids: dict[str, str]) -> None:
    """The demo's own reading of the stored predictions: exact answer, answer anywhere in the reply, and
    the right passage cited
    (``demo.finetune.score``), and the first few answers side by side."""
    from rich.markup import escape
    from rich.table import Table

    from switchyard.demo.finetune import score
    from switchyard.evaluation import store

    items = {label: store.load_items(job_id) for label, job_id in job_ids.items()}
    table = Table("held-out questions (demo/finetune/handbook/test.jsonl)", "exact match", "answer in reply",
                  "cites the source")
    for label, rows in items.items():
        scores = [score(r["prediction"] or "", r["item"]["references"][0]) for r in rows]
        table.add_row(label, *(f"{sum(s[k] for s in scores) / len(scores):.2f}" for k in scores[0]))
    console.print(table)
    for n, first in enumerate(items["adapter"][:3]):
        answers = "".join(f"\n    {label}: {rows[n]['prediction']!r}" for label, rows in items.items())
        console.print(escape(f"  {first['item']['prompt']}  expected {first['item']['references'][0]!r}{answers}"))


def eval_step(stack: Any, console: Any) -> None:
    """Base vs. adapter on the held-out set: per-item scores stored, compared with intervals."""
    from rich.rule import Rule
    from rich.table import Table

    from switchyard import client
    from switchyard.demo.finetune import ANSWER_TOKENS, BASE_NAME
    from switchyard.evaluation.compare import compare_jobs
    from switchyard.finetune import adapters

    console.print(Rule("Evaluation: the base model vs. the same model with the demo adapter, held-out set"))
    name = getattr(stack, "demo_adapter", None) or adapters.list_adapters(base_model=BASE_NAME)[0].name
    adapter = adapters.get_adapter(name)
    dataset = held_out_items()
    api = stack.urls["SWITCHYARD_API_URL"]
    base_id = _submit(api, {"name": f"base {adapter.base_model}", "dataset": dataset, "metrics": METRICS,
                            "generate": {"model": {"provider": "local", "base_model": adapter.base_model},
                                         "max_tokens": ANSWER_TOKENS},
                            "lm": {"base_model": adapter.base_model}})
    tuned_id = _submit(api, {"name": f"adapter {adapter.name}", "dataset": dataset, "metrics": METRICS,
                             "generate": {"adapter": adapter.name, "max_tokens": ANSWER_TOKENS},
                             "lm": {"adapter": adapter.name}})
    console.print(f"{len(dataset)} held-out questions → jobs {base_id} (base) and {tuned_id} (adapter)")
    finished = [client.wait(job_id, timeout=600) for job_id in (base_id, tuned_id)]
    for job in finished:
        if job.status.value != "succeeded":
            raise RuntimeError(f"eval job {job.id} ended {job.status.value}: {job.error}")
    _print_answers(console, {"base model": base_id, "adapter": tuned_id})
    png = stack.state / "eval-demo" / "compare.png"
    report = compare_jobs(base_id, tuned_id, tenant="default", chart=png)
    table = Table("metric", "base", "adapter", "adapter − base", "95% interval", "p", title="switchyard eval compare")
    for m in report.metrics.values():
        table.add_row(m.name, f"{m.a:.4f}", f"{m.b:.4f}", f"{m.delta:+.4f}", f"[{m.low:+.4f}, {m.high:+.4f}]",
                      f"{m.p_value:.3g}")
    console.print(table)
    console.print(f"chart: {report.chart}   (shell: switchyard eval compare {base_id} {tuned_id})")
