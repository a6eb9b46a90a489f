"""A Server-Sent Events client that stops reading (RELIABILITY.md, "Backpressure"): a raw socket with a tiny
receive window that never reads while a job publishes tens of megabytes of events.

The job runs through the real runner in this process (``run_job``, as test_faults.py does) against the
session's Redis and Postgres; the API is a real uvicorn process of its own with a short send timeout.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from switchyard import constants, events, jobs
from switchyard.redis_conn import get_redis
from switchyard.runner import Delivery, run_job

pytestmark = pytest.mark.chaos

SEND_TIMEOUT_S = 2
EVENTS, BATCH, PAYLOAD = 20_000, 200, "x" * 2000  # about 40 MB of token events
MEMORY_BOUND_MB = 20  # half the flood: an API that buffered for the stuck client would pass it


@pytest.fixture(scope="module")
def api(process_factory, stack):
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    handle = process_factory("api-sse", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)],
                             env={"SWITCHYARD_SSE_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S)})
    wait_for_port(port, timeout=90)
    handle.url = f"http://127.0.0.1:{port}"
    return handle


def _parse_sse(lines) -> list[tuple[int, str]]:
    """(id, event type) of each complete event in an iterable of lines."""
    out, fields = [], {}
    for line in lines:
        if line == "":
            if "id" in fields:
                out.append((int(fields["id"]), fields.get("event", "message")))
            fields = {}
        elif not line.startswith(":") and ":" in line:
            name, _, value = line.partition(":")
            fields[name] = value.lstrip(" ")
    return out


def _follow(url: str, seen: list[tuple[int, str]], headers: dict[str, str] | None = None) -> None:
    with httpx.stream("GET", url, headers=headers or {}, timeout=httpx.Timeout(120, connect=10)) as response:
        response.raise_for_status()
        for event in _parse_sse(response.iter_lines()):
            seen.append(event)
            if event[1] == "end":
                return


def _stuck_client(url: str) -> socket.socket:
    """Connects, asks for the stream, and never reads: a 4 KiB receive window that fills at once."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: sets the window
    sock.connect((parts.hostname, parts.port))
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def _flood(_params, ctx) -> dict:
    for _ in range(EVENTS // BATCH):
        events.publish_many(ctx.job_id, [("token", {"text": PAYLOAD})] * BATCH)
    return {"published": EVENTS}


def test_a_subscriber_that_stops_reading_stalls_no_one_and_is_dropped(stack, api):
    job, _ = jobs.create("switchyard.control.ping", {"seconds": 0})
    jobs.mark_dispatched(job.id)  # recorded, never sent: this test runs it (the outbox must not)
    url = f"{api.url}/jobs/{job.id}/events"
    stuck = _stuck_client(url)
    reader: list[tuple[int, str]] = []
    follower = threading.Thread(target=_follow, args=(url, reader), daemon=True)
    follower.start()
    time.sleep(1)  # both streams subscribed (an API that buffered them would do it from here on)
    baseline = peak = _rss_mb(api.pid)
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, _rss_mb(api.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        started = time.monotonic()
        result = run_job(Delivery(task=job.kind, job_id=job.id, kwargs=job.params, worker="flood"), _flood)
        flood_s = time.monotonic() - started
        follower.join(120)
        # The API drops the stuck stream once a write has waited SEND_TIMEOUT_S.
        deadline = time.monotonic() + 60
        while "stopped reading" not in api.log() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        sampling = False
        sampler.join()
    print(f"\nflood: {EVENTS} events (~{EVENTS * len(PAYLOAD) / 2**20:.0f} MB) in {flood_s:.1f}s; API RSS "
          f"{baseline:.1f} MB before, peak {peak:.1f} MB")

    # The job finished while the stuck client held the stream: the publisher never waited on it (it has
    # taken a few KiB of the ~40 MB; the rest could only have gone past it).
    assert result == {"published": EVENTS} and jobs.get(job.id).status is jobs.JobStatus.SUCCEEDED
    # The subscriber that reads got every event once, in order, to the end.
    assert reader and reader[-1][1] == "end"
    assert [seq for seq, _ in reader] == list(range(1, reader[-1][0] + 1))
    end_seq = reader[-1][0]
    # The API process did not hold the stuck client's backlog.
    assert peak - baseline < MEMORY_BOUND_MB, (baseline, peak)
    assert "stopped reading" in api.log()

    # Dropped: what was written before the drop, then the end of the connection.
    stuck.settimeout(30)
    received = b""
    while chunk := stuck.recv(65536):
        received += chunk
    stuck.close()
    body = received.decode(errors="replace").split("\r\n\r\n", 1)[1]
    # (chunked transfer encoding: the size lines are not "field: value" lines and are skipped)
    got = _parse_sse(body.replace("\r\n", "\n").split("\n"))
    assert got and got[-1][0] < end_seq and got[-1][1] != "end"
    assert [seq for seq, _ in got] == list(range(1, got[-1][0] + 1))
    # ...and it resumes where it stopped, missing nothing.
    rest: list[tuple[int, str]] = []
    _follow(url, rest, headers={"Last-Event-ID": str(got[-1][0])})
    assert [seq for seq, _ in got + rest] == list(range(1, end_seq + 1)) and rest[-1][1] == "end"
    get_redis().delete(constants.job_log_stream(job.id))  # 40 MB of tokens
