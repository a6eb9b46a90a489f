"""A hostile tenant, two API keys on one stack: every way in fixes the tenant from who authenticated, and
every object a job names (collection, thread, file, adapter) is resolved within that tenant in the worker.

Each test plays the attacker (``globex``) against the victim (``acme``) and then checks, as the victim,
that nothing of theirs was read, written or deleted.
"""

from __future__ import annotations

import json
import sys
import uuid

import httpx
import pytest

from switchyard import client, jobs, signing
from switchyard.config import reload_settings
from switchyard.listen import Listener
from switchyard.redis_conn import get_redis
from workers.app import app as celery_app

pytestmark = pytest.mark.integration

KEYS = "key-acme:acme,key-globex:globex"
ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"Authorization": "Bearer key-globex"}
SECRET = "globex-webhook-secret"


@pytest.fixture(scope="module")
def keyed_api(stack, process_factory):
    """An API with two tenants' keys, and a webhook source ``globex`` mapped to tenant globex."""
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    handle = process_factory("api-tenants", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)],
                             env={"SWITCHYARD_API_KEYS": KEYS, "SWITCHYARD_WEBHOOK_SECRET_GLOBEX": SECRET,
                                  "SWITCHYARD_WEBHOOK_TENANT_GLOBEX": "globex"})
    wait_for_port(port, timeout=60)
    yield f"http://127.0.0.1:{port}"
    handle.terminate()


@pytest.fixture(scope="module")
def workers(stack, start_worker):
    started = [start_worker("index", concurrency=1), start_worker("agent", concurrency=2)]
    yield
    for worker in started:
        worker.terminate()


def submit(api: str, headers: dict, kind: str, params: dict) -> httpx.Response:
    return httpx.post(f"{api}/jobs", json={"kind": kind, "params": params}, headers=headers, timeout=30)


def finished(job_id: str) -> jobs.Job:
    return client.wait(job_id, timeout=120)


def search(api: str, headers: dict, collection: str, query: str) -> httpx.Response:
    return httpx.post(f"{api}/collections/{collection}/search", json={"query": query, "k": 10, "mode": "text"},
                      headers=headers, timeout=60)


@pytest.fixture(scope="module")
def acme_collection(keyed_api, workers) -> str:
    """acme's collection, ingested over HTTP without any tenant in the params (it lands in acme's)."""
    name = f"handbook-{uuid.uuid4().hex[:6]}"
    accepted = submit(keyed_api, ACME, "index.ingest", {"collection": name, "documents": [
        {"id": "pay", "text": "Acme pays its suppliers within 45 days."}]})
    assert accepted.status_code == 202, accepted.text
    assert finished(accepted.json()["job_id"]).status.value == "succeeded"
    return name


def test_params_cannot_name_another_tenant_at_any_way_in(keyed_api, acme_collection):
    inject = {"collection": acme_collection, "tenant": "acme", "documents": [{"id": "x", "text": "injected"}]}
    # HTTP: refused at the door, nothing recorded.
    refused = submit(keyed_api, GLOBEX, "index.ingest", inject)
    assert refused.status_code == 422 and "tenant" in refused.text
    assert submit(keyed_api, GLOBEX, "index.delete", {"collection": acme_collection, "tenant": "acme",
                                                      "ids": ["pay"]}).status_code == 422
    # Signed webhook from source globex (configured as tenant globex).
    body = json.dumps(inject).encode()
    hook = httpx.post(f"{keyed_api}/hooks/index.ingest", content=body, timeout=30, headers={
        signing.HEADER: signing.sign(SECRET, body), "Switchyard-Source": "globex",
        "Content-Type": "application/json"})
    assert hook.status_code == 422 and "tenant" in hook.text
    # A raw Celery producer: the header names the tenant; params that disagree fail the job in the worker.
    job_id = f"raw-{uuid.uuid4()}"
    celery_app.send_task("switchyard.index.ingest", kwargs=inject, task_id=job_id, queue="index",
                         headers={"switchyard_tenant": "globex"})
    failed = finished(job_id)
    assert failed.status.value == "failed" and failed.error["type"] == "invalid_params"
    assert failed.tenant == "globex" and failed.attempts == 0
    # acme's collection holds only its own document.
    hits = search(keyed_api, ACME, acme_collection, "injected suppliers").json()["results"]
    assert [h["document_id"] for h in hits] == ["pay"]


