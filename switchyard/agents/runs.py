"""Execute one ``switchyard.agent.run``: a graph on a thread, checkpointed in Postgres, streamed as events.

    [ThreadHooks.before_run: take the thread under the run's multitask strategy]
    → build the graph (model, retriever, checkpointer)
    → input, resume command, or — redelivered after a crash — continue from the last checkpoint
    → stream parts to events, stopping at the next part on cancel/shutdown → result and usage
    [ThreadHooks.after_run / on_cancel / on_failure: record the usage, give the thread back]

The thread bookkeeping lives in ``thread_hooks.py``, registered for the task in ``tasks/agent.py``; the
run's status is its job's in the ledger.

Checkpoints are written with ``durability="sync"`` (``SWITCHYARD_AGENT_DURABILITY``, the default): a
step's checkpoint is in Postgres before the next step starts, so a worker killed mid-run loses at most
the step it was in, and completed tool calls are never repeated.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from switchyard._singleton import PerProcess
from switchyard.agents import threads
from switchyard.agents.config import get_agent_settings
from switchyard.agents.schemas import RunParams
from switchyard.agents.thread_hooks import TAKEN, USAGE
from switchyard.context import JobContext

log = logging.getLogger("switchyard.agents.runs")

_heap: PerProcess[bool] = PerProcess()


def _freeze_heap() -> bool:
    """Once per process, after its first graph is loaded: collect, then move everything allocated so far
    (LangGraph, LangChain, pydantic models and the other imports, long-lived anyway) out of the collector's
    reach (``gc.freeze``). A full collection walks every tracked object, and in an agent worker one took
    55-75 ms, stalling the runs in flight (one lone echo run in about 60: its p99). A frozen object that
    becomes garbage is still freed by reference counting; only a cycle among frozen objects would stay."""
    gc.collect()
    gc.freeze()
    return True


def default_retriever(tenant: str = "default"):
    """Collection name → the index pool's retriever (``switchyard.retrieval``), or ``None`` without it."""
    settings = get_agent_settings()
    try:
        from switchyard.retrieval.langchain import SwitchyardRetriever
    except ImportError:
        return None
    return lambda collection: SwitchyardRetriever(collection=collection, tenant=tenant, k=settings.retrieval_k,
                                                  mode=settings.retrieval_mode)


def load_graph(name: str, *, model: Any = None, tenant: str | None = None, checkpointer: Any = None,
               retriever: Any = None) -> Any:
    """A compiled registered graph wired to this process's defaults (model from the factory).

    ``tenant`` is the run's: the retriever searches only its collections and a model it names must be its
    own adapter. ``None`` is the operator (CLI, drawing a graph): tenant ``default``, any adapter.
    """
    from switchyard.agents.checkpointer import get_checkpointer
    from switchyard.agents.compiled import compiled_graphs, configuration, shared_model
    from switchyard.agents.graph_catalog import build_graph, get_spec

    settings = get_agent_settings()

    def build(saver: Any) -> Any:
        from switchyard.llm import get_chat_model

        return build_graph(
            name, get_chat_model(model, tenant=tenant),
            retriever if retriever is not None else default_retriever(tenant or "default"),
            saver,
            default_collection=settings.default_collection, sql_databases=settings.databases(),
            max_tool_rounds=settings.max_tool_rounds,
            tenant=tenant or "default",  # issue 8 (SQL tool): its views show only this tenant's rows
        )

    if checkpointer is not None or retriever is not None or not shared_model(model):
        return build(checkpointer if checkpointer is not None else get_checkpointer())
    # On the process's defaults: the graph built for an earlier run of the same graph, model and tenant
    # (switchyard/agents/compiled.py says what the key holds and why that is safe).
    saver = get_checkpointer()
    key = (name, get_spec(name).builder, model, tenant)
    inputs = (*configuration(), saver)
    return compiled_graphs().get(key, inputs, lambda: build(saver))


def _graph_input(params: RunParams, resuming: bool) -> Any:
    from langgraph.types import Command

    if resuming:
        return None  # continue from the thread's last checkpoint: finished steps are not run again
    if params.command is not None:
        return Command(**params.command.model_dump(exclude_none=True))
    return params.input


