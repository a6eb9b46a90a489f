"""Agent pool settings: environment variables prefixed ``SWITCHYARD_AGENT_``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchyard.config import get_settings


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_AGENT_", extra="ignore")

    # The collection a run searches when its input names none (`switchyard dev`: the demo corpus).
    default_collection: str = "default"
    retrieval_k: int = 5
    retrieval_mode: str = "hybrid"
    # Databases the read-only SQL tool may query, {"name": url}; unset: switchyard's own database. Own
    # database (any user in the URL) is always queried as the reader role, through the run's tenant's
    # views; other URLs are used as given: shared data only, with a read-only role (docs/security-db.md).
    sql_databases: dict[str, str] = Field(default_factory=dict)
    # USD per million tokens, {"model name": {"input": 0.15, "output": 0.6}}; unknown models cost 0.
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    max_tool_rounds: int = 4
    recursion_limit: int = 50
    # Checkpointer connections per worker process (one pool shared by the pool's threads).
    checkpoint_pool_size: int = 20
    # "sync": a step's checkpoint is stored before the next step starts, so a killed worker repeats at
    # most the step it was in (completed tool calls never run twice). "async" overlaps the write with
    # the next step (faster; a crash may repeat one step); "exit" writes only at the end of the run.
    durability: Literal["sync", "async", "exit"] = "sync"
    # Checkpoint commits without waiting for the WAL flush (Postgres `synchronous_commit=off`): a worker
    # crash loses nothing (the server has the commit); only a Postgres crash can lose the last ~0.6 s of
    # checkpoints, and the redelivered run then repeats that step. Set true to wait for the flush.
    checkpoint_synchronous_commit: bool = False
    # Threads idle longer than this are pruned by the control pool: "keep_latest" keeps the
    # conversation (latest checkpoint) and drops history; "delete" forgets the thread.
    checkpoint_ttl_s: float = 30 * 24 * 3600
    prune_strategy: Literal["keep_latest", "delete"] = "keep_latest"

    def databases(self) -> dict[str, str]:
        if self.sql_databases:
            return dict(self.sql_databases)
        url = get_settings().database_url
        return {"switchyard": url} if url else {}


@lru_cache(maxsize=1)
def get_agent_settings() -> AgentSettings:
    return AgentSettings()


def reload_agent_settings() -> AgentSettings:
    get_agent_settings.cache_clear()
    return get_agent_settings()
