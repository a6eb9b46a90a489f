"""switchyard.hooks without a database: a task's chain, call order, and unwinding only what was entered."""

from __future__ import annotations

import pytest

from switchyard import hooks
from switchyard.context import JobContext
from switchyard.hooks import HookRun, JobHook


class Recorder(JobHook):
    def __init__(self, name: str, calls: list, *, fail_in: str | None = None):
        self.name, self.calls, self.fail_in = name, calls, fail_in

    def _record(self, what: str) -> None:
        self.calls.append(f"{self.name}.{what}")
        if what == self.fail_in:
            raise RuntimeError(f"{self.name} failed in {what}")

    def before_run(self, params, ctx):
        self._record("before_run")

    def after_run(self, params, ctx, result):
        self._record("after_run")

    def on_failure(self, params, ctx, exc):
        self._record("on_failure")

    def on_cancel(self, params, ctx, exc):
        self._record("on_cancel")

    def on_requeue(self, params, ctx, exc):
        self._record("on_requeue")


def bound(*chain: JobHook) -> HookRun:
    return HookRun(chain, params=None, ctx=JobContext.detached())  # type: ignore[arg-type]


def test_before_runs_in_order_and_after_in_reverse():
    calls: list[str] = []
    run = bound(Recorder("pool", calls), Recorder("task", calls))
    run.before_run()
    run.after_run({"ok": True})
    assert calls == ["pool.before_run", "task.before_run", "task.after_run", "pool.after_run"]


def test_a_failing_before_run_unwinds_only_the_hooks_that_entered():
    calls: list[str] = []
    run = bound(Recorder("a", calls), Recorder("b", calls, fail_in="before_run"), Recorder("c", calls))
    with pytest.raises(RuntimeError, match="b failed"):
        run.before_run()
    run.on_failure(RuntimeError("b failed"))
    assert calls == ["a.before_run", "b.before_run", "a.on_failure"]


def test_unwinding_is_best_effort_and_happens_once():
    calls: list[str] = []
    run = bound(Recorder("a", calls), Recorder("b", calls, fail_in="on_cancel"))
    run.before_run()
    run.on_cancel(RuntimeError("stop"))  # b's error is logged; a still gives back what it holds
    run.on_failure(RuntimeError("again"))  # nothing left to unwind
    assert calls[2:] == ["b.on_cancel", "a.on_cancel"]


def test_a_task_chain_is_its_pool_hooks_then_its_own():
    task_hook, pool_hook, other = JobHook(), JobHook(), JobHook()
    hooks.register(task_hook, task="switchyard.control.ping")
    hooks.register(pool_hook, queue="control")
    hooks.register(other, task="switchyard.index.ingest")
    try:
        assert hooks.hooks_for("switchyard.control.ping") == (pool_hook, task_hook)
        assert hooks.hooks_for("switchyard.index.ingest") == (other,)
    finally:
        for hook in (task_hook, pool_hook, other):
            hooks.unregister(hook)
    assert hooks.hooks_for("switchyard.control.ping") == ()


def test_a_hook_names_exactly_one_task_or_pool():
    with pytest.raises(ValueError):
        hooks.register(JobHook())
    with pytest.raises(ValueError):
        hooks.register(JobHook(), task="switchyard.control.ping", queue="control")