def _run_config(params: RunParams, ctx: JobContext, handler: Any) -> dict[str, Any]:
    settings = get_agent_settings()
    return {
        # The run's own keys go last: a caller's configurable cannot name another thread or tenant.
        "configurable": {**params.config.configurable, "thread_id": params.thread_id,
                         "switchyard_tenant": ctx.tenant},
        "recursion_limit": params.config.recursion_limit or settings.recursion_limit,
        "tags": params.config.tags,
        "metadata": {**params.config.metadata, "switchyard_run_id": ctx.job_id, "graph_id": params.graph},
        "callbacks": [handler],
    }


class FinalValues:
    """The run's final state, read off its own stream instead of from Postgres afterwards.

    LangGraph is always asked for ``values`` (and ``updates``, where interrupts show): the last ``values``
    chunk of the root graph is the state its last checkpoint holds. ``values`` is ``None`` when that is not
    certain: the run paused or was interrupted anywhere (``__interrupt__``), produced no root chunk (a
    resumed run with nothing left to do), or the graph streams other channels than its state has (an output
    schema); the caller then reads the state with ``graph.get_state``.
    """

    MODES = ("updates", "values")

    def __init__(self, graph: Any):
        self._same_channels = list(graph.output_channels) == list(graph.stream_channels_asis)
        self._values: Any = None
        self._interrupted = False

    def see(self, part: tuple) -> None:
        ns, mode, chunk = part
        if mode not in self.MODES or not isinstance(chunk, dict):
            return
        if "__interrupt__" in chunk:
            self._interrupted = True
        elif mode == "values" and not ns:
            self._values = chunk

    @property
    def values(self) -> Any:
        return self._values if self._same_channels and not self._interrupted else None


def _base(params: RunParams, ctx: JobContext) -> tuple[str | None, bool]:
    """The thread's head checkpoint and whether the run resumes from it: what ``ThreadHooks`` found taking
    the thread, or (a run without them) recorded here."""
    taken = ctx.scratch.get(TAKEN)
    if taken is not None:
        return taken.head, taken.resuming
    return threads.record_base(ctx.job_id, params.thread_id, ctx.attempt)


def execute_run(params: RunParams, ctx: JobContext) -> dict[str, Any]:
    """The task body of ``switchyard.agent.run``: returns ``{"status", "values", "usage", ...}``. The run
    holds its thread meanwhile (``ThreadHooks``)."""
    from switchyard.agents.executor import install
    from switchyard.agents.streaming import StreamBridge, langgraph_modes, to_jsonable
    from switchyard.agents.token_events import RunCallbackHandler

    install()  # LangGraph's background work on this process's thread pool, not a new pool per run
    settings = get_agent_settings()
    run_id, thread_id, tenant = ctx.job_id, params.thread_id, ctx.tenant
    bridge = StreamBridge(ctx.emit, params.stream_mode)
    handler = RunCallbackHandler(ctx.emit, prices=settings.prices, check_stop=ctx.raise_if_stopped,
                                 started=time.monotonic(), publish_tokens="messages" in bridge.requested)
    try:
        graph = load_graph(params.graph, model=params.config.configurable.get("model"), tenant=tenant)
        _heap.get("frozen", _freeze_heap)  # the first run pays one full collection, no later run does
        # Redelivered after the run had written checkpoints of its own: continue, don't start over.
        head, resuming = _base(params, ctx)
        if resuming:
            ctx.message("resuming from the last checkpoint", checkpoint_id=head, attempt=ctx.attempt)
        config = _run_config(params, ctx, handler)
        modes = sorted(set(langgraph_modes(params.stream_mode)) | set(FinalValues.MODES))
        final = FinalValues(graph)
        for part in graph.stream(_graph_input(params, resuming), config, stream_mode=modes, subgraphs=True,
                                 durability=settings.durability):
            final.see(part)
            bridge.handle(part)
            ctx.raise_if_stopped()
        if (values := final.values) is not None:
            interrupts: list[Any] = []
        else:
            state = graph.get_state({"configurable": {"thread_id": thread_id}})
            values, interrupts = state.values, [to_jsonable(i) for i in state.interrupts]
        usage = handler.summary()
        # Postgres's copy rides the job's finish, which follows at once (Redis has the live event).
        ctx.metrics(usage=usage, ttft_ms=usage["ttft_ms"], cost_usd=usage["cost_usd"], tokens=handler.tokens,
                    defer=True)
        return {"status": "interrupted" if interrupts else "success", "run_id": run_id, "thread_id": thread_id,
                "values": to_jsonable(values), "usage": usage, "interrupts": interrupts}
    finally:
        # What the run used, also when it stops early: the thread hooks record it with the run.
        ctx.scratch[USAGE] = handler.summary()
