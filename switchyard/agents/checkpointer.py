"""LangGraph's ``PostgresSaver``: one per worker process over a psycopg connection pool.

``switchyard migrate`` runs :func:`setup_checkpointer` (LangGraph's own migrations) after the SQL files;
nothing here runs at import. The control pool calls :func:`prune_checkpoints`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from switchyard._singleton import PerProcess
from switchyard.agents.config import get_agent_settings
from switchyard.db import connection, database_url, on_migrate

log = logging.getLogger("switchyard.agents.checkpointer")

_savers: PerProcess[Any] = PerProcess()  # by database URL

# Threads idle past the TTL that no run holds. Oldest first, a batch at a time.
IDLE_THREADS_SQL = """
SELECT thread_id FROM agent_threads
WHERE updated_at < now() - make_interval(secs => %(ttl_s)s) AND active_run IS NULL
ORDER BY updated_at LIMIT %(limit)s
"""
TOUCH_PRUNED_SQL = "UPDATE agent_threads SET updated_at = now() WHERE thread_id = ANY(%(ids)s)"
DELETE_THREADS_SQL = "DELETE FROM agent_threads WHERE thread_id = ANY(%(ids)s)"

# Rollback: what a run wrote after the head the thread had when it began (checkpoint ids are uuid6,
# so they sort by time). PostgresSaver has no per-run delete (`delete_for_runs` is not implemented).
DELETE_AFTER_SQL = (
    "DELETE FROM checkpoint_writes WHERE thread_id = %(thread_id)s AND checkpoint_id > %(after)s",
    "DELETE FROM checkpoints WHERE thread_id = %(thread_id)s AND checkpoint_id > %(after)s",
)


@on_migrate
def setup_checkpointer(url: str) -> None:
    """Create or upgrade LangGraph's checkpoint tables (idempotent)."""
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
    except ImportError:
        log.info("langgraph-checkpoint-postgres not installed; skipping checkpoint tables")
        return
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()


def get_checkpointer() -> Any:
    """This process's ``PostgresSaver``, shared by its threads (keyed by pid: pools never cross a fork)."""
    url = database_url()
    return _savers.get(url, lambda: _new_saver(url))


def _new_saver(url: str) -> Any:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    # The saver's required connection options: autocommit, no server-side prepared
    # statements (pgbouncer-safe), dict rows; and the commit mode (AgentSettings).
    settings = get_agent_settings()
    kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    if not settings.checkpoint_synchronous_commit:
        kwargs["options"] = "-c synchronous_commit=off"
    pool = ConnectionPool(url, min_size=1, max_size=settings.checkpoint_pool_size, kwargs=kwargs,
                          open=True, name=f"switchyard-checkpoints-{os.getpid()}")
    saver = PostgresSaver(pool)
    # PostgresSaver holds one lock around every call, which a single shared connection needs. Over a pool
    # each call takes a connection of its own, so the lock only made the agent pool's run threads (16)
    # queue behind each other's checkpoint round trips: with it, a worker wrote one checkpoint at a time.
    saver.lock = contextlib.nullcontext()
    return saver


def delete_after(thread_id: str, checkpoint_id: str | None) -> None:
    """Drop every checkpoint the thread got after ``checkpoint_id`` (all of them if ``None``)."""
    if checkpoint_id is None:
        get_checkpointer().delete_thread(thread_id)
        return
    with connection() as conn, conn.transaction():
        for sql in DELETE_AFTER_SQL:
            conn.execute(sql, {"thread_id": thread_id, "after": checkpoint_id})


def prune_checkpoints(ttl_s: float | None = None, *, strategy: str | None = None, limit: int = 500) -> int:
    """Prune threads idle longer than ``ttl_s`` with LangGraph's ``prune``; returns how many.

    ``keep_latest`` keeps each thread's latest checkpoint (its conversation) and drops the history;
    ``delete`` removes the thread entirely.
    """
    settings = get_agent_settings()
    ttl_s = settings.checkpoint_ttl_s if ttl_s is None else ttl_s
    strategy = strategy or settings.prune_strategy
    with connection() as conn:
        ids = [r["thread_id"] for r in conn.execute(IDLE_THREADS_SQL, {"ttl_s": ttl_s, "limit": limit})]
    if not ids:
        return 0
    get_checkpointer().prune(ids, strategy=strategy)
    with connection() as conn:
        # Pruned threads leave the idle set until they are used (and idle) again.
        conn.execute(DELETE_THREADS_SQL if strategy == "delete" else TOUCH_PRUNED_SQL, {"ids": ids})
    log.info("pruned checkpoints of %d idle threads (%s)", len(ids), strategy)
    return len(ids)
