"""The jobs routes, error shape, tenants, health and metrics against a real uvicorn API, Postgres,
Redis and a control worker."""

from __future__ import annotations

import sys
import uuid

import httpx
import pytest
from kombu import Connection, Exchange, Producer, Queue
from prometheus_client.parser import text_string_to_metric_families

from switchyard import client
from switchyard.db import connection

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server.url, timeout=30) as c:
        yield c


def job_count() -> int:
    with connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"]


def wait_for_status(job_id: str, wanted: str, timeout: float = 30) -> None:
    for event in client.events(job_id, timeout=timeout):
        if event.type == "status" and event.data["status"] == wanted:
            return
    raise AssertionError(f"job {job_id} ended without reaching {wanted}")


# --- submit, read, list ------------------------------------------------------------------------------

def test_post_job_runs_and_get_returns_its_record(http, control_worker):
    response = http.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 0.1}})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["created"] is True
    assert body["status_url"] == f"{http.base_url}/jobs/{body['job_id']}".replace("//jobs", "/jobs")
    client.wait(body["job_id"], timeout=30)
    record = http.get(body["status_url"]).json()
    assert record["id"] == body["job_id"] and record["kind"] == "switchyard.control.ping"
    assert record["status"] == "succeeded" and record["result"]["seconds"] == 0.1
    assert record["producer"] == "api:default" and record["tenant"] == "default"
    assert "lease_owner" not in record


def test_idempotency_key_in_header_or_body_returns_the_same_job(http):
    key = f"k-{uuid.uuid4()}"
    first = http.post("/jobs", json={"kind": "control.ping"}, headers={"Idempotency-Key": key})
    second = http.post("/jobs", json={"kind": "switchyard.control.ping", "idempotency_key": key})
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    assert second.json()["created"] is False and second.headers["Idempotent-Replayed"] == "true"
    clash = http.post("/jobs", json={"kind": "control.ping", "idempotency_key": key},
                      headers={"Idempotency-Key": "other"})
    assert clash.status_code == 422 and clash.json()["error"]["type"] == "invalid_request"


def test_bad_submissions_get_the_error_shape_and_record_nothing(http):
    before = job_count()
    bad = http.post("/jobs", json={"kind": "control.ping", "params": {"seconds": -1}})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["type"] == "invalid_params"
    assert error["details"][0]["loc"] == ["body", "params", "seconds"]
    unknown = http.post("/jobs", json={"kind": "control.nope"})
    assert unknown.status_code == 422 and unknown.json()["error"]["type"] == "unknown_kind"
    assert unknown.json()["error"]["details"][0]["loc"] == ["body", "kind"]
    malformed = http.post("/jobs", content=b"{nope", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["error"]["type"] == "invalid_request"
    extra = http.post("/jobs", json={"kind": "control.ping", "surprise": 1})
    assert extra.status_code == 422 and extra.json()["error"]["details"][0]["loc"] == ["body", "surprise"]
    bad_url = http.post("/jobs", json={"kind": "control.ping", "callback_url": "not a url"})
    assert bad_url.status_code == 422
    assert job_count() == before


def test_unknown_job_is_404_in_the_error_shape(http):
    for response in (http.get("/jobs/no-such-job"), http.post("/jobs/no-such-job/cancel"),
                     http.get("/jobs/no-such-job/events")):
        assert response.status_code == 404
        assert response.json() == {"error": {"type": "not_found", "message": "no job no-such-job"}}
    assert http.get("/no-such-route").json()["error"]["type"] == "not_found"
    wrong_method = http.delete("/jobs")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "method_not_allowed"


def test_list_filters_and_pages(http, control_worker):
    ids = [http.post("/jobs", json={"kind": "control.ping"}).json()["job_id"] for _ in range(3)]
    for job_id in ids:
        client.wait(job_id, timeout=30)
    listed = http.get("/jobs", params={"kind": "control.ping", "status": "succeeded", "limit": 2}).json()
    assert len(listed["data"]) == 2 and listed["next_before"] is not None
    assert all(j["status"] == "succeeded" and j["kind"] == "switchyard.control.ping" for j in listed["data"])
    assert [j["id"] for j in listed["data"]] == ids[::-1][:2]  # newest first
    older = http.get("/jobs", params={"kind": "control.ping", "limit": 1,
                                      "before": listed["next_before"]}).json()
    assert [j["id"] for j in older["data"]] == [ids[0]]
    assert http.get("/jobs", params={"kind": "index.ingest", "status": "running"}).json()["data"] == []
    bad = http.get("/jobs", params={"status": "sleeping"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["query", "status"]


# --- cancel ---------------------------------------------------------------------------------------

def test_cancel_a_running_job(http, control_worker):
    job_id = http.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 60}}).json()["job_id"]
    wait_for_status(job_id, "running")
    response = http.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    final = client.wait(job_id, timeout=30)
    assert final.status.value == "cancelled"
    again = http.post(f"/jobs/{job_id}/cancel")  # idempotent
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_cancel_a_finished_job_is_a_conflict(http, control_worker):
    job_id = http.post("/jobs", json={"kind": "control.ping"}).json()["job_id"]
    client.wait(job_id, timeout=30)
    response = http.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 409 and response.json()["error"]["type"] == "conflict"