def test_a_tenant_works_on_its_own_collection_of_the_same_name(keyed_api, acme_collection):
    # globex ingests into "the same" collection name: it gets its own collection, acme's is untouched.
    mine = submit(keyed_api, GLOBEX, "index.ingest", {"collection": acme_collection, "documents": [
        {"id": "pay", "text": "Globex pays within 10 days."}]})
    assert finished(mine.json()["job_id"]).status.value == "succeeded"
    globex_hits = search(keyed_api, GLOBEX, acme_collection, "pays days").json()["results"]
    assert [h["text"] for h in globex_hits] == ["Globex pays within 10 days."]
    # globex deletes "pay" in its collection: acme's document of the same id stays.
    gone = submit(keyed_api, GLOBEX, "index.delete", {"collection": acme_collection, "ids": ["pay"]})
    assert finished(gone.json()["job_id"]).result["documents"] == 1
    acme_hits = search(keyed_api, ACME, acme_collection, "suppliers").json()["results"]
    assert [h["document_id"] for h in acme_hits] == ["pay"]
    # A collection only acme has answers 404 to globex, on search and on delete (in the worker).
    other = f"only-acme-{uuid.uuid4().hex[:6]}"
    made = submit(keyed_api, ACME, "index.ingest",
                  {"collection": other, "documents": [{"id": "a", "text": "Acme's roadmap"}]})
    assert finished(made.json()["job_id"]).status.value == "succeeded"
    assert search(keyed_api, GLOBEX, other, "roadmap").status_code == 404
    attempt = submit(keyed_api, GLOBEX, "index.delete", {"collection": other, "ids": ["a"]})
    denied = finished(attempt.json()["job_id"])
    assert denied.status.value == "failed" and "no collection" in denied.error["message"]
    assert [h["document_id"] for h in search(keyed_api, ACME, other, "roadmap").json()["results"]] == ["a"]


def test_an_agent_run_on_another_tenants_thread_reads_and_writes_nothing(keyed_api, workers):
    thread = f"acme-thread-{uuid.uuid4().hex[:6]}"
    secret = "Acme's merger code word is BLUEBIRD."
    run = {"graph": "rag_agent", "thread_id": thread,
           "input": {"messages": [{"role": "user", "content": secret}]},
           "config": {"configurable": {"model": {"provider": "scripted", "responses": ["Noted."]}}}}
    mine = finished(submit(keyed_api, ACME, "agent.run", run).json()["job_id"])
    assert mine.status.value == "succeeded", mine.error
    before = httpx.get(f"{keyed_api}/threads/{thread}/state", headers=ACME, timeout=30).json()

    steal = {**run, "input": {"messages": [{"role": "user", "content": "Repeat everything said so far."}]},
             "config": {"configurable": {"model": {"provider": "scripted", "responses": ["stolen"]}}}}
    theirs = submit(keyed_api, GLOBEX, "agent.run", steal)
    assert theirs.status_code == 202  # the route accepts the job; the worker resolves the thread
    job = finished(theirs.json()["job_id"])
    assert job.status.value == "failed" and job.error["type"] == "ThreadNotFoundError"
    assert secret not in json.dumps(job.result or {}) and job.result is None
    # The LangGraph-compatible routes agree: not found for globex, and acme's thread is unchanged.
    assert httpx.get(f"{keyed_api}/threads/{thread}/state", headers=GLOBEX, timeout=30).status_code == 404
    assert httpx.post(f"{keyed_api}/threads/{thread}/runs", headers=GLOBEX, timeout=30,
                      json={"assistant_id": "rag_agent", "input": steal["input"]}).status_code == 404
    after = httpx.get(f"{keyed_api}/threads/{thread}/state", headers=ACME, timeout=30).json()
    assert after["values"] == before["values"] and after["checkpoint"] == before["checkpoint"]


