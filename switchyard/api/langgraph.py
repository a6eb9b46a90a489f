"""LangGraph Platform-compatible agent API: assistants, threads, runs (create, wait, stream, join,
cancel), thread state and history — so ``langgraph_sdk`` clients and UIs can drive switchyard's agents.

Glue only: a run is a ``switchyard.agent.run`` job (run_id = job id) sent through ``dispatch``; its
status is its job's in the ledger, in LangGraph's words (``threads.get_run``); its stream is the job's event
log; state and history come from the ``PostgresSaver``. Assistants are the
registered graphs (``assistant_id`` = graph name).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from switchyard import dispatch, events, jobs
from switchyard.agents import threads
from switchyard.agents.schemas import CommandParams, MultitaskStrategy, RunConfig, StreamMode
from switchyard.api.auth import current_tenant
from switchyard.api.errors import APIError
from switchyard.api.jobs import _event_stream
from switchyard.api.sse import EventStream
from switchyard.errors import InvalidParamsError

router = APIRouter(tags=["agents (LangGraph-compatible)"])
Tenant = Annotated[str, Depends(current_tenant)]
WAIT_TIMEOUT_S = 3600.0


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    return value.isoformat()


# --- assistants ----------------------------------------------------------------------------------------

def _assistant(name: str) -> dict[str, Any]:
    from switchyard.agents.graph_catalog import get_spec

    spec = get_spec(name)
    return {"assistant_id": spec.name, "graph_id": spec.name, "name": spec.name, "description": spec.description,
            "config": {}, "context": {}, "metadata": {}, "version": 1, "created_at": None, "updated_at": None}


def _known_assistant(assistant_id: str) -> str:
    from switchyard.agents.graph_catalog import graphs

    known = graphs()
    if assistant_id not in known:
        raise APIError(status.HTTP_404_NOT_FOUND, "not_found",
                       f"no assistant {assistant_id!r}; known: {sorted(known)}")
    return assistant_id


@router.post("/assistants/search", summary="List assistants (one per registered graph)")
def search_assistants(tenant: Tenant, body: Annotated[dict[str, Any] | None, Body()] = None) -> list[dict]:
    from switchyard.agents.graph_catalog import graphs

    graph_id = (body or {}).get("graph_id")
    return [_assistant(n) for n in graphs() if graph_id in (None, n)]


@router.get("/assistants/{assistant_id}", summary="Get an assistant")
def get_assistant(assistant_id: str, tenant: Tenant) -> dict[str, Any]:
    return _assistant(_known_assistant(assistant_id))


@router.get("/assistants/{assistant_id}/graph", summary="The assistant's graph (nodes and edges)")
def get_assistant_graph(assistant_id: str, tenant: Tenant, xray: bool = False) -> dict[str, Any]:
    from switchyard.agents.graph_catalog import build_graph

    return build_graph(_known_assistant(assistant_id)).get_graph(xray=xray).to_json()


# --- threads -------------------------------------------------------------------------------------------

class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    thread_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: str = Field(default="raise", pattern="^(raise|do_nothing)$")


def _thread_out(row: dict[str, Any], values: Any = None) -> dict[str, Any]:
    return {"thread_id": row["thread_id"], "created_at": _ts(row["created_at"]), "updated_at": _ts(row["updated_at"]),
            "metadata": {**row["metadata"], "graph_id": row["graph"]}, "status": row["status"],
            "values": values if values is not None else {}, "interrupts": {}}


def _tenant_thread(thread_id: str, tenant: str) -> dict[str, Any]:
    try:
        row = threads.get_thread(thread_id)
    except threads.ThreadNotFoundError:
        row = None
    if row is None or row["tenant"] != tenant:
        raise APIError(status.HTTP_404_NOT_FOUND, "not_found", f"no thread {thread_id}")
    return row


@router.post("/threads", summary="Create a thread")
def create_thread(tenant: Tenant, body: Annotated[ThreadCreate | None, Body()] = None) -> dict[str, Any]:
    body = body or ThreadCreate()
    thread_id = body.thread_id or str(uuid.uuid4())
    try:
        existing = threads.get_thread(thread_id)
    except threads.ThreadNotFoundError:
        existing = None
    if existing is not None:
        if body.if_exists == "raise" or existing["tenant"] != tenant:
            raise APIError(status.HTTP_409_CONFLICT, "conflict", f"thread {thread_id} exists")
        return _thread_out(existing)
    return _thread_out(threads.ensure_thread(thread_id, tenant=tenant, metadata=body.metadata))


@router.post("/threads/search", summary="Search threads")
def search_threads(tenant: Tenant, body: Annotated[dict[str, Any] | None, Body()] = None) -> list[dict]:
    body = body or {}
    rows = threads.search_threads(tenant, metadata=body.get("metadata"), status=body.get("status"),
                                  limit=int(body.get("limit", 10)), offset=int(body.get("offset", 0)))
    return [_thread_out(r) for r in rows]


@router.get("/threads/{thread_id}", summary="Get a thread, with its current values")
def get_thread(thread_id: str, tenant: Tenant) -> dict[str, Any]:
    row = _tenant_thread(thread_id, tenant)
    state = _state(row)
    return _thread_out(row, state["values"] if state else None)


@router.delete("/threads/{thread_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a thread")
def delete_thread(thread_id: str, tenant: Tenant) -> Response:
    from switchyard.agents.checkpointer import get_checkpointer

    _tenant_thread(thread_id, tenant)
    get_checkpointer().delete_thread(thread_id)
    threads.delete_thread(thread_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _graph_for(row: dict[str, Any]) -> Any:
    from switchyard.agents.checkpointer import get_checkpointer
    from switchyard.agents.graph_catalog import build_graph

    # Reading state runs no node: no model or retriever needed.
    return build_graph(row["graph"], None, None, get_checkpointer())


def _snapshot_out(snapshot: Any) -> dict[str, Any]:
    from switchyard.agents.streaming import to_jsonable

    cfg = snapshot.config["configurable"]
    parent = snapshot.parent_config["configurable"] if snapshot.parent_config else None
    return {
        "values": to_jsonable(snapshot.values), "next": list(snapshot.next),
        "tasks": [{"id": t.id, "name": t.name, "interrupts": to_jsonable(list(t.interrupts)),
                   "error": t.error and str(t.error)} for t in snapshot.tasks],
        "interrupts": to_jsonable(list(snapshot.interrupts)),
        "checkpoint": {k: cfg.get(k) for k in ("thread_id", "checkpoint_ns", "checkpoint_id")},
        "parent_checkpoint": {k: parent.get(k) for k in ("thread_id", "checkpoint_ns", "checkpoint_id")}
        if parent else None,
        "metadata": to_jsonable(snapshot.metadata), "created_at": snapshot.created_at,
    }


def _state(row: dict[str, Any]) -> dict[str, Any] | None:
    if not row.get("graph"):
        return None
    snapshot = _graph_for(row).get_state({"configurable": {"thread_id": row["thread_id"]}})
    return _snapshot_out(snapshot) if snapshot.config.get("configurable", {}).get("checkpoint_id") else None


@router.get("/threads/{thread_id}/state", summary="The thread's current state")
def get_thread_state(thread_id: str, tenant: Tenant) -> dict[str, Any]:
    row = _tenant_thread(thread_id, tenant)
    return _state(row) or {"values": {}, "next": [], "tasks": [], "interrupts": [], "checkpoint": None,
                           "parent_checkpoint": None, "metadata": {}, "created_at": None}


class StateUpdate(BaseModel):
    """LangGraph's state update: ``values`` written as if ``as_node`` had returned them."""

    model_config = ConfigDict(extra="ignore")
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint_id: str | None = None


