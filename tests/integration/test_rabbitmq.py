"""RabbitMQ as the broker (``amqp://``), in a private vhost of the machine's RabbitMQ."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest

from switchyard import client, jobs

pytestmark = pytest.mark.integration


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def amqp_url():
    if not shutil.which("rabbitmqctl") or _rabbitmqctl("status").returncode != 0:
        pytest.skip("no RabbitMQ server on this machine (rabbitmqctl status fails)")
    vhost = f"switchyard-test-{uuid.uuid4().hex[:8]}"
    assert _rabbitmqctl("add_vhost", vhost).returncode == 0
    assert _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").returncode == 0
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


def test_jobs_run_over_rabbitmq(stack, start_worker, amqp_url):
    worker = start_worker("control", env={"SWITCHYARD_BROKER_URL": amqp_url})
    env = stack.env(SWITCHYARD_BROKER_URL=amqp_url)
    out = subprocess.run([sys.executable, "-m", "switchyard.cli", "submit", "control.ping", '{"seconds": 0.2}'],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    job_id = out.stdout.strip().splitlines()[-1]
    assert client.wait(job_id, timeout=60).status.value == "succeeded"

    raw_id = f"raw-amqp-{uuid.uuid4()}"
    producer = ("import celery, sys\n"
                "celery.Celery(broker=sys.argv[1]).send_task('switchyard.control.ping', task_id=sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", producer, amqp_url, raw_id], check=True, timeout=60)
    assert client.wait(raw_id, timeout=60).status.value == "succeeded"
    assert jobs.get(raw_id).producer == "celery"
    worker.terminate()
