"""One thread pool per process for LangGraph's background work, instead of one per run.

LangGraph's sync loop opens a ``ThreadPoolExecutor`` for every ``graph.stream`` (``BackgroundExecutor`` calls
``get_executor_for_config``) and submits each checkpoint write to it, so every run started at least one
thread and shut its pool down at the end. In the agent pool (16 runs at once in one process) those thread
starts queue on ``concurrent.futures``' process-wide lock, which each start holds until the new thread has
run: the runs' checkpoint writes waited on each other's thread starts. Here the pool is shared and its
threads stay: a submit reuses an idle one.

What does not change: ``BackgroundExecutor`` still waits on exit for every task it submitted (its own
bookkeeping; the pool's shutdown was not needed for that), and a run whose config sets
``max_concurrency`` gets its own pool of that size, as before. The shared pool's bound only has to be out of
reach: a task may wait on another one queued after it (a node running a subgraph that writes checkpoints),
so a small bound could deadlock; its threads are made only when no idle one is there, so their number
stays near the peak of tasks running at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

from switchyard._singleton import PerProcess

log = logging.getLogger("switchyard.agents.executor")

MAX_WORKERS = 1024

_pools: PerProcess[Any] = PerProcess()
_original: Any = None  # LangGraph's own get_executor_for_config, once ours is installed
_install_lock = threading.Lock()


def shared_pool() -> Executor:
    """This process's pool (LangChain's ``ContextThreadPoolExecutor``: each task runs in a copy of the
    submitter's context, as in a per-run pool)."""
    from langchain_core.runnables.config import ContextThreadPoolExecutor

    return _pools.get("langgraph", lambda: ContextThreadPoolExecutor(
        max_workers=MAX_WORKERS, thread_name_prefix="switchyard-langgraph"))


@contextmanager
def _executor_for_config(config: Any) -> Iterator[Executor]:
    if (config or {}).get("max_concurrency") is not None:
        with _original(config) as executor:
            yield executor
        return
    yield shared_pool()  # not shut down: it outlives the run


def install() -> None:
    """Make LangGraph's sync loop use the shared pool (idempotent). Leaves LangGraph alone if the module it
    patches has changed shape (the per-run pools then stay)."""
    global _original
    if _original is not None:
        return
    with _install_lock:
        if _original is not None:
            return
        try:
            from langgraph.pregel import _executor
        except ImportError:
            return
        original = getattr(_executor, "get_executor_for_config", None)
        if original is None:
            log.warning("langgraph.pregel._executor has no get_executor_for_config; runs keep per-run pools")
            return
        _original = original
        _executor.get_executor_for_config = _executor_for_config
