"""Fine-tuning under failure: a worker killed with SIGKILL mid-training, and cancel mid-training."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from switchyard import client, jobs
from switchyard.db import connection
from switchyard.finetune.models import build_tiny_llama

pytestmark = pytest.mark.chaos

DEMO = Path(__file__).resolve().parents[2] / "demo" / "finetune"


@pytest.fixture(scope="module")
def tiny_model(stack, tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-chaos"))


def long_job(tiny_model, steps: int) -> dict:
    return {"model": str(tiny_model), "training_file": str(DEMO / "capitals.jsonl"), "seed": 5,
            "method": {"type": "lora", "hyperparameters": {"max_steps": steps, "batch_size": 2, "n_epochs": 20,
                                                           "checkpoint_interval": 5, "learning_rate": 1e-3}}}


def wait_for_step(job_id: str, step: int, timeout: float = 120) -> int:
    for event in client.events(job_id, timeout=timeout):
        if event.type == "metrics" and event.data.get("step", 0) >= step and "train_loss" in event.data:
            return event.data["step"]
        if event.is_end:
            raise AssertionError(f"job ended before step {step}: {event.data}")
    raise AssertionError("no end")


def test_kill_9_mid_training_resumes_from_the_last_checkpoint(tiny_model, start_worker, control_worker):
    first = start_worker("finetune")
    job = client.enqueue("finetune.train", long_job(tiny_model, 30))
    reached = wait_for_step(job.id, 12)
    first.kill()  # SIGKILL, no goodbye: the lease expires and the reaper requeues the job
    second = start_worker("finetune")
    try:
        final = client.wait(job.id, timeout=240)
    finally:
        second.terminate()
    assert final.status.value == "succeeded", final.error
    assert final.attempts == 2
    events = list(client.events(job.id, timeout=10))
    resumed = [e for e in events if e.type == "message" and e.data["text"].startswith("resumed from checkpoint")]
    assert len(resumed) == 1
    step = int(re.search(r"step (\d+)", resumed[0].data["text"]).group(1))
    assert step % 5 == 0 and 10 <= step <= reached + 5  # the newest checkpoint the dead worker wrote
    after = [e.data["step"] for e in events
             if e.type == "metrics" and "train_loss" in e.data and e.seq > resumed[0].seq]
    assert after[0] == step + 1 and after[-1] == 30
    with connection() as conn:
        count = conn.execute("SELECT count(*) AS n FROM adapters WHERE job_id = %s", (job.id,)).fetchone()["n"]
    assert count == 1  # one adapter, however many attempts
    assert [e.data["status"] for e in events if e.type == "status"].count("running") == 2


def test_cancel_mid_training_ends_cancelled_at_the_next_step(tiny_model, start_worker, control_worker, api_server):
    import openai

    worker = start_worker("finetune")
    try:
        job = client.enqueue("finetune.train", long_job(tiny_model, 2000))
        wait_for_step(job.id, 3)
        api = openai.OpenAI(base_url=f"{api_server.url}/v1", api_key="x", max_retries=0)
        requested = time.monotonic()
        api.fine_tuning.jobs.cancel(f"ftjob-{job.id}")
        final = client.wait(job.id, timeout=60)
        elapsed = time.monotonic() - requested
    finally:
        worker.terminate()
    assert final.status.value == "cancelled"
    assert api.fine_tuning.jobs.retrieve(f"ftjob-{job.id}").status == "cancelled"
    events = list(client.events(job.id, timeout=10))
    said = [e for e in events if e.type == "message" and e.data["text"].startswith("cancelled at step")]
    assert len(said) == 1
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    # it stopped at the step boundary right after the last finished step, and nothing ran after it
    assert said[0].data["step"] == steps[-1] < 2000
    assert all(e.type in ("status", "end") for e in events if e.seq > said[0].seq)
    assert elapsed < 60 and jobs.get(job.id).result is None
