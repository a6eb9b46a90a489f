"""OpenAI-compatible ``/v1/fine_tuning/jobs``: create, list, retrieve, cancel, events, checkpoints.

A fine-tuning job is a ledger job of kind ``switchyard.finetune.train``; its OpenAI id is
``ftjob-<job id>``. Statuses are the ledger's (``validating_files``, ``queued``, ``running``,
``succeeded``, ``failed``, ``cancelled``). Events come from the job's durable event log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query
from pydantic import ValidationError

from switchyard import dispatch, events, jobs
from switchyard.api.auth import current_tenant
from switchyard.api.openai_files import OpenAIError, not_found
from switchyard.api.openai_files import install as install  # same error handler; installing twice is a no-op
from switchyard.errors import InvalidParamsError
from switchyard.finetune import checkpoints, files
from switchyard.finetune.schemas import TrainParams
from switchyard.jobs import Job, JobStatus

router = APIRouter(prefix="/v1/fine_tuning", tags=["openai: fine-tuning"])
Tenant = Annotated[str, Depends(current_tenant)]

TASK = "switchyard.finetune.train"
PREFIX = "ftjob-"
EVENT_PREFIX = "ftevent-"

LISTED_EVENT_TYPES = ["status", "metrics", "message"]


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def _job(ft_id: str, tenant: str) -> Job:
    job = jobs.find(ft_id.removeprefix(PREFIX))
    if job is None or job.kind != TASK or job.tenant != tenant:
        raise not_found("fine-tune job", ft_id)
    return job


def _error(job: Job) -> dict[str, Any] | None:
    if job.status is not JobStatus.FAILED or not job.error:
        return None
    details = job.error.get("errors") or []
    param = None
    if details and details[0].get("loc"):
        param = str(details[0]["loc"][0])
    if job.error.get("type") == "invalid_params":
        lines = "; ".join(f"{' '.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}".lstrip(": ")
                          for d in details[:20])
        code = {"training_file": "invalid_training_file", "validation_file": "invalid_validation_file",
                "model": "model_not_found"}.get(param or "", "invalid_params")
        return {"code": code, "message": f"{param}: {lines}" if param else job.error.get("message"),
                "param": param}
    return {"code": "training_failed", "message": job.error.get("message", "training failed"), "param": None}


def to_openai(job: Job) -> dict[str, Any]:
    """The ``fine_tuning.job`` object."""
    params = job.params
    result = job.result if isinstance(job.result, dict) else {}
    method = params.get("method") or {"type": "lora"}
    try:
        hyper = TrainParams.model_validate(params).resolved_hyperparameters()
        requested = {"n_epochs": hyper.n_epochs, "batch_size": hyper.batch_size,
                     "learning_rate_multiplier": hyper.learning_rate_multiplier}
    except ValidationError:
        requested = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    return {
        "id": f"{PREFIX}{job.id}",
        "object": "fine_tuning.job",
        "created_at": _ts(job.created_at),
        "finished_at": _ts(job.finished_at),
        "model": params.get("model"),
        "fine_tuned_model": result.get("fine_tuned_model"),
        "organization_id": job.tenant,
        "status": job.status.value,
        "training_file": params.get("training_file"),
        "validation_file": params.get("validation_file"),
        "hyperparameters": result.get("hyperparameters") or requested,
        "method": method,
        "result_files": [],
        "trained_tokens": result.get("trained_tokens"),
        "seed": result.get("seed", params.get("seed")),
        "suffix": params.get("suffix"),
        "user_provided_suffix": params.get("suffix"),
        "metadata": params.get("metadata"),
        "integrations": params.get("integrations"),
        "estimated_finish": None,
        "error": _error(job),
    }


@router.post("/jobs", summary="Create a fine-tuning job")
def create_job(tenant: Tenant, body: Annotated[dict[str, Any], Body()],
               idempotency_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    try:
        params = TrainParams.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise OpenAIError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param) from None
    try:
        from switchyard.finetune.models import UnknownModelError, resolve_model

        resolve_model(params.model, convert=False)  # a built-in model converts in the worker, not here
    except UnknownModelError as exc:
        raise OpenAIError(404, str(exc), param="model", code="model_not_found") from None
    for field in ("training_file", "validation_file"):
        ref = getattr(params, field)
        if ref and ref.startswith("file-"):
            try:
                files.get_file(ref, tenant)
            except files.FileNotFound:
                raise OpenAIError(400, f"invalid {field}: {ref}", param=field) from None
    try:
        job, _created = dispatch.enqueue(
            TASK, params.model_dump(mode="json", exclude_unset=True), idempotency_key=idempotency_key,
            producer="openai", tenant=tenant, status=JobStatus.VALIDATING_FILES,
        )
    except InvalidParamsError as exc:
        raise OpenAIError(400, str(exc)) from None
    return to_openai(job)


@router.get("/jobs", summary="List fine-tuning jobs, newest first")
def list_jobs(tenant: Tenant, after: str | None = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    before = _job(after, tenant).created_at if after else None
    found = jobs.list_jobs(kind=TASK, tenant=tenant, before=before, limit=limit + 1)
    return {"object": "list", "data": [to_openai(j) for j in found[:limit]], "has_more": len(found) > limit}


@router.get("/jobs/{ft_id}", summary="A fine-tuning job")
def retrieve_job(ft_id: str, tenant: Tenant) -> dict[str, Any]:
    return to_openai(_job(ft_id, tenant))


@router.post("/jobs/{ft_id}/cancel", summary="Cancel a fine-tuning job (stops at the next step)")
def cancel_job(ft_id: str, tenant: Tenant) -> dict[str, Any]:
    job = _job(ft_id, tenant)
    if job.status.is_terminal:
        raise OpenAIError(400, f"Job has already completed: {ft_id} is {job.status.value}", param="fine_tuning_job_id")
    return to_openai(dispatch.cancel(job.id))


def _event(job: Job, row: dict[str, Any]) -> dict[str, Any]:
    data = row["data"] or {}
    kind, level = "message", "info"
    if row["type"] == "status":
        message = f"Job status: {data.get('status')}"
        if data.get("status") == "failed":
            level = "error"
            message = f"{message}: {(data.get('error') or {}).get('message', '')}".rstrip(": ")
        elif data.get("reason"):
            message = f"{message} ({data['reason']})"
    elif row["type"] == "metrics":
        kind = "metrics"
        if "train_loss" in data:
            message = f"Step {data.get('step')}/{data.get('total_steps')}: training loss={data['train_loss']:.4f}"
            if "eval_loss" in data:
                message += f", validation loss={data['eval_loss']:.4f}"
        else:
            message = f"Trainable parameters: {data.get('trainable_params')} of {data.get('total_params')}"
    else:
        message = str(data.get("text", ""))
    return {"id": f"{EVENT_PREFIX}{row['seq']}", "object": "fine_tuning.job.event", "created_at": int(row["ts"]),
            "level": level, "message": message, "type": kind, "data": data}


@router.get("/jobs/{ft_id}/events", summary="A fine-tuning job's events, newest first")
def list_events(ft_id: str, tenant: Tenant, after: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict[str, Any]:
    job = _job(ft_id, tenant)
    before = int(after.removeprefix(EVENT_PREFIX)) if after and after.removeprefix(EVENT_PREFIX).isdigit() else 2**31
    rows = events.durable_events_before(job.id, LISTED_EVENT_TYPES, before, limit + 1)
    return {"object": "list", "data": [_event(job, r) for r in rows[:limit]], "has_more": len(rows) > limit}


@router.get("/jobs/{ft_id}/checkpoints", summary="A fine-tuning job's checkpoints, newest first")
def list_checkpoints(ft_id: str, tenant: Tenant, after: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
    job = _job(ft_id, tenant)
    found = checkpoints.list_checkpoints(job.id, after=after, limit=limit + 1)
    base = (job.result or {}).get("fine_tuned_model") if isinstance(job.result, dict) else None
    data = []
    for ckpt in found[:limit]:
        m = ckpt.metrics
        data.append({
            "id": ckpt.id, "object": "fine_tuning.job.checkpoint", "created_at": _ts(ckpt.created_at),
            "fine_tuning_job_id": f"{PREFIX}{job.id}", "step_number": ckpt.step,
            "fine_tuned_model_checkpoint": f"{base or f'{PREFIX}{job.id}'}:ckpt-step-{ckpt.step}",
            "metrics": {"step": ckpt.step, "train_loss": m.get("train_loss"),
                        "train_mean_token_accuracy": m.get("train_token_accuracy"),
                        "valid_loss": m.get("eval_loss"), "valid_mean_token_accuracy": m.get("eval_token_accuracy"),
                        "full_valid_loss": m.get("eval_loss"),
                        "full_valid_mean_token_accuracy": m.get("eval_token_accuracy")},
            "path": ckpt.path,
        })
    return {"object": "list", "data": data, "has_more": len(found) > limit,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