@router.post("/threads/{thread_id}/state", summary="Update the thread's state, as if a node wrote it")
def update_thread_state(thread_id: str, body: StateUpdate, tenant: Tenant) -> dict[str, Any]:
    row = _tenant_thread(thread_id, tenant)
    if not row.get("graph"):
        raise APIError(status.HTTP_409_CONFLICT, "conflict", f"thread {thread_id} has not run a graph yet")
    configurable = {"thread_id": thread_id}
    if body.checkpoint_id:
        configurable["checkpoint_id"] = body.checkpoint_id
    # The thread's row stays locked while the state is written, so no run can take the thread meanwhile.
    with threads.locked_thread(thread_id) as active_run:
        if active_run:
            raise APIError(status.HTTP_409_CONFLICT, "conflict", f"thread {thread_id} is busy with run {active_run}")
        try:
            written = _graph_for(row).update_state({"configurable": configurable}, body.values,
                                                   as_node=body.as_node)
        except (ValueError, KeyError) as exc:  # LangGraph's answer to an unknown node or a bad update
            raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request", str(exc)) from None
    saved = written["configurable"]
    return {"checkpoint": {k: saved.get(k) for k in ("thread_id", "checkpoint_ns", "checkpoint_id")}}


def _history(thread_id: str, tenant: str, limit: int) -> list[dict]:
    row = _tenant_thread(thread_id, tenant)
    if not row.get("graph"):
        return []
    graph = _graph_for(row)
    return [_snapshot_out(s) for s in graph.get_state_history({"configurable": {"thread_id": thread_id}},
                                                               limit=limit)]


