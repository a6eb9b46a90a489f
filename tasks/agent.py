"""Agent queue: run a LangGraph graph on a thread (``switchyard.agent.run``), and checkpoint pruning."""

from __future__ import annotations

from typing import Any

from switchyard import hooks
from switchyard.agents.thread_hooks import ThreadHooks
from tasks._base import job_task
from workers.app import app


def _run(params: Any, ctx: Any) -> dict:
    from switchyard.agents.runs import execute_run  # LangGraph is imported by agent workers only

    return execute_run(params, ctx)


_run.__doc__ = "Run a registered graph on a thread with Postgres checkpoints; stream its events."
run = job_task("switchyard.agent.run")(_run)
# One run at a time per thread: taken before the run, given back after (switchyard/agents/thread_hooks.py).
hooks.register(ThreadHooks(), task="switchyard.agent.run")


@app.task(name="switchyard.control.prune_checkpoints", ignore_result=True)
def prune_checkpoints() -> int:
    """Prune LangGraph checkpoints of threads idle past ``SWITCHYARD_AGENT_CHECKPOINT_TTL_S`` (beat)."""
    from switchyard.agents.checkpointer import prune_checkpoints as prune

    return prune()
