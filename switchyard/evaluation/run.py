"""The body of ``switchyard.eval.run``: items → (generate) → metrics → per-item rows + aggregate result.

    load the items (inline, the tenant's file, or a path under the file roots)
    → generate predictions (optional) → score family by family, reporting progress
    → store one row per item (scores, reasons it failed) → open a human review (optional) → result
"""

from __future__ import annotations

import logging
from typing import Any

from switchyard.context import JobContext
from switchyard.errors import ConfigurationError, InputRefused, InvalidParamsError
from switchyard.evaluation import datasets, store
from switchyard.evaluation.generate import fill_predictions
from switchyard.evaluation.metrics import Options, Scored, score
from switchyard.evaluation.schemas import EvalParams, Item

log = logging.getLogger("switchyard.evaluation")


def precheck(params: EvalParams, job: Any) -> None:
    """Before the claim: a dataset file that fails its schema, or a reference directory outside the file
    roots, or a judge model that does not resolve, fails the job in validation."""
    datasets.load_items(params, job.tenant)
    if params.reference_images is not None:
        datasets.check_directory(params.reference_images, ("reference_images",))
    if "citation_support_judge" in params.metrics:
        from switchyard.llm.factory import model_spec

        try:
            model_spec(params.judge.model if params.judge else None)  # resolves the name; loads nothing
        except (ConfigurationError, InputRefused) as exc:
            raise InvalidParamsError(datasets.TASK, [{"loc": ("judge", "model"), "msg": str(exc),
                                                      "type": "value_error"}]) from None


def evaluate(params: EvalParams, items: list[Item], ctx: JobContext) -> dict[str, Any]:
    """Score ``items``; returns the job result and stores per-item rows under ``ctx.job_id``."""
    errors: dict[str, dict[str, str]] = {item.id: {} for item in items}
    if params.generate is not None:
        ctx.message(f"generating {len(items)} predictions")

        def step(done: int, total: int) -> None:
            ctx.raise_if_stopped()
            if done == total or done % 10 == 0:
                ctx.progress(done, total, phase="generate")

        items, failed = fill_predictions(items, params.generate, ctx.tenant, step)
        for item_id, reason in failed.items():
            errors[item_id]["generate"] = reason
    scorable = [item for item in items if "generate" not in errors[item.id]]

    def scored(family: str, done: int, total: int) -> None:
        ctx.progress(done, total, phase="score", family=family)
        ctx.raise_if_stopped()

    options = Options(tenant=ctx.tenant, clip_model=params.clip_model,
                      lm_base=params.lm.base_model if params.lm else None,
                      lm_adapter=params.lm.adapter if params.lm else None, progress=scored, seed=params.seed,
                      reference_images=params.reference_images, judge=params.judge)
    results: dict[str, Scored] = score(params.metrics, scorable, options)
    for name, scored in results.items():
        for item_id, reason in scored.failed.items():
            errors[item_id][name] = reason

    rows = []
    for position, item in enumerate(items):
        rows.append({
            "item_id": item.id, "position": position, "prediction": item.prediction,
            "scores": {m: s.per_item[item.id] for m, s in results.items() if item.id in s.per_item},
            "stats": {m: s.stats[item.id] for m, s in results.items() if item.id in s.stats},
            "errors": errors[item.id], "item": item.model_dump(exclude_none=True),
        })
    store.save_items(ctx.job_id, rows)
    aggregate = {m: s.aggregate for m, s in results.items() if s.aggregate is not None}
    failed_items = [{"id": item_id, "error": "; ".join(reasons.values())}
                    for item_id, reasons in errors.items() if reasons]
    result: dict[str, Any] = {
        "aggregate": aggregate, "items": len(items), "failed": len(failed_items), "failed_items": failed_items,
        "scored": {m: len(s.per_item) if s.count is None else s.count for m, s in results.items()},
    }
    if unavailable := {m: s.unavailable for m, s in results.items() if s.unavailable}:
        result["unavailable"] = unavailable
    if params.name:
        result["name"] = params.name
    ctx.metrics(**{k: v for k, v in aggregate.items()})
    return result


def eval_job(params: EvalParams, ctx: JobContext) -> dict[str, Any]:
    """``switchyard.eval.run`` (see ``switchyard.evaluation.schemas`` for the contract)."""
    items = datasets.load_items(params, ctx.tenant)
    result = evaluate(params, items, ctx)
    if params.review is not None:
        from switchyard.evaluation import review

        result["review"] = review.open_review(ctx.job_id, ctx.tenant, params.review,
                                              [i.id for i in items if i.id not in
                                               {f["id"] for f in result["failed_items"]}])
    return result