def test_a_finetune_job_cannot_read_another_tenants_file(keyed_api, stack):
    """The file is resolved within the job's tenant in the worker's pre-check (here called as the worker
    does, with the ledger row of a job recorded for globex)."""
    from switchyard.finetune import files
    from switchyard.finetune.models import build_tiny_llama, register_base_model
    from switchyard.finetune.schemas import TrainParams
    from switchyard.finetune.training_job import precheck

    uploaded = httpx.post(f"{keyed_api}/v1/files", headers=ACME, timeout=30, data={"purpose": "fine-tune"},
                          files={"file": ("acme.jsonl", b'{"prompt": "a", "completion": "b"}\n')})
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    # The route refuses it...
    via_api = httpx.post(f"{keyed_api}/v1/fine_tuning/jobs", headers=GLOBEX, timeout=30,
                         json={"model": "tiny-llama", "training_file": file_id})
    assert via_api.status_code in (400, 404, 422)
    # ... and so does the worker, for a job that reached it another way (POST /jobs, send_task).
    with pytest.raises(files.FileNotFound):
        files.read_bytes(file_id, "globex")
    assert files.read_bytes(file_id, "acme").startswith(b'{"prompt"')
    register_base_model("tiny-llama", build_tiny_llama(stack.state_dir / f"tiny-{uuid.uuid4().hex[:6]}"), "tests")
    params = TrainParams.model_validate({"model": "tiny-llama", "training_file": file_id})
    globex_job, _ = jobs.create("switchyard.finetune.train", params.model_dump(mode="json"), tenant="globex",
                                producer="test")
    from switchyard.errors import InvalidParamsError

    with pytest.raises(InvalidParamsError) as refused:
        precheck(params, globex_job)
    assert refused.value.errors[0]["loc"] == ["training_file"] and "No such File" in refused.value.errors[0]["msg"]


def test_a_model_naming_another_tenants_adapter_is_refused(stack):
    from switchyard.errors import ConfigurationError
    from switchyard.finetune import adapters
    from switchyard.llm.factory import get_chat_model

    name = f"ft:tiny:acme-only:{uuid.uuid4().hex[:8]}"
    adapters.register(name=name, job_id=None, tenant="acme", base_model="tiny", base_path="/nonexistent",
                      method="lora", config={}, metrics={}, url="file:///nonexistent")
    with pytest.raises(ConfigurationError, match="no adapter"):
        get_chat_model(f"local:{name}", tenant="globex")
    with pytest.raises(ConfigurationError, match="no adapter"):
        get_chat_model({"provider": "local", "adapter": name}, tenant="globex")
    assert adapters.get_adapter(name, tenant="acme").tenant == "acme"


def test_trigger_stream_tenant_comes_from_the_configured_source(stack, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_TRIGGER_TENANT_BILLING", "acme")
    reload_settings()
    name = f"test:triggers:{uuid.uuid4().hex[:8]}"
    listener = Listener(stream=name, dead_letter=f"{name}:dead", block_ms=100, claim_idle_ms=100)
    listener.ensure_group()
    r = get_redis()
    try:
        r.xadd(name, {"kind": "control.ping", "params": "{}", "source": "billing"})
        r.xadd(name, {"kind": "control.ping", "params": "{}", "source": "billing", "tenant": "globex"})
        r.xadd(name, {"kind": "control.ping", "params": "{}"})
        assert listener.poll_once() == 3
        recorded = [j for j in jobs.list_jobs(kind="switchyard.control.ping", limit=20)
                    if (j.idempotency_key or "").startswith(name)]
        assert sorted(j.tenant for j in recorded) == ["acme", "default"]
        dead = r.xrange(f"{name}:dead")
        assert len(dead) == 1 and b"configured for tenant 'acme'" in dead[0][1][b"_reason"]
    finally:
        r.delete(name, f"{name}:dead")
        monkeypatch.delenv("SWITCHYARD_TRIGGER_TENANT_BILLING")
        reload_settings()
