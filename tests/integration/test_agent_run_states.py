"""A run's status is its job's, read off the ledger (view agent_run_states, migration 0010): the agent pool
keeps no second status machine. Driven through the ledger's and the thread table's own functions against
the real database, without a worker."""

from __future__ import annotations

import uuid

import pytest

from switchyard import jobs
from switchyard.agents import threads
from switchyard.jobs import JobStatus

pytestmark = pytest.mark.integration

RUN = "switchyard.agent.run"
OWNER = "test-owner"


def new_run(tenant: str = "default") -> tuple[str, str]:
    """A thread with one run recorded as the API records it (before its job exists)."""
    thread_id, run_id = f"t-{uuid.uuid4()}", jobs.new_job_id()
    threads.ensure_thread(thread_id, tenant=tenant, graph="echo")
    threads.reserve_run(run_id, thread_id, "echo", tenant=tenant, strategy="reject")
    return thread_id, run_id


def status(run_id: str) -> str:
    return threads.get_run(run_id)["status"]


def start(run_id: str, thread_id: str) -> None:
    """The job is recorded and claimed, and the run takes its thread (what ThreadHooks.before_run does)."""
    jobs.create(RUN, {"graph": "echo", "thread_id": thread_id}, job_id=run_id)
    assert status(run_id) == "pending"
    assert jobs.claim(run_id, OWNER, "w", 30) is not None
    assert status(run_id) == "pending"  # claimed, but waiting for its thread
    threads.take_thread(run_id, thread_id, "echo", "reject", wait=lambda s: None, cancel=lambda j: None)
    assert status(run_id) == "running"


def test_a_run_goes_pending_running_success_as_its_job_does(stack):
    thread_id, run_id = new_run()
    assert status(run_id) == "pending"  # no job row yet
    start(run_id, thread_id)
    threads.release(run_id, thread_id, "idle", usage={"total_tokens": 3, "cost_usd": 0.5, "ttft_ms": 12.0})
    jobs.finish(run_id, OWNER, JobStatus.SUCCEEDED, result={"status": "success", "interrupts": []})
    run = threads.get_run(run_id)
    assert (run["status"], run["job_status"], run["cost_usd"], run["ttft_ms"]) == ("success", "succeeded", 0.5, 12.0)
    assert run["started_at"] <= run["finished_at"]
    assert threads.get_thread(thread_id)["active_run"] is None


def test_a_run_paused_for_a_human_reads_interrupted(stack):
    thread_id, run_id = new_run()
    start(run_id, thread_id)
    pause = [{"value": {"action_requests": []}, "id": "i1"}]
    jobs.finish(run_id, OWNER, JobStatus.SUCCEEDED, result={"status": "interrupted", "interrupts": pause})
    run = threads.get_run(run_id)
    assert (run["status"], run["interrupts"]) == ("interrupted", pause)


@pytest.mark.parametrize(("error_type", "expected"), [
    ("ThreadBusyError", "rejected"), ("SoftTimeLimitExceeded", "timeout"), ("ValueError", "error")])
def test_a_failed_job_reads_rejected_timeout_or_error(stack, error_type, expected):
    thread_id, run_id = new_run()
    start(run_id, thread_id)
    jobs.finish(run_id, OWNER, JobStatus.FAILED, error={"type": error_type, "message": "x"})
    run = threads.get_run(run_id)
    assert (run["status"], run["error"]["type"]) == (expected, error_type)


def test_a_cancelled_run_reads_cancelled_then_rolled_back(stack):
    thread_id, run_id = new_run()
    start(run_id, thread_id)
    jobs.finish(run_id, OWNER, JobStatus.CANCELLED, error={"type": "cancelled"})
    assert status(run_id) == "cancelled"
    threads.mark_rolled_back(run_id)
    assert status(run_id) == "rolled_back"


def test_a_job_cancelled_while_queued_frees_its_thread_for_reject(stack):
    thread_id, run_id = new_run()
    jobs.create(RUN, {"graph": "echo", "thread_id": thread_id}, job_id=run_id)
    with pytest.raises(threads.ThreadBusyError):  # pending: the thread is spoken for
        threads.reserve_run(jobs.new_job_id(), thread_id, "echo", strategy="reject")
    jobs.request_cancel(run_id)
    assert status(run_id) == "cancelled"
    threads.reserve_run(jobs.new_job_id(), thread_id, "echo", strategy="reject")  # accepted now


def test_a_reservation_without_a_job_is_forgotten_and_one_with_a_job_is_kept(stack):
    thread_id, run_id = new_run()
    threads.forget_run(run_id)  # the API's enqueue was refused: nothing holds the thread
    assert threads.get_run(run_id) is None
    threads.reserve_run(jobs.new_job_id(), thread_id, "echo", strategy="reject")

    thread_id, run_id = new_run()
    jobs.create(RUN, {"graph": "echo", "thread_id": thread_id}, job_id=run_id)
    threads.forget_run(run_id)  # its job was recorded: the run stays
    assert status(run_id) == "pending"
