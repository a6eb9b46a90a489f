"""Scale-out on one machine: several worker processes per pool, each with its own node name, and two
API processes, all on one broker and one ledger, as a stand-in for several hosts. Jobs spread across
the workers and none is lost or run twice; a running job is cancelled from the API process that did
not create it; a stream is joined from the other API process; killing one "host" loses no job.
On Redis, and on RabbitMQ (private vhost) where the machine has one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from httpx_sse import connect_sse
from prometheus_client.parser import text_string_to_metric_families

from switchyard import client, jobs
from tests.integration.test_rabbitmq import amqp_url  # noqa: F401 - the RabbitMQ vhost fixture

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "switchyard.cli"]


@pytest.fixture(scope="module")
def second_api(process_factory, stack):
    """Another API process: "another host" behind the same load balancer."""
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    handle = process_factory("api-2", [*CLI, "api", "--port", str(port)])
    wait_for_port(port, timeout=60)
    handle.url = f"http://127.0.0.1:{port}"
    yield handle
    handle.terminate()


def _wait_running(job_id: str, timeout: float = 30) -> jobs.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job.status.value == "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ran: {jobs.get(job_id).status}")


def _assert_ran_once_each(job_ids: list[str], *, rerun: set[str] = frozenset()) -> list[jobs.Job]:
    """Every job succeeded, with exactly one `end` event; only jobs in `rerun` took a second attempt."""
    done = [client.wait(job_id, timeout=60) for job_id in job_ids]
    assert [j.status.value for j in done] == ["succeeded"] * len(done)
    for job in done:
        received = list(client.events(job.id, timeout=10))
        assert [e.seq for e in received] == list(range(1, len(received) + 1)), job.id
        assert [e.type for e in received].count("end") == 1
        assert job.attempts == (2 if job.id in rerun else 1), (job.id, job.attempts)
    return done


def _kill_while_running(victim, job_ids: list[str]) -> str:
    """SIGKILL the worker process group of `victim` (a host dying) once it runs one of the jobs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for job_id in job_ids:
            job = jobs.get(job_id)
            if job.status.value == "running" and job.worker == victim.nodename:
                victim.kill()
                return job_id
        time.sleep(0.05)
    raise AssertionError(f"{victim.nodename} ran none of {len(job_ids)} jobs")


def test_scale_out_on_redis(stack, control_worker, start_worker, reaper, api_server, second_api):
    other = start_worker("control", concurrency=1)
    one, two = httpx.Client(base_url=api_server.url, timeout=30), httpx.Client(base_url=second_api.url,
                                                                               timeout=30)

    # The probe the manifests use answers for a live node and fails for a missing one.
    probes = [subprocess.Popen([*CLI, "worker-ping", *target], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
              for target in ([other.nodename], ["nobody@nowhere", "--timeout", "1"])]
    (alive, _), _ = probes[0].communicate(timeout=60), probes[1].communicate(timeout=60)
    assert probes[0].returncode == 0 and other.nodename in alive
    assert probes[1].returncode == 1

    # A burst through one API process spreads over both workers; each job runs exactly once.
    burst = [one.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 0.3}}).json()["job_id"]
             for _ in range(16)]
    done = _assert_ran_once_each(burst)
    assert len({j.result["worker"] for j in done}) >= 2
    assert other.nodename in {j.result["worker"] for j in done}

    # Each worker process reports itself for /metrics (a heartbeat in Redis), read by any API process.
    families = {f.name: f for f in text_string_to_metric_families(two.get("/metrics").text)}
    up = {s.labels["pool"]: s.value for s in families["switchyard_workers"].samples}
    assert up.get("control", 0) >= 2

    # Joined from the other API process while it runs: every event, in order, through `end`.
    live = one.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 1.5}}).json()["job_id"]
    with connect_sse(two, "GET", f"/jobs/{live}/events") as source:
        streamed = [json.loads(sse.data) for sse in source.iter_sse()]
    assert [e["seq"] for e in streamed] == list(range(1, len(streamed) + 1))
    assert streamed[-1]["type"] == "end" and streamed[-1]["data"]["status"] == "succeeded"

    # Started through one API process, running on some worker, cancelled through the other.
    long = one.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 60}}).json()["job_id"]
    _wait_running(long)
    assert two.post(f"/jobs/{long}/cancel").status_code in (200, 202)
    assert client.wait(long, timeout=30).status.value == "cancelled"

    # A host dies mid-job: its job is requeued when the lease expires and finishes elsewhere, once.
    slow = [one.post("/jobs", json={"kind": "control.ping", "params": {"seconds": 2}}).json()["job_id"]
            for _ in range(4)]
    killed = _kill_while_running(other, slow)
    done = _assert_ran_once_each(slow, rerun={killed})
    assert next(j for j in done if j.id == killed).result["worker"] != other.nodename


class Producer:
    """A producer process on another broker (this test process's Celery app is bound to Redis): reads
    ``n seconds`` lines, enqueues that many pings, answers with their ids. One start-up for all."""

    CODE = ("import sys\nfrom switchyard import client\n"
            "for line in sys.stdin:\n"
            "    n, seconds = line.split()\n"
            "    print(' '.join(client.enqueue('control.ping', {'seconds': float(seconds)}).id\n"
            "                   for _ in range(int(n))), flush=True)\n")

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen([sys.executable, "-c", self.CODE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)

    def enqueue(self, n: int, seconds: float) -> list[str]:
        self.process.stdin.write(f"{n} {seconds}\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().split()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def test_scale_out_on_rabbitmq(stack, start_worker, second_api, amqp_url):  # noqa: F811 - imported fixture
    env = {"SWITCHYARD_BROKER_URL": amqp_url}
    # One of the two runs beat (the reaper) on this broker, as a control deployment would.
    first = start_worker("control", env=env, concurrency=1, beat=True, wait=False)
    second = start_worker("control", env=env, concurrency=1, wait=False)
    producer = Producer(stack.env(**env))
    first.wait_ready(), second.wait_ready()

    done = _assert_ran_once_each(producer.enqueue(10, 0.3))
    assert {first.nodename, second.nodename} <= {j.result["worker"] for j in done}

    # Cancelled through an API process: cancel needs the ledger and Redis, not the broker.
    long = producer.enqueue(1, 60)[0]
    _wait_running(long)
    assert httpx.post(f"{second_api.url}/jobs/{long}/cancel", timeout=30).status_code in (200, 202)
    assert client.wait(long, timeout=30).status.value == "cancelled"

    # RabbitMQ hands the dead consumer's message to the survivor at once; the lease makes it wait
    # until the reaper requeues the job, so it still runs once at a time and finishes.
    slow = producer.enqueue(4, 2)
    producer.close()
    killed = _kill_while_running(second, slow)
    _assert_ran_once_each(slow, rerun={killed})
    first.terminate()
