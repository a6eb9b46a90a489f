"""The agent pool's hooks around a run (``switchyard.hooks``): take the run's thread before it, give it back
after, recording the run's usage — so neither the task nor the graph runner (``runs.py``) holds that code.

    before_run   the thread exists and is the tenant's; the run is recorded; the thread is taken under the
                 run's multitask strategy (reject / enqueue / interrupt / rollback) and the run's base
                 checkpoint recorded: one transaction when the thread is free (``threads.take_thread``)
    after_run    thread → ``interrupted`` (paused for a human) or ``idle``
    on_cancel    thread → ``idle``: a cancelled run keeps its checkpoints (``rollback`` deletes them)
    on_failure   thread → ``error``
    on_requeue   nothing: a run that comes back (worker shutdown, crash, lost lease, infrastructure retry)
                 finds itself still holding its thread and carries on from its last checkpoint

The run's status is never written here: it is its job's, in the ledger (``threads.get_run``).
"""

from __future__ import annotations

from typing import Any

from switchyard import dispatch
from switchyard.agents import threads
from switchyard.agents.schemas import RunParams
from switchyard.context import JobContext
from switchyard.hooks import JobHook

# Where the graph runner leaves the run's usage for these hooks (``JobContext.scratch``), even when the
# run stops early.
USAGE = "agent.usage"
# Where these hooks leave what taking the thread found (``threads.Taken``: head checkpoint, resuming) for
# the graph runner.
TAKEN = "agent.taken"


class ThreadHooks(JobHook):
    """One run at a time per thread, around every ``switchyard.agent.run`` job."""

    def before_run(self, params: RunParams, ctx: JobContext) -> None:  # type: ignore[override]
        # Raises ThreadNotFoundError for another tenant's thread (nothing is read or written),
        # JobCancelled if the run is cancelled while it waits, ThreadBusyError under "reject": either way it
        # never held the thread, so nothing is unwound.
        ctx.scratch[TAKEN] = threads.take_thread(
            ctx.job_id, params.thread_id, params.graph, params.multitask_strategy, tenant=ctx.tenant,
            attempt=ctx.attempt, wait=ctx.sleep, cancel=dispatch.cancel)

    def after_run(self, params: RunParams, ctx: JobContext, result: Any) -> None:  # type: ignore[override]
        paused = isinstance(result, dict) and result.get("status") == "interrupted"
        self._release(params, ctx, "interrupted" if paused else "idle")

    def on_cancel(self, params: RunParams, ctx: JobContext, exc: BaseException) -> None:  # type: ignore[override]
        self._release(params, ctx, "idle")

    def on_failure(self, params: RunParams, ctx: JobContext, exc: BaseException) -> None:  # type: ignore[override]
        self._release(params, ctx, "error")

    @staticmethod
    def _release(params: RunParams, ctx: JobContext, thread_status: str) -> None:
        # Rides the job's finish (the runner's next ledger write, after every hook): one commit for both.
        threads.release(ctx.job_id, params.thread_id, thread_status, usage=ctx.scratch.get(USAGE), wait=False)