# --- tenants and auth ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed_api(stack, process_factory):
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    handle = process_factory("api-keys", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)],
                             env={"SWITCHYARD_API_KEYS": "key-alice:alice,key-bob:bob"})
    wait_for_port(port, timeout=60)
    yield f"http://127.0.0.1:{port}"
    handle.terminate()


def test_a_tenant_never_sees_another_tenants_job(keyed_api):
    alice = httpx.Client(base_url=keyed_api, headers={"Authorization": "Bearer key-alice"})
    bob = httpx.Client(base_url=keyed_api, headers={"X-API-Key": "key-bob"})
    key = f"shared-{uuid.uuid4()}"
    created = alice.post("/jobs", json={"kind": "control.ping", "idempotency_key": key})
    assert created.status_code == 202
    job_id = created.json()["job_id"]
    assert alice.get(f"/jobs/{job_id}").json()["tenant"] == "alice"
    assert bob.get(f"/jobs/{job_id}").status_code == 404
    assert bob.post(f"/jobs/{job_id}/cancel").status_code == 404
    assert bob.get(f"/jobs/{job_id}/events").status_code == 404
    assert job_id not in [j["id"] for j in bob.get("/jobs", params={"limit": 500}).json()["data"]]
    # Idempotency keys are per tenant: bob's same key is his own job.
    bobs = bob.post("/jobs", json={"kind": "control.ping", "idempotency_key": key}).json()
    assert bobs["created"] is True and bobs["job_id"] != job_id
    anonymous = httpx.get(f"{keyed_api}/jobs")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "unauthorized"
    wrong = httpx.get(f"{keyed_api}/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.get(f"{keyed_api}/healthz").status_code == 200  # operations stay open


def test_without_api_keys_only_loopback_clients_are_answered(stack):
    from fastapi.testclient import TestClient

    from switchyard.api import create_app

    app = create_app()
    with TestClient(app, client=("203.0.113.7", 50000)) as remote:
        response = remote.get("/jobs")
        assert response.status_code == 401 and "loopback" in response.json()["error"]["message"]
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        assert local.get("/jobs", params={"limit": 1}).status_code == 200


# --- health and metrics --------------------------------------------------------------------------------

def test_healthz_and_readyz(http):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert {name: c["ok"] for name, c in checks.items()} == {"postgres": True, "redis": True, "broker": True}
    assert checks["broker"]["transport"] == "redis"


@pytest.mark.parametrize("broker", ["redis://127.0.0.1:{port}/0", "amqp://guest:secret@127.0.0.1:{port}//"])
def test_readyz_is_503_and_says_why_when_the_broker_is_down(stack, monkeypatch, broker):
    from fastapi.testclient import TestClient

    from switchyard.api import create_app
    from switchyard.config import reload_settings
    from switchyard.embedded import free_port

    monkeypatch.setenv("SWITCHYARD_BROKER_URL", broker.format(port=free_port()))  # nothing listens there
    reload_settings()
    try:
        response = TestClient(create_app()).get("/readyz")
    finally:
        monkeypatch.undo()
        reload_settings()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]
    assert not body["checks"]["broker"]["ok"] and body["checks"]["broker"]["error"]
    assert "secret" not in response.text


