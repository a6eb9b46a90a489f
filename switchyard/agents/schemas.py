"""``switchyard.agent.run`` kwargs and result (README.md "Public contracts").

kwargs: ``{"graph", "thread_id", "input" | "command": {"resume": ...}, "config", "stream_mode",
"multitask_strategy"}``; result: ``{"status": "success|interrupted|error", "values", "usage"}``.
Imports neither LangGraph nor a model: the API and producers validate with it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

StreamMode = Literal["values", "updates", "messages", "messages-tuple", "custom"]
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
# A run's status as the API shows it, read off its job in the ledger (view agent_run_states, migration 0010).
RunStatus = Literal["pending", "running", "success", "error", "interrupted", "timeout", "cancelled", "rejected",
                    "rolled_back"]


class CommandParams(BaseModel):
    """LangGraph's ``Command``: resume an interrupted run, optionally updating state or jumping."""

    model_config = ConfigDict(extra="forbid")
    resume: Any = None
    update: dict[str, Any] | None = None
    goto: str | list[str] | None = None


class RunConfig(BaseModel):
    """LangGraph's ``RunnableConfig`` subset a run may set. ``configurable.model`` names the chat model
    (a ``SWITCHYARD_LLM_MODELS`` name, ``provider:model`` or an inline config);
    ``configurable.auto_approve`` lets side-effecting tools run without a human."""

    model_config = ConfigDict(extra="forbid")
    configurable: dict[str, Any] = Field(default_factory=dict)
    recursion_limit: int | None = Field(default=None, ge=1, le=10_000)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunParams(BaseModel):
    """kwargs of ``switchyard.agent.run``."""

    model_config = ConfigDict(extra="forbid")
    graph: str = Field(description="a registered graph name (`switchyard graph list`)")
    thread_id: str = Field(min_length=1, max_length=200, description="conversation whose state persists")
    input: dict[str, Any] | None = Field(
        default=None, description='graph input, e.g. {"messages": [{"role": "user", "content": "..."}]}')
    command: CommandParams | None = Field(default=None, description="resume an interrupted run instead")
    config: RunConfig = Field(default_factory=RunConfig)
    stream_mode: list[StreamMode] = Field(default_factory=lambda: ["updates", "messages", "custom"])
    multitask_strategy: MultitaskStrategy = Field(
        default="enqueue", description="what happens if the thread already has a run in progress")

    @field_validator("graph")
    @classmethod
    def _known_graph(cls, value: str) -> str:
        from switchyard.agents.graph_catalog import graphs  # names only; no graph module is imported

        known = graphs()
        if value not in known:
            raise ValueError(f"unknown graph {value!r}; known: {sorted(known)}")
        return value

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _input_or_command(self) -> RunParams:
        if self.input is not None and self.command is not None:
            raise ValueError("give either 'input' or 'command', not both")
        return self


class RunResult(BaseModel):
    """What a finished ``switchyard.agent.run`` job returns (its ledger ``result``)."""

    status: Literal["success", "interrupted", "error"]
    run_id: str
    thread_id: str
    values: dict[str, Any] = Field(default_factory=dict)
    usage: dict[str, Any] = Field(default_factory=dict)
    interrupts: list[dict[str, Any]] = Field(default_factory=list)
