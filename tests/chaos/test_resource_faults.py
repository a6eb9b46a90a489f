"""Resource faults (RELIABILITY.md): a disk that fills up under a fine-tune or an upload, and a fine-tune worker
killed for memory again and again.

Everything runs on a private stack with real Celery workers and a real API. The full disk is the process's
file size limit lowered from outside while it runs (``limit_file_size``: writes then fail with EFBIG, as
they fail with ENOSPC on a full disk; both are mapped alike). The out-of-memory kill is a watchdog here
that sends SIGKILL to the pool process once its resident memory grows past a bound, as the kernel's OOM
killer does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from switchyard import events, jobs
from switchyard.finetune import checkpoints
from switchyard.finetune.models import build_tiny_llama
from tests.chaos._soak import PrivateStack, limit_file_size

pytestmark = pytest.mark.chaos

DEMO = Path(__file__).resolve().parents[2] / "demo" / "finetune"
MAX_ATTEMPTS = 3
FULL_DISK_BYTES = 4096  # what the "disk" still takes per file once it is full


@pytest.fixture(scope="module")
def private():
    # File roots as the session has them (the models built here live under pytest's temporary directory).
    stack = PrivateStack(env={"SWITCHYARD_FILE_ROOTS": os.environ["SWITCHYARD_FILE_ROOTS"],
                              "SWITCHYARD_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}).start()
    try:
        stack.worker("control")
        stack.beat()
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-resource"))


def _train(model: Path, steps: int) -> dict:
    return {"model": str(model), "training_file": str(DEMO / "capitals.jsonl"), "seed": 5,
            "method": {"type": "lora", "hyperparameters": {"max_steps": steps, "batch_size": 2, "n_epochs": 50,
                                                           "checkpoint_interval": 5, "learning_rate": 1e-3}}}


def _wait(condition, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


# --- a full disk ---------------------------------------------------------------------------------------

def test_a_full_disk_during_a_checkpoint_fails_the_job_clearly_and_keeps_earlier_checkpoints(private, tiny_model):
    worker = private.worker("finetune", piped=True)
    try:
        job_id = private.send_raw("switchyard.finetune.train", _train(tiny_model, 5000), "finetune")
        first = _wait(lambda: private.sql("SELECT step FROM finetune_checkpoints WHERE job_id = %s", (job_id,)),
                      240, "a first checkpoint")
        limit_file_size(worker.pid, FULL_DISK_BYTES)  # the disk fills up now
        with private.activate():
            ended = [e for e in events.subscribe(job_id, timeout=180) if e.is_end]
            final = jobs.get(job_id)
    finally:
        worker.kill()
    ckpt_dir = private.root / "state" / "checkpoints" / job_id
    # One clear failure: no traceback, no retry.
    assert final.status is jobs.JobStatus.FAILED and final.attempts == 1, final.error
    assert final.error["type"] == "disk_full" and "traceback" not in final.error
    assert final.error["errno"] == "EFBIG" and "disk full while writing checkpoint step-" in final.error["message"]
    assert ended[0].data["error"]["type"] == "disk_full"
    # The checkpoint that hit the full disk left nothing behind; every recorded one is complete.
    assert not [p for p in ckpt_dir.iterdir() if p.name.startswith(".")], list(ckpt_dir.iterdir())
    recorded = private.sql("SELECT step, path FROM finetune_checkpoints WHERE job_id = %s ORDER BY step", (job_id,))
    assert recorded and recorded[0]["step"] == first[0]["step"]
    last = checkpoints.latest(ckpt_dir)
    assert last is not None and str(last) == recorded[-1]["path"]
    failed_step = int(final.error["message"].split("checkpoint step-")[1][:6])
    assert failed_step > recorded[-1]["step"]
    # ...and usable: its state loads, and its adapter loads onto the base model (what a resume does).
    from peft import PeftModel

    from switchyard.finetune.train import load_base

    state = checkpoints.load_state(last)
    assert state["step"] == recorded[-1]["step"] and {"optimizer", "scheduler", "rng"} <= state.keys()
    adapted = PeftModel.from_pretrained(load_base(str(tiny_model), "lora"), last)
    assert adapted.peft_config["default"].r > 0


def test_an_upload_onto_a_full_disk_is_refused_with_507_and_leaves_no_file(private):
    api = private.api(piped=True)
    try:
        small = httpx.post(f"{api.url}/v1/files", data={"purpose": "fine-tune"},
                           files={"file": ("small.jsonl", b'{"prompt": "a", "completion": "b"}\n' * 10)}, timeout=30)
        assert small.status_code == 200, small.text
        limit_file_size(api.pid, FULL_DISK_BYTES)  # the disk fills up now
        big = httpx.post(f"{api.url}/v1/files", data={"purpose": "fine-tune"},
                         files={"file": ("big.jsonl", b'{"prompt": "a", "completion": "b"}\n' * 2000)}, timeout=30)
        listed = httpx.get(f"{api.url}/v1/files", timeout=30).json()["data"]
    finally:
        api.kill()
    assert big.status_code == 507, big.text
    error = big.json()["error"]
    assert error["code"] == "insufficient_storage" and "disk full while writing upload 'big.jsonl'" in error["message"]
    assert [f["filename"] for f in listed] == ["small.jsonl"]  # nothing recorded for the refused upload
    stored = sorted(p.name for p in (private.root / "state" / "artifacts" / "files").iterdir())
    assert stored == [f"{small.json()['id']}.jsonl"]  # and no half file on disk


# --- out of memory ---------------------------------------------------------------------------------------

class OOMKiller(threading.Thread):
    """The kernel's OOM killer, scaled to a test: SIGKILL to any pool process of ``worker`` whose resident
    memory grows more than ``growth_mb`` past what it held just before it claimed the job."""

    def __init__(self, private: PrivateStack, worker_pid: int, job_id: str, growth_mb: float):
        super().__init__(daemon=True)
        self.private, self.worker, self.job_id, self.growth = private, psutil.Process(worker_pid), job_id, growth_mb
        self.kills: list[tuple[int, int, float]] = []  # (attempt, pid, rss MB)
        self.running = True

    def _children(self) -> dict[int, float]:
        out = {}
        for child in self.worker.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                out[child.pid] = child.memory_info().rss / 2**20
        return out

    def run(self) -> None:
        before: dict[int, float] = {}
        armed: dict[int, float] = {}  # pid -> bound, once its attempt is running
        attempt = 0
        while self.running:
            rows = self.private.sql("SELECT status, attempts FROM jobs WHERE id = %s", (self.job_id,))
            now = self._children()
            if rows and rows[0]["status"] == "running" and rows[0]["attempts"] > attempt:
                attempt = rows[0]["attempts"]
                armed = {pid: before.get(pid, rss) + self.growth for pid, rss in now.items()}
            for pid, bound in list(armed.items()):
                if now.get(pid, 0) > bound:
                    os.kill(pid, signal.SIGKILL)
                    self.kills.append((attempt, pid, now[pid]))
                    armed.pop(pid)
            before = now
            time.sleep(0.05)


def test_a_fine_tune_killed_for_memory_is_retried_then_fails_too_many_attempts(private, tmp_path_factory):
    # A model whose weights (about 130 MB) cannot fit in what the watchdog allows past the claim.
    big = build_tiny_llama(tmp_path_factory.mktemp("llama-big-vocab"), model_vocab_size=32000, hidden_size=512,
                           intermediate_size=512)
    worker = private.worker("finetune")
    job_id = private.send_raw("switchyard.finetune.train", _train(big, 20), "finetune")
    killer = OOMKiller(private, worker.pid, job_id, growth_mb=100)
    killer.start()
    try:
        with private.activate():
            seen = list(events.subscribe(job_id, timeout=300))
            final = jobs.get(job_id)
            time.sleep(3 * 7)  # three lease + reaper periods: nothing may start it again
            settled = jobs.get(job_id)
            later = events.replay(job_id, seen[-1].seq)
    finally:
        killer.running = False
        killer.join()
        worker.kill()
    print(f"\nOOM kills (attempt, pid, RSS MB): {killer.kills}")
    assert final.status is jobs.JobStatus.FAILED and final.error["type"] == "too_many_attempts", final.error
    assert final.attempts == MAX_ATTEMPTS and final.error["attempts"] == MAX_ATTEMPTS
    assert [attempt for attempt, _pid, _rss in killer.kills] == list(range(1, MAX_ATTEMPTS + 1))
    running = [e for e in seen if e.type == "status" and e.data["status"] == "running"]
    assert [e.data["attempt"] for e in running] == list(range(1, MAX_ATTEMPTS + 1))
    assert seen[-1].is_end and seen[-1].data["error"]["type"] == "too_many_attempts"
    # Never a loop: no further start after the failure.
    assert settled.attempts == MAX_ATTEMPTS and settled.status is jobs.JobStatus.FAILED and later == []
    assert "signal 9" in worker.log()