def scrape(http: httpx.Client) -> dict[tuple[str, tuple], float]:
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


PING_LABELS = ("kind", "switchyard.control.ping")


def quiesce() -> None:
    """Let ping jobs that earlier tests left queued or running end, so the deltas below are ours."""
    with connection() as conn:
        live = conn.execute("SELECT id FROM jobs WHERE kind = 'switchyard.control.ping'"
                            " AND status IN ('queued', 'running')").fetchall()
    for row in live:
        client.wait(row["id"], timeout=120)


def test_metrics_read_the_ledger_and_broker(http, control_worker, stack):
    quiesce()
    before = scrape(http)
    job_id = http.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 0.6}}).json()["job_id"]
    seen = list(client.events(job_id, timeout=30))
    after = scrape(http)
    assert all(v == 0 for (name, _), v in after.items() if name == "switchyard_scrape_error")

    with connection() as conn:
        rows = conn.execute("SELECT status, count(*) AS n FROM jobs WHERE kind = 'switchyard.control.ping'"
                            " GROUP BY status").fetchall()
    for row in rows:
        labels = tuple(sorted([PING_LABELS, ("status", row["status"])]))
        assert after[("switchyard_jobs", labels)] == row["n"]

    succeeded = tuple(sorted([PING_LABELS, ("status", "succeeded")]))
    count = after[("switchyard_job_duration_seconds_count", succeeded)]
    assert count == before.get(("switchyard_job_duration_seconds_count", succeeded), 0) + 1
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in after.items()
                     if name == "switchyard_job_duration_seconds_bucket"
                     and ("status", "succeeded") in labels and PING_LABELS in labels)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1] == (float("inf"), count)
    # The new job ran about 0.6 s, so it lands above the 0.5 s bucket: the 0.5 bucket did not grow.
    le_05 = tuple(sorted([PING_LABELS, ("le", "0.5"), ("status", "succeeded")]))
    assert after[("switchyard_job_duration_seconds_bucket", le_05)] == before.get(
        ("switchyard_job_duration_seconds_bucket", le_05), 0)

    published = ("switchyard_events_published_total", (PING_LABELS,))
    assert after[published] - before.get(published, 0) == len(seen) == seen[-1].seq

    # The gauge is the broker's own count: nothing sends to these queues now, so a direct reading matches
    # (control is left out: the reaper's beat sends to it every few seconds).
    from switchyard.api.health import queue_depths

    quiet = ("finetune", "index", "agent", "eval", "celery")
    assert {q: after[("switchyard_queue_depth", (("queue", q),))] for q in quiet} == queue_depths(
        stack.broker_url, quiet)
    assert ("switchyard_queue_depth", (("queue", "control"),)) in after


def test_queue_depth_counts_waiting_messages(stack):
    from switchyard.api.health import queue_depths

    name = f"switchyard-test-depth-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    with Connection(stack.broker_url) as conn:
        producer = Producer(conn.default_channel)
        for i in range(3):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key=name, declare=[queue],
                             serializer="json")
        try:
            assert queue_depths(stack.broker_url, [name, f"{name}-absent"]) == {name: 3, f"{name}-absent": 0}
        finally:
            queue(conn.default_channel).delete()


def test_live_jobs_events_are_counted_before_they_end(http, control_worker):
    quiesce()
    before = scrape(http)
    job_id = http.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 30}}).json()["job_id"]
    progressed = 0
    for event in client.events(job_id, timeout=30):
        progressed += event.type == "progress"
        if progressed == 3:
            break
    during = scrape(http)  # the job is still running: its events are not yet all in Postgres
    published = ("switchyard_events_published_total", (PING_LABELS,))
    assert during[published] - before.get(published, 0) >= event.seq == 5  # queued, running, 3 progress
    http.post(f"/jobs/{job_id}/cancel")
    assert client.wait(job_id, timeout=30).status.value == "cancelled"
