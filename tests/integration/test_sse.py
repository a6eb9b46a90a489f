"""``GET /jobs/{id}/events`` as Server-Sent Events, against a real uvicorn API and control worker:
every event once, in order, ``id`` = seq, ending after ``end``; ``Last-Event-ID`` resumes exactly."""

from __future__ import annotations

import json

import httpx
import pytest
from httpx_sse import connect_sse

from switchyard import client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server.url, timeout=60) as c:
        yield c


def submit(http: httpx.Client, seconds: float) -> str:
    response = http.post("/jobs", json={"kind": "control.ping", "params": {"seconds": seconds}})
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def read(http: httpx.Client, job_id: str, *, headers: dict[str, str] | None = None,
         params: dict | None = None, stop_after: int | None = None) -> list[dict]:
    """The stream's events as ``{"id", "event", "data"}``; ``stop_after`` disconnects early."""
    out = []
    with connect_sse(http, "GET", f"/jobs/{job_id}/events", headers=dict(headers or {}),
                     params=params) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            data = json.loads(sse.data)
            assert sse.id == str(data["seq"]) and sse.event == data["type"] and data["job_id"] == job_id
            out.append({"id": int(sse.id), "event": sse.event, "data": data})
            if stop_after is not None and len(out) == stop_after:
                break
    return out


def reference(job_id: str) -> list[tuple[int, str, dict]]:
    """What the Python subscriber says the job's log is (it is verified on its own in test_backbone)."""
    return [(e.seq, e.type, e.data) for e in client.events(job_id, timeout=30)]


def as_tuples(stream: list[dict]) -> list[tuple[int, str, dict]]:
    return [(s["id"], s["event"], s["data"]["data"]) for s in stream]


def test_live_stream_has_every_event_in_order_and_ends_after_end(http, control_worker):
    job_id = submit(http, 1.0)
    stream = read(http, job_id)
    assert [s["id"] for s in stream] == list(range(1, len(stream) + 1))
    assert stream[0]["event"] == "status" and stream[0]["data"]["data"]["status"] == "queued"
    assert stream[-1]["event"] == "end" and stream[-1]["data"]["data"]["status"] == "succeeded"
    assert sum(s["event"] == "progress" for s in stream) >= 2
    assert as_tuples(stream) == reference(job_id)


def test_resuming_with_last_event_id_gets_exactly_the_rest(http, control_worker):
    job_id = submit(http, 1.5)
    first = read(http, job_id, stop_after=3)  # disconnect mid-job
    assert [s["id"] for s in first] == [1, 2, 3]
    rest = read(http, job_id, headers={"Last-Event-ID": "3"})
    assert rest[0]["id"] == 4 and rest[-1]["event"] == "end"
    assert as_tuples(first + rest) == reference(job_id)


def test_a_subscriber_after_the_end_gets_every_event(http, control_worker):
    job_id = submit(http, 0.2)
    ref = reference(job_id)  # waits for the end
    assert as_tuples(read(http, job_id)) == ref


def test_after_query_and_last_event_id_precedence(http, control_worker):
    job_id = submit(http, 0.6)
    ref = reference(job_id)
    assert as_tuples(read(http, job_id, params={"after": 2})) == ref[2:]
    # A reconnecting EventSource keeps its original URL (?after=1) and adds the newer Last-Event-ID.
    assert as_tuples(read(http, job_id, params={"after": 1}, headers={"Last-Event-ID": "4"})) == ref[4:]


def test_a_client_that_has_everything_gets_204(http, control_worker):
    job_id = submit(http, 0)
    end_seq = reference(job_id)[-1][0]
    response = http.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(end_seq)})
    assert response.status_code == 204 and response.content == b""


def test_a_malformed_last_event_id_is_422(http, control_worker):
    job_id = submit(http, 0)
    response = http.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "seven"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["header", "last-event-id"]
    negative = http.get(f"/jobs/{job_id}/events", params={"after": -1})
    assert negative.status_code == 422 and negative.json()["error"]["type"] == "invalid_request"


def test_a_quiet_spell_loses_and_repeats_nothing(stack):
    """A stream that hears nothing for longer than its poll re-reads the log; across such quiet spells
    the client still gets each event once, in order."""
    import threading
    import time
    import uuid

    import anyio

    from switchyard import events
    from switchyard.api import jobs as jobs_api

    job_id = f"quiet-{uuid.uuid4()}"  # no ledger row: only non-durable events are published

    def producer():
        events.publish(job_id, "progress", {"n": 1})
        events.publish(job_id, "progress", {"n": 2})
        time.sleep(2.5)  # longer than two of the subscriber's polls
        events.publish(job_id, "progress", {"n": 3})
        events.publish(job_id, "end", {"status": "succeeded"}, persist=False)

    async def collect() -> list[dict]:
        return [sse async for sse in jobs_api._event_stream(job_id, 0)]

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        got = anyio.run(collect)
    finally:
        thread.join()
    assert [(int(s["id"]), s["event"]) for s in got] == [(1, "progress"), (2, "progress"), (3, "progress"),
                                                         (4, "end")]


def test_a_client_that_goes_away_releases_its_subscription(http, control_worker):
    """Each stream holds a Redis pub/sub subscription; closing the connection must release it."""
    import time

    from switchyard import constants
    from switchyard.redis_conn import get_redis

    job_id = submit(http, 30)
    channel = constants.job_channel(job_id)

    def subscribers() -> int:
        return dict(get_redis().pubsub_numsub(channel)).get(channel.encode(), 0)

    def until(predicate, what: str) -> None:
        deadline = time.monotonic() + 30
        while not predicate():
            assert time.monotonic() < deadline, f"{what}: {get_redis().pubsub_numsub(channel)}"
            time.sleep(0.05)

    streams = []
    for _ in range(3):
        response = http.send(http.build_request("GET", f"/jobs/{job_id}/events"), stream=True)
        lines = response.iter_lines()  # kept: dropping the iterator would close the response
        assert next(lines).startswith("id: ")
        streams.append((response, lines))
    until(lambda: subscribers() == 3, "three streams, three subscriptions")
    for response, _lines in streams:
        response.close()
    until(lambda: subscribers() == 0, "subscriptions left behind by closed streams")
    http.post(f"/jobs/{job_id}/cancel")
    assert client.wait(job_id, timeout=30).status.value == "cancelled"
