"""The fine-tuning step of ``make demo``: a small adapter trained through the OpenAI-compatible API.

``finetune_step(stack, console)`` fits ``switchyard.demo.STEPS``. It builds a tiny Llama (no
download), uploads the shipped ``demo/finetune/capitals.jsonl`` with the ``openai`` client, follows the
job's metrics events, plots the loss curve to ``<STATE_DIR>/finetune-demo/loss.png`` (and prints it as
text beside), lists the adapter registry and asks the new adapter a question by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO_DATA = Path(__file__).resolve().parents[2] / "demo" / "finetune"
BASE_NAME = "tiny-llama-demo"
HYPERPARAMETERS = {"n_epochs": 6, "batch_size": 4, "learning_rate": 1e-2, "eval_interval": 3,
                   "checkpoint_interval": 14}


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


def ensure_demo_base(state_dir: Path) -> Path:
    """Build (once) and register the demo's tiny base model; ``switchyard dev`` serves it by default."""
    from switchyard.finetune.models import build_tiny_llama, register_base_model

    model_dir = state_dir / "finetune-demo" / "model"
    if not (model_dir / "config.json").is_file():
        build_tiny_llama(model_dir)
    register_base_model(BASE_NAME, model_dir, "2-layer Llama built from a config for the demo")
    return model_dir


def finetune_step(stack: Any, console: Any) -> None:
    """Fine-tune a LoRA adapter end to end and show its loss curve and registry entry."""
    import openai
    from rich.rule import Rule
    from rich.table import Table

    from switchyard import client
    from switchyard.finetune import adapters
    from switchyard.finetune.serving import ChatLocalAdapter

    console.print(Rule("Fine-tuning: a LoRA adapter through the OpenAI-compatible API"))
    out = stack.state / "finetune-demo"
    ensure_demo_base(stack.state)
    api = openai.OpenAI(base_url=f"{stack.urls['SWITCHYARD_API_URL']}/v1", api_key="demo", max_retries=2)
    train = api.files.create(file=(DEMO_DATA / "capitals.jsonl").open("rb"), purpose="fine-tune")
    valid = api.files.create(file=(DEMO_DATA / "capitals_valid.jsonl").open("rb"), purpose="fine-tune")
    job = api.fine_tuning.jobs.create(model=BASE_NAME, training_file=train.id, validation_file=valid.id,
                                      suffix="capitals", method={"type": "lora", "hyperparameters": HYPERPARAMETERS})
    console.print(f"files {train.id}, {valid.id} → job {job.id} ({job.status})")
    history: list[dict[str, Any]] = []
    for event in client.events(job.id.removeprefix("ftjob-"), timeout=300):
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
    answer = ChatLocalAdapter(adapter=final.fine_tuned_model, max_new_tokens=16).invoke(
        [("user", "What is the capital of Peru?")])
    console.print(f"{final.fine_tuned_model} says: {answer.content!r}")
