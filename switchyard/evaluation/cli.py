"""``switchyard eval run|compare|show``: evaluation jobs from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _params(dataset: str, metrics: tuple[str, ...], name: str | None, model: str | None, adapter: str | None,
            graph: str | None, max_tokens: int, clip_model: str | None, lm_base: str | None,
            lm_adapter: str | None, review: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"metrics": list(metrics)}
    path = Path(dataset)
    if path.is_file():  # a local file is sent inline (the worker may not see this machine's paths)
        text = path.read_text()
        params["dataset"] = (json.loads(text) if text.lstrip().startswith("[")
                             else [json.loads(line) for line in text.splitlines() if line.strip()])
    else:
        params["dataset_file"] = dataset  # an uploaded file id, or a path under the workers' file roots
    if name:
        params["name"] = name
    if model or adapter or graph:
        params["generate"] = {"model": model, "adapter": adapter, "graph": graph, "max_tokens": max_tokens}
    if clip_model:
        params["clip_model"] = clip_model
    if lm_base or lm_adapter:
        params["lm"] = {"base_model": lm_base, "adapter": lm_adapter}
    if review:
        params["review"] = {"sample": review}
    return params


@click.group("eval")
def eval_cli() -> None:
    """Evaluation jobs: run metrics on a dataset, compare two runs, show one."""


@eval_cli.command("run")
@click.argument("dataset")
@click.option("-m", "--metric", "metrics", multiple=True, required=True, help="repeat for several metrics")
@click.option("--name", default=None)
@click.option("--model", default=None, help="generate predictions with this model (factory name)")
@click.option("--adapter", default=None, help="generate predictions with this registered adapter")
@click.option("--graph", default=None, help="generate predictions with this agent graph")
@click.option("--max-tokens", type=int, default=64)
@click.option("--clip-model", default=None, help="CLIP directory or registered base model (clipscore)")
@click.option("--lm-base", default=None, help="base model for perplexity / token_accuracy")
@click.option("--lm-adapter", default=None, help="adapter for perplexity / token_accuracy")
@click.option("--review", type=int, default=None, help="ask humans to rate this many sampled items")
@click.option("--no-wait", is_flag=True, help="print the job id and return")
def run_cmd(dataset: str, metrics: tuple[str, ...], name: str | None, model: str | None, adapter: str | None,
            graph: str | None, max_tokens: int, clip_model: str | None, lm_base: str | None, lm_adapter: str | None,
            review: int | None, no_wait: bool) -> None:
    """Score DATASET (a local JSON/JSONL file, an uploaded file id, or a path the workers can read)."""
    from rich.progress import Progress

    from switchyard import client
    from switchyard.errors import InvalidParamsError

    params = _params(dataset, metrics, name, model, adapter, graph, max_tokens, clip_model, lm_base, lm_adapter,
                     review)
    try:
        job = client.enqueue("eval.run", params)
    except InvalidParamsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"job {job.id}", err=True)
    if no_wait:
        return
    with Progress(transient=True) as bar:
        task = bar.add_task("queued", total=None)
        for event in client.events(job.id):
            if event.type == "progress":
                label = f"{event.data.get('phase', '')} {event.data.get('family', '')}".strip()
                bar.update(task, description=label, completed=event.data["done"], total=event.data.get("total"))
            elif event.type == "status":
                bar.update(task, description=event.data.get("status", ""))
            if event.is_end:
                break
    _print_job(client.get(job.id), items=0)


def _print_job(job: Any, items: int) -> None:
    from rich.table import Table

    from switchyard.evaluation import store

    console = _console()
    if job.status.value != "succeeded":
        raise click.ClickException(f"job {job.id} {job.status.value}: {json.dumps(job.error)[:2000]}")
    result = job.result
    table = Table("metric", "aggregate", "items scored", title=f"{job.id} {result.get('name') or ''}".strip())
    for metric, value in result["aggregate"].items():
        table.add_row(metric, _number(value), str(result["scored"].get(metric, "")))
    for metric, why in result.get("unavailable", {}).items():
        table.add_row(metric, "unavailable", why)
    console.print(table)
    console.print(f"{result['items']} items, {result['failed']} failed")
    for failure in result["failed_items"][:20]:
        console.print(f"  [red]{failure['id']}[/red]: {failure['error']}")
    if "review" in result:
        console.print(f"review {result['review']['id']}: {result['review']['status']}")
    if items:
        rows = store.load_items(job.id)[:items]
        detail = Table("id", "prediction", *result["aggregate"])
        for row in rows:
            detail.add_row(row["item_id"], (row["prediction"] or "")[:60],
                           *[_number(row["scores"].get(m, "")) for m in result["aggregate"]])
        console.print(detail)


@eval_cli.command("show")
@click.argument("job_id")
@click.option("--items", type=int, default=10, help="per-item rows to print")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(job_id: str, items: int, as_json: bool) -> None:
    """An eval job's aggregate scores, failed items and first per-item scores."""
    from switchyard.evaluation.compare import EvalJobNotFound, eval_job

    try:
        job = eval_job(job_id, "default")
    except EvalJobNotFound as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(job.to_dict(), default=str, indent=2))
        return
    _print_job(job, items)


@eval_cli.command("compare")
@click.argument("job_a")
@click.argument("job_b")
@click.option("--png", "png", type=click.Path(dir_okay=False), default="eval-compare.png", show_default=True)
@click.option("--resamples", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--confidence", type=float, default=0.95, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def compare_cmd(job_a: str, job_b: str, png: str, resamples: int, seed: int, confidence: float,
                as_json: bool) -> None:
    """B − A per metric with a paired bootstrap interval and p-value; writes a PNG chart."""
    from rich.table import Table

    from switchyard.evaluation.compare import EvalJobNotFound, compare_jobs

    try:
        report = compare_jobs(job_a, job_b, tenant="default", resamples=resamples, seed=seed,
                              confidence=confidence, chart=png)
    except EvalJobNotFound as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    table = Table("metric", "A", "B", "B − A", f"{confidence:.0%} interval", "p", "items",
                  title=f"A = {job_a}  B = {job_b}")
    for m in report.metrics.values():
        table.add_row(m.name, f"{m.a:.4f}", f"{m.b:.4f}", f"{m.delta:+.4f}", f"[{m.low:+.4f}, {m.high:+.4f}]",
                      f"{m.p_value:.3g}", str(m.paired_items))
    console = _console()
    console.print(table)
    if report.chart:
        console.print(f"chart: {report.chart}")
