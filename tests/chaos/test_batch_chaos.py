"""A producer killed (kill -9) in the middle of a batch, after its durable commit and before all of its
messages were sent: every job of the batch still runs, once.

``client.submit_many``, ``POST /jobs:batch`` and the batch webhook all record and send through
``dispatch.enqueue_many``: this is the producer's side of each of them (the worker's side is
tests/integration/test_batch.py's kill test). The jobs the dead producer never sent, or sent without
noting it, are sent by the outbox sweep (the reaper, after ``dispatch_grace_s``); a job sent twice is
dropped by the claim the second time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import pytest

from switchyard import client, jobs

pytestmark = pytest.mark.chaos

BATCH = 6


@pytest.mark.parametrize("sent_before_kill", [0, 3])
def test_a_producer_killed_mid_batch_loses_no_job_and_runs_none_twice(stack, control_worker, reaper,
                                                                       sent_before_kill):
    keys = [f"killed-batch-{uuid.uuid4().hex[:8]}-{i}" for i in range(BATCH)]
    victim = subprocess.run([sys.executable, "-m", "tests.chaos._submit_many_victim", str(sent_before_kill), *keys],
                            env=stack.env(), capture_output=True, timeout=120)
    assert victim.returncode == -signal.SIGKILL, victim.stderr.decode(errors="replace")[-2000:]

    # The batch was committed whole before the kill: replaying it returns the same jobs and sends nothing.
    batch = client.submit_many([{"kind": "control.ping", "params": {}, "idempotency_key": key} for key in keys])
    assert len({job.id for job in batch}) == BATCH
    for job in batch:
        received = [e.type for e in client.events(job.id, timeout=120)]
        assert received.count("end") == 1
        final = jobs.get(job.id)
        assert final.status.value == "succeeded" and final.attempts == 1