@router.get("/threads/{thread_id}/history", summary="The thread's checkpoints, newest first")
def get_thread_history(thread_id: str, tenant: Tenant, limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> list:
    return _history(thread_id, tenant, limit)


@router.post("/threads/{thread_id}/history", summary="The thread's checkpoints, newest first")
def post_thread_history(thread_id: str, tenant: Tenant,
                        body: Annotated[dict[str, Any] | None, Body()] = None) -> list:
    return _history(thread_id, tenant, int((body or {}).get("limit", 10)))


# --- runs ----------------------------------------------------------------------------------------------

class RunCreate(BaseModel):
    """LangGraph's run request (the fields switchyard honours)."""

    model_config = ConfigDict(extra="ignore")
    assistant_id: str
    input: dict[str, Any] | None = None
    command: CommandParams | None = None
    config: RunConfig = Field(default_factory=RunConfig)
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: StreamMode | list[StreamMode] = Field(default_factory=lambda: ["values"])
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: str = Field(default="reject", pattern="^(reject|create)$")


def _run_out(job: jobs.Job, run: dict[str, Any] | None) -> dict[str, Any]:
    params = job.params or {}
    return {"run_id": job.id, "thread_id": params.get("thread_id"), "assistant_id": params.get("graph"),
            "created_at": _ts(job.created_at), "updated_at": _ts(job.updated_at),
            "status": (run or {}).get("status") or "pending", "job_status": job.status.value,
            "metadata": (run or {}).get("metadata") or {}, "multitask_strategy": params.get("multitask_strategy"),
            "usage": (run or {}).get("usage"), "ttft_ms": (run or {}).get("ttft_ms"),
            "cost_usd": (run or {}).get("cost_usd"), "error": job.error}


def _start_run(thread_id: str, tenant: str, body: RunCreate, *, new_thread: bool = False) -> jobs.Job:
    """Record the run and send its job. ``new_thread``: ``thread_id`` is a fresh id (a stateless run), created
    here with the run in one statement."""
    graph = _known_assistant(body.assistant_id)
    if not new_thread:
        try:
            row = threads.get_thread(thread_id)
        except threads.ThreadNotFoundError:
            if body.if_not_exists != "create":
                raise APIError(status.HTTP_404_NOT_FOUND, "not_found", f"no thread {thread_id}") from None
            row = threads.ensure_thread(thread_id, tenant=tenant, graph=graph)
        if row["tenant"] != tenant:
            raise APIError(status.HTTP_404_NOT_FOUND, "not_found", f"no thread {thread_id}")
    params: dict[str, Any] = {
        "graph": graph, "thread_id": thread_id, "config": body.config.model_dump(exclude_defaults=True),
        "stream_mode": [body.stream_mode] if isinstance(body.stream_mode, str) else body.stream_mode,
        "multitask_strategy": body.multitask_strategy,
    }
    if body.input is not None:
        params["input"] = body.input
    if body.command is not None:
        params["command"] = body.command.model_dump(exclude_none=True)
    run_id = jobs.new_job_id()
    # Recorded before the message is sent, so first-come-first-served queueing sees it in order; with
    # "reject", a thread with a run pending or running refuses it here, at once, as LangGraph Platform does.
    reserve = threads.reserve_run_on_new_thread if new_thread else threads.reserve_run
    try:
        reserve(run_id, thread_id, graph, tenant=tenant, strategy=body.multitask_strategy, metadata=body.metadata)
    except threads.ThreadBusyError as exc:
        raise APIError(status.HTTP_409_CONFLICT, "thread_busy", str(exc)) from None
    try:
        job, _ = dispatch.enqueue("agent.run", params, job_id=run_id, tenant=tenant, producer="langgraph-api")
    except Exception as exc:
        # A run whose job was never recorded (refused params, a full queue) must not hold the thread.
        threads.forget_run(run_id)
        if isinstance(exc, InvalidParamsError):
            raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_params", str(exc),
                           details=exc.errors) from None
        raise
    return job


