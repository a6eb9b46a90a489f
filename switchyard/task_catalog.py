"""The public task catalogue: name → queue and parameter schema (README.md "Celery task names").

Schemas are referenced by dotted path and imported on first use, so the API and the control pool can
validate a fine-tuning message without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from pydantic import BaseModel, ValidationError

from switchyard.errors import InvalidParamsError, UnknownTaskError
from switchyard.secret_params import find_secrets


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: str
    schema: str  # "module:Class" of the pydantic model of the task's kwargs
    description: str = ""

    @property
    def kind(self) -> str:
        """The name without ``switchyard.``: the ``/hooks/{kind}`` path segment."""
        return self.name.removeprefix("switchyard.")


TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    TASKS[spec.name] = spec
    return spec


register(TaskSpec("switchyard.control.ping", "control", "switchyard.housekeeping:PingParams",
                  "Health probe: reports where it ran, works for `seconds` while heartbeating."))
register(TaskSpec("switchyard.index.ingest", "index", "switchyard.retrieval.schemas:IngestParams",
                  "Chunk, embed and load documents into a collection, idempotently."))
register(TaskSpec("switchyard.index.ingest_part", "index", "switchyard.retrieval.schemas:IngestPartParams",
                  "One part of a big index.ingest, sent by that job itself so the whole pool embeds it."))
register(TaskSpec("switchyard.index.delete", "index", "switchyard.retrieval.schemas:DeleteParams",
                  "Delete documents from a collection by id, source or metadata filter."))
register(TaskSpec("switchyard.finetune.train", "finetune", "switchyard.finetune.schemas:TrainParams",
                  "Train a LoRA/QLoRA adapter and register it."))
register(TaskSpec("switchyard.agent.run", "agent", "switchyard.agents.schemas:RunParams",
                  "Run a LangGraph graph on a thread with Postgres checkpoints."))
register(TaskSpec("switchyard.eval.run", "eval", "switchyard.evaluation.schemas:EvalParams",
                  "Score a dataset (optionally generating its predictions) with text, caption, VQA, CLIP, LM "
                  "and RAG metrics."))


def get_spec(name_or_kind: str) -> TaskSpec:
    name = name_or_kind if name_or_kind.startswith("switchyard.") else f"switchyard.{name_or_kind}"
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name_or_kind!r}; known: {sorted(TASKS)}") from None


def queue_for(name: str) -> str:
    spec = TASKS.get(name)
    return spec.queue if spec else name.split(".")[1] if name.count(".") >= 2 else "control"


@cache
def schema_for(name: str) -> type[BaseModel]:
    module, _, attr = get_spec(name).schema.partition(":")
    return getattr(importlib.import_module(module), attr)


def validate_params(name: str, params: dict, *, tenant: str | None = None) -> BaseModel:
    """Parse a task's kwargs; ``InvalidParamsError`` with pydantic's field errors if they don't fit.

    With ``tenant`` (the job's, fixed at the way in), a ``tenant`` field that older producers still put
    in the params must repeat it: a body never chooses whose data a job touches. Params that look like
    secrets are refused first (``switchyard.secret_params``): secrets live in configuration.
    """
    secrets = find_secrets(params)
    if secrets:
        raise InvalidParamsError(name, secrets)
    try:
        parsed = schema_for(name).model_validate(params)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise InvalidParamsError(name, [dict(e) for e in errors]) from None
    claimed = getattr(parsed, "tenant", None)
    if tenant is not None and claimed is not None and claimed != tenant:
        raise InvalidParamsError(name, [{
            "loc": ["tenant"], "type": "tenant_mismatch",
            "msg": f"params name tenant {claimed!r} but the job runs for tenant {tenant!r}; the tenant "
                   "comes from who authenticated (API key, webhook source, switchyard_tenant header)"}])
    return parsed


def json_schema(name: str) -> dict:
    return schema_for(name).model_json_schema()
