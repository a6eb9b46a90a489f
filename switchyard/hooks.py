"""Named hooks where a pool acts around its jobs: Dramatiq's middleware, done our way.

The runner alone moves a job through the ledger (claim, finish, requeue). A pool that must do something
around its jobs — the agent pool takes a thread before a run and gives it back after — registers a
``JobHook`` instead of writing that into its task or its domain function::

    claim ─► before_run ─► the task's function ─► after_run ─────────────► finish (succeeded)
                 │  (in order)        │               (reverse order)
                 │                    ├─ JobCancelled ─► on_cancel ──────► finish (cancelled)
                 │                    ├─ shutdown, lost lease, infra retry ► on_requeue (job runs again)
                 └────────────────────┴─ any other error ─► on_failure ───► finish (failed)

- A hook is registered for one task (``register(hook, task="switchyard.agent.run")``) or for every task
  of a pool (``register(hook, queue="agent")``); a task's chain is its pool's hooks, then its own, each
  in registration order.
- ``before_run`` hooks run in order, inside the job: one that raises ends the job as its function
  would have (``JobCancelled`` cancels it, anything else fails it), and only the hooks whose
  ``before_run`` completed are unwound — each undoes its own partial work before raising.
- ``after_run`` runs in reverse order after the function succeeded, still inside the job: a hook that
  raises there fails the job (``on_failure`` then runs), as if the function had raised.
- ``on_cancel``, ``on_failure`` and ``on_requeue`` run in reverse order while the job unwinds; they are
  best effort (an error is logged, never replaces the job's own outcome). All of them run before the
  ledger records the end, so whoever waits for the job's ``end`` event sees the hooks' work done.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from switchyard import task_catalog
from switchyard.context import JobContext

log = logging.getLogger("switchyard.hooks")


class JobHook:
    """A pool's policy around its jobs: override the hooks it needs (the others do nothing)."""

    def before_run(self, params: BaseModel, ctx: JobContext) -> None:
        """The job is claimed and about to run its function."""

    def after_run(self, params: BaseModel, ctx: JobContext, result: Any) -> None:
        """The function returned ``result``; the job is about to end ``succeeded``."""

    def on_failure(self, params: BaseModel, ctx: JobContext, exc: BaseException) -> None:
        """The job is about to end ``failed`` with ``exc``."""

    def on_cancel(self, params: BaseModel, ctx: JobContext, exc: BaseException) -> None:
        """The job stopped on a cancel request and is about to end ``cancelled``."""

    def on_requeue(self, params: BaseModel, ctx: JobContext, exc: BaseException) -> None:
        """The job stopped without ending (worker shutdown, lost lease, infrastructure retry): it runs
        again, on this worker or another, and should find what it holds still held. It may run after the
        job is back in the queue: let go of what this process holds, never take anything."""


_by_task: defaultdict[str, list[JobHook]] = defaultdict(list)
_by_queue: defaultdict[str, list[JobHook]] = defaultdict(list)


def register(hook: JobHook, *, task: str | None = None, queue: str | None = None) -> JobHook:
    """Add ``hook`` to one task's chain, or to every task of ``queue``; returns it."""
    if (task is None) == (queue is None):
        raise ValueError("register a hook for exactly one of task= or queue=")
    (_by_task[task] if task is not None else _by_queue[queue]).append(hook)  # type: ignore[index]
    return hook


def unregister(hook: JobHook) -> None:
    """Remove ``hook`` wherever it was registered."""
    for chains in (_by_task, _by_queue):
        for chain in chains.values():
            while hook in chain:
                chain.remove(hook)


def hooks_for(task: str) -> tuple[JobHook, ...]:
    """The chain a job of ``task`` runs through: its pool's hooks, then its own."""
    return (*_by_queue.get(task_catalog.queue_for(task), ()), *_by_task.get(task, ()))


class HookRun:
    """The hook chain of one delivery, bound to its params and context; remembers which hooks entered."""

    def __init__(self, hooks: tuple[JobHook, ...], params: BaseModel, ctx: JobContext):
        self._hooks = hooks
        self._params = params
        self._ctx = ctx
        self._entered: list[JobHook] = []

    def before_run(self) -> None:
        for hook in self._hooks:
            hook.before_run(self._params, self._ctx)
            self._entered.append(hook)

    def after_run(self, result: Any) -> None:
        for hook in reversed(self._entered):
            hook.after_run(self._params, self._ctx, result)

    def on_failure(self, exc: BaseException) -> None:
        self._unwind(lambda hook: hook.on_failure(self._params, self._ctx, exc))

    def on_cancel(self, exc: BaseException) -> None:
        self._unwind(lambda hook: hook.on_cancel(self._params, self._ctx, exc))

    def on_requeue(self, exc: BaseException) -> None:
        self._unwind(lambda hook: hook.on_requeue(self._params, self._ctx, exc))

    def _unwind(self, call: Callable[[JobHook], None]) -> None:
        for hook in reversed(self._entered):
            try:
                call(hook)
            except Exception:  # the job's own outcome stands; the hook's failure is only logged
                log.exception("job %s: hook %s failed while unwinding", self._ctx.job_id, type(hook).__name__)
        self._entered.clear()  # a job unwinds once


def bind(task: str, params: BaseModel, ctx: JobContext) -> HookRun:
    """The hooks of one delivery of a ``task`` job."""
    return HookRun(hooks_for(task), params, ctx)
