"""Bulk ways in: ``POST /jobs:batch`` and ``client.submit_many`` against a real API, Postgres, Redis and
control workers: one commit, per-item idempotency keys, all-or-nothing validation, and no job lost when
the worker running the batch is killed."""

from __future__ import annotations

import time
import uuid

import pytest

from switchyard import client
from switchyard.errors import InvalidParamsError
from tests.integration.test_api_jobs import http, job_count

pytestmark = pytest.mark.integration
__all__ = ["http"]  # the module-scoped httpx client fixture, shared with the jobs routes' tests


def ping(seconds: float, key: str | None = None) -> dict:
    item = {"kind": "control.ping", "params": {"seconds": seconds}}
    return {**item, "idempotency_key": key} if key else item


def test_batch_replay_returns_the_same_ids(http):
    keys = [f"batch-{uuid.uuid4().hex}" for _ in range(3)]
    single = http.post("/jobs", json=ping(0.01, keys[0])).json()  # the same key, sent earlier one by one
    first = http.post("/jobs:batch", json={"jobs": [ping(0.01, k) for k in keys] + [ping(0.01)]})
    assert first.status_code == 202, first.text
    data = first.json()["data"]
    assert [d["created"] for d in data] == [False, True, True, True]
    assert data[0]["job_id"] == single["job_id"]
    replay = http.post("/jobs:batch", json={"jobs": [ping(0.01, k) for k in keys]}).json()["data"]
    assert [d["job_id"] for d in replay] == [d["job_id"] for d in data[:3]]
    assert not any(d["created"] for d in replay)
    record = http.get(data[1]["status_url"]).json()
    assert record["tenant"] == "default" and record["producer"] == "api:default"
    assert record["kind"] == "switchyard.control.ping" and record["status"] in ("queued", "running", "succeeded")
    # A key repeated inside one batch is one job.
    twice = f"batch-{uuid.uuid4().hex}"
    dup = http.post("/jobs:batch", json={"jobs": [ping(0.01, twice), ping(0.01, twice)]}).json()["data"]
    assert dup[0]["job_id"] == dup[1]["job_id"] and [d["created"] for d in dup] == [True, False]


def test_one_invalid_item_refuses_the_whole_batch(http):
    before = job_count()
    response = http.post("/jobs:batch", json={"jobs": [
        ping(0.01), {"kind": "control.ping", "params": {"seconds": "soon"}}, {"kind": "no.such.task"}]})
    assert response.status_code == 422, response.text
    locs = [d["loc"][:3] for d in response.json()["error"]["details"]]
    assert ["body", "jobs", 1] in locs and ["body", "jobs", 2] in locs and ["body", "jobs", 0] not in locs
    assert job_count() == before
    with pytest.raises(InvalidParamsError):
        client.submit_many([ping(0.01), {"kind": "control.ping", "params": {"seconds": -5}}])
    assert job_count() == before
    assert http.post("/jobs:batch", json={"jobs": []}).status_code == 422


def test_submit_many_runs_every_job_and_replays(control_worker):
    keys = [f"many-{uuid.uuid4().hex}" for _ in range(5)]
    jobs = client.submit_many([ping(0.05, k) for k in keys])
    assert len({j.id for j in jobs}) == 5
    assert all(client.wait(j.id, timeout=60).status.value == "succeeded" for j in jobs)
    # Every job's events begin with its `status` (queued) event, published by the batch.
    first = next(iter(client.events(jobs[0].id, timeout=10)))
    assert first.type == "status" and first.data["status"] == "queued"
    assert [j.id for j in client.submit_many([ping(0.05, k) for k in keys])] == [j.id for j in jobs]


def test_a_worker_killed_mid_batch_loses_no_job(http, control_worker, start_worker):
    data = http.post("/jobs:batch", json={"jobs": [ping(1.0) for _ in range(8)]}).json()["data"]
    ids = [d["job_id"] for d in data]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(client.get(i).status.value == "running" for i in ids):
        time.sleep(0.05)
    assert any(client.get(i).status.value == "running" for i in ids)
    control_worker.kill()  # mid-batch: some jobs running, the rest queued or prefetched
    replacement = start_worker("control")
    try:
        ended = [client.wait(i, timeout=90) for i in ids]
        assert [j.status.value for j in ended] == ["succeeded"] * len(ids)
        assert any(j.attempts > 1 for j in ended)  # at least one ran again after the kill
    finally:
        replacement.terminate()