def _tenant_run(thread_id: str, run_id: str, tenant: str) -> jobs.Job:
    job = jobs.find(run_id)
    if job is None or job.tenant != tenant or (job.params or {}).get("thread_id") != thread_id:
        raise APIError(status.HTTP_404_NOT_FOUND, "not_found", f"no run {run_id} on thread {thread_id}")
    return job


def _join(job: jobs.Job) -> dict[str, Any]:
    """Wait for the run to end; LangGraph answers with the thread's values (or the error).

    The answer is read off the job's ``end`` event, which carries the ledger row's final status, error and
    result (``runner.announce_end`` publishes it from the row once the finish is durable), so the ledger is
    not read again; an ``end`` without them (none is published so) falls back to the row."""
    end: dict[str, Any] = {}
    for event in events.subscribe(job.id, timeout=WAIT_TIMEOUT_S):
        if event.is_end:
            end = event.data
    if "status" in end:
        status_, result, error = jobs.JobStatus(end["status"]), end.get("result"), end.get("error")
    else:
        ended = jobs.get(job.id)
        status_, result, error = ended.status, ended.result, ended.error
    if status_ is jobs.JobStatus.SUCCEEDED and isinstance(result, dict):
        values = result.get("values", {})
        if result.get("interrupts"):
            return {**values, "__interrupt__": result["interrupts"]}
        return values
    return {"__error__": error or {"type": status_.value}}


@router.post("/threads/{thread_id}/runs", summary="Create a background run")
def create_run(thread_id: str, body: RunCreate, tenant: Tenant) -> dict[str, Any]:
    job = _start_run(thread_id, tenant, body)
    return _run_out(job, threads.get_run(job.id))


@router.post("/threads/{thread_id}/runs/wait", summary="Create a run and wait for its final values")
def wait_run(thread_id: str, body: RunCreate, tenant: Tenant) -> dict[str, Any]:
    return _join(_start_run(thread_id, tenant, body))


@router.post("/runs/wait", summary="Stateless run on a new thread; wait for its final values")
def wait_stateless(body: RunCreate, tenant: Tenant) -> dict[str, Any]:
    return _join(_start_run(str(uuid.uuid4()), tenant, body, new_thread=True))


@router.get("/threads/{thread_id}/runs", summary="List a thread's runs, newest first")
def list_runs(thread_id: str, tenant: Tenant, limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> list[dict]:
    _tenant_thread(thread_id, tenant)
    out = []
    for run in threads.list_runs(thread_id, limit):
        if (job := jobs.find(run["run_id"])) is not None:
            out.append(_run_out(job, run))
    return out


@router.get("/threads/{thread_id}/runs/{run_id}", summary="Get a run")
def get_run(thread_id: str, run_id: str, tenant: Tenant) -> dict[str, Any]:
    return _run_out(_tenant_run(thread_id, run_id, tenant), threads.get_run(run_id))


@router.get("/threads/{thread_id}/runs/{run_id}/join", summary="Wait for a run; its final values")
def join_run(thread_id: str, run_id: str, tenant: Tenant) -> dict[str, Any]:
    return _join(_tenant_run(thread_id, run_id, tenant))


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", summary="Cancel a run",
             status_code=status.HTTP_202_ACCEPTED)
