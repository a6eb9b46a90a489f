"""Fine-tuning end to end: the official ``openai`` client → real API → ledger → a real finetune worker
(LoRA and QLoRA on the CPU, a tiny Llama built from a config) → adapter registry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from switchyard import client, jobs
from switchyard.finetune import adapters
from switchyard.finetune.models import build_tiny_llama, register_base_model

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "demo" / "finetune"
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def tiny_model(stack, tmp_path_factory):
    path = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    register_base_model("tiny-llama", path, "2-layer Llama for tests")
    return path


@pytest.fixture(scope="module")
def finetune_worker(start_worker):
    worker = start_worker("finetune")
    yield worker
    worker.terminate()


@pytest.fixture(scope="module")
def openai_client(api_server):
    import openai

    return openai.OpenAI(base_url=f"{api_server.url}/v1", api_key="unused-on-loopback", max_retries=0)


def wait_done(openai_client, job_id: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = openai_client.fine_tuning.jobs.retrieve(job_id)
        if job.status in TERMINAL:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"{job_id} still {job.status}")


def upload(openai_client, name: str, content: bytes):
    return openai_client.files.create(file=(name, content), purpose="fine-tune")


def statuses(job_id: str) -> list[str]:
    return [e.data["status"] for e in client.events(job_id.removeprefix("ftjob-"), timeout=30) if e.type == "status"]


HYPER = {"n_epochs": 2, "batch_size": 4, "learning_rate": 1e-2, "eval_interval": 4, "checkpoint_interval": 5}


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_job_through_the_openai_client_trains_and_registers_an_adapter(
    method, tiny_model, finetune_worker, openai_client
):
    train = upload(openai_client, "capitals.jsonl", (DEMO / "capitals.jsonl").read_bytes())
    valid = upload(openai_client, "capitals_valid.jsonl", (DEMO / "capitals_valid.jsonl").read_bytes())
    assert openai_client.files.retrieve(train.id).bytes == (DEMO / "capitals.jsonl").stat().st_size
    created = openai_client.fine_tuning.jobs.create(
        model="tiny-llama", training_file=train.id, validation_file=valid.id, suffix=f"capitals-{method}",
        seed=7, method={"type": method, "hyperparameters": {**HYPER, "use_rslora": method == "qlora"}},
    )
    assert created.status == "validating_files" and created.id.startswith("ftjob-")
    job = wait_done(openai_client, created.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith(f"ft:tiny-llama:capitals-{method}:")
    assert job.trained_tokens > 0 and job.hyperparameters.n_epochs == 2
    assert statuses(created.id) == ["validating_files", "queued", "running", "succeeded"]

    events = openai_client.fine_tuning.jobs.list_events(created.id, limit=1000).data
    metrics = [e.data for e in reversed(events) if e.type == "metrics" and "train_loss" in e.data]
    assert metrics[0]["step"] == 1 and metrics[-1]["step"] == 14
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]  # loss falls
    assert {"eval_loss", "eval_token_accuracy", "tokens_per_second", "peak_memory_mb", "learning_rate"} <= set(
        metrics[-1])
    share = next(e.data for e in events if e.type == "metrics" and "trainable_share" in e.data)
    assert 0 < share["trainable_share"] < 0.5
    page = openai_client.fine_tuning.jobs.list_events(created.id, limit=2)
    assert len(page.data) == 2 and page.has_more

    ckpts = openai_client.fine_tuning.jobs.checkpoints.list(created.id).data
    assert [c.step_number for c in ckpts] == [14, 10, 5]
    assert ckpts[-1].metrics.train_loss is not None

    adapter = adapters.get_adapter(job.fine_tuned_model)
    assert adapter.method == method and adapter.base_model == "tiny-llama"
    assert adapter.job_id == created.id.removeprefix("ftjob-")
    assert adapter.config["use_rslora"] is (method == "qlora") and adapter.config["r"] == 8
    files = {p.name for p in adapters.local_dir(adapter).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    listed = [j.id for j in openai_client.fine_tuning.jobs.list(limit=100)]
    assert created.id in listed


def test_list_jobs_pages_with_after_and_cancel(tiny_model, openai_client):
    import openai

    train = upload(openai_client, "capitals.jsonl", (DEMO / "capitals.jsonl").read_bytes())
    ids = [openai_client.fine_tuning.jobs.create(model="tiny-llama", training_file=train.id, metadata={"n": str(i)},
                                                  method={"type": "lora", "hyperparameters": {"max_steps": 5000}}).id
           for i in range(2)]
    first = openai_client.fine_tuning.jobs.list(limit=1)
    assert [j.id for j in first.data] == [ids[1]] and first.has_more
    second = openai_client.fine_tuning.jobs.list(limit=1, after=ids[1])
    assert [j.id for j in second.data] == [ids[0]] and second.data[0].metadata == {"n": "0"}
    # The finetune worker (concurrency 1) takes at most the first; the second is still waiting, and a
    # waiting job is cancelled at once. The first, if running, stops at its next step.
    assert openai_client.fine_tuning.jobs.cancel(ids[1]).status == "cancelled"
    openai_client.fine_tuning.jobs.cancel(ids[0])
    assert [wait_done(openai_client, i, timeout=60).status for i in ids] == ["cancelled", "cancelled"]
    with pytest.raises(openai.BadRequestError):
        openai_client.fine_tuning.jobs.cancel(ids[0])


BAD_FILES = {
    "bad-lines": (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                  b'{"prompt": "a", \n'
                  b'{"messages": [{"role": "robot", "content": "hi"}]}\n',
                  ["line 2: not valid JSON", "line 3: messages[0] has invalid role 'robot'"]),
    "empty": (b"\n\n", ["the file is empty"]),
    "too-long": (b'{"prompt": "short", "completion": "ok"}\n'
                 + json.dumps({"prompt": "word " * 200, "completion": "x"}).encode() + b"\n",
                 ["line 2: ", "longer than max_length 64"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_training_file_fails_in_validating_files_with_line_numbers(
    case, tiny_model, finetune_worker, openai_client
):
    content, expected = BAD_FILES[case]
    bad = upload(openai_client, f"{case}.jsonl", content)
    created = openai_client.fine_tuning.jobs.create(
        model="tiny-llama", training_file=bad.id, method={"type": "lora", "hyperparameters": {"max_length": 64}})
    job = wait_done(openai_client, created.id, timeout=60)
    assert job.status == "failed"
    assert job.error.param == "training_file" and job.error.code == "invalid_training_file"
    assert all(part in job.error.message for part in expected), job.error.message
    assert "running" not in statuses(created.id)  # never reached running
    assert jobs.get(created.id.removeprefix("ftjob-")).attempts == 0


def test_api_errors_have_openai_shape_and_codes(tiny_model, openai_client):
    import openai

    with pytest.raises(openai.BadRequestError) as bad_file:
        openai_client.fine_tuning.jobs.create(model="tiny-llama", training_file="file-doesnotexist")
    assert bad_file.value.body["param"] == "training_file"
    with pytest.raises(openai.NotFoundError) as no_model:
        openai_client.fine_tuning.jobs.create(model="no-such-model", training_file="file-x")
    assert no_model.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad_hyper:
        openai_client.fine_tuning.jobs.create(model="tiny-llama", training_file="file-x",
                                              method={"type": "lora", "hyperparameters": {"r": 0}})
    assert "method" in bad_hyper.value.body["param"]
    with pytest.raises(openai.NotFoundError):
        openai_client.fine_tuning.jobs.retrieve(f"ftjob-{uuid.uuid4()}")
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve("file-missing")
    uploaded = upload(openai_client, "x.jsonl", b'{"prompt": "a", "completion": "b"}\n')
    assert openai_client.files.content(uploaded.id).read() == b'{"prompt": "a", "completion": "b"}\n'
    assert uploaded.id in [f.id for f in openai_client.files.list(purpose="fine-tune")]
    assert openai_client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(uploaded.id)


def test_raw_send_task_with_a_local_file_and_alpaca_data(stack, tiny_model, finetune_worker, control_worker):
    """A producer with only celery: the same job by task name, training data by path."""
    job_id = str(uuid.uuid4())
    kwargs = {"model": str(tiny_model), "training_file": str(DEMO / "alpaca_sample.jsonl"),
              "method": {"type": "lora", "hyperparameters": {"max_steps": 3, "batch_size": 2,
                                                             "target_modules": ["q_proj", "v_proj"],
                                                             "use_dora": True}}}
    producer = ("import celery, json, sys\n"
                "app = celery.Celery(broker=sys.argv[1])\n"
                "app.send_task('switchyard.finetune.train', kwargs=json.loads(sys.argv[3]), task_id=sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", producer, stack.broker_url, job_id, json.dumps(kwargs)], check=True,
                   timeout=60)
    job = client.wait(job_id, timeout=120)
    assert job.status.value == "succeeded", job.error
    adapter = adapters.get_adapter(job.result["fine_tuned_model"])
    assert adapter.config["use_dora"] is True and adapter.config["target_modules"] == ["q_proj", "v_proj"]
    assert job.result["steps"] == 3