def cancel_run(thread_id: str, run_id: str, tenant: Tenant, wait: bool = False,
               action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt") -> dict[str, Any]:
    job = _tenant_run(thread_id, run_id, tenant)
    if not job.status.is_terminal:
        dispatch.cancel(job.id)
    if wait or action == "rollback":
        for _event in events.subscribe(job.id, timeout=WAIT_TIMEOUT_S):
            pass
    if action == "rollback":
        from switchyard.agents.checkpointer import delete_after

        run = threads.get_run(run_id) or {}
        if run.get("base_recorded") and jobs.get(job.id).status is jobs.JobStatus.CANCELLED:
            delete_after(thread_id, run.get("base_checkpoint_id"))
            threads.mark_rolled_back(run_id)
    return _run_out(jobs.get(job.id), threads.get_run(run_id))


# --- streaming -----------------------------------------------------------------------------------------

def _to_langgraph(sse: dict[str, str]) -> dict[str, str] | None:
    """A job event (SSE fields) → LangGraph's stream event, or ``None`` for events it has no name for."""
    event = json.loads(sse["data"])
    kind, data = event["type"], event["data"]
    ns = data.get("ns") or []
    suffix = ("|" + "|".join(ns)) if ns else ""
    if kind == "token":
        chunk = {"type": "AIMessageChunk", "content": data["content"], "id": data.get("id")}
        payload: Any = [chunk, {"langgraph_node": data.get("node"), "langgraph_step": data.get("step")}]
        name = "messages"
    elif kind == "values":
        payload, name = data["values"], "values"
    elif kind == "update":
        payload, name = {data["node"]: data["update"]}, "updates"
    elif kind == "custom":
        payload, name = data["data"], "custom"
    elif kind == "end":
        if data.get("status") != "succeeded":
            return {"id": sse["id"], "event": "error", "data": json.dumps(data.get("error") or data)}
        return {"id": sse["id"], "event": "end", "data": "null"}
    else:
        return None
    return {"id": sse["id"], "event": name + suffix, "data": json.dumps(payload, default=str)}


async def _langgraph_stream(job: jobs.Job, after_seq: int) -> AsyncIterator[dict[str, str]]:
    yield {"event": "metadata", "data": json.dumps({"run_id": job.id, "attempt": 1})}
    async for sse in _event_stream(job.id, after_seq):
        if (out := _to_langgraph(sse)) is not None:
            yield out


def _sse(job: jobs.Job, after_seq: int = 0) -> EventSourceResponse:
    """The run's stream, with the same send timeout as ``/jobs/{id}/events`` (a client that stops
    reading is dropped and resumes with Last-Event-ID)."""
    return EventStream(_langgraph_stream(job, after_seq),
                       headers={"Content-Location": f"/threads/{job.params.get('thread_id')}/runs/{job.id}"})


@router.post("/threads/{thread_id}/runs/stream", summary="Create a run and stream it (SSE)",
             response_class=EventSourceResponse)
def stream_run(thread_id: str, body: RunCreate, tenant: Tenant) -> EventSourceResponse:
    return _sse(_start_run(thread_id, tenant, body))


@router.get("/threads/{thread_id}/runs/{run_id}/stream", summary="Join a run's stream (SSE)",
            response_class=EventSourceResponse)
def join_stream(thread_id: str, run_id: str, tenant: Tenant,
                last_event_id: Annotated[str | None, Header()] = None) -> EventSourceResponse:
    job = _tenant_run(thread_id, run_id, tenant)
    return _sse(job, int(last_event_id) if last_event_id and last_event_id.isdigit() else 0)
