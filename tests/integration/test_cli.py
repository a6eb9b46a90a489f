"""The command line: `switchyard dev` supervises the stack; `tail`, `config` and `schema` print."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from switchyard import client
from switchyard.embedded import free_port

pytestmark = pytest.mark.integration


def _cli(stack, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "switchyard.cli", *args], env=stack.env(**env),
                          capture_output=True, text=True, timeout=120)


def test_dev_supervises_restarts_and_stops_cleanly(stack, tmp_path):
    state = tmp_path / "state"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchyard.cli", "dev", "--pools", "control", "--no-listen", "--no-defaults"],
        env=stack.env(SWITCHYARD_STATE_DIR=str(state), SWITCHYARD_API_PORT=str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not any("switchyard is up" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            lines.append(proc.stdout.readline())
        env_file = dict(line.split("=", 1) for line in (state / "dev.env").read_text().splitlines())
        assert env_file["SWITCHYARD_DATABASE_URL"] == stack.database_url
        assert env_file["SWITCHYARD_API_URL"] == f"http://127.0.0.1:{port}"

        assert client.wait(client.enqueue("control.ping", {}).id, timeout=60).status.value == "succeeded"

        worker_pid = int(re.search(r"started worker:control \(pid (\d+)", "".join(lines)).group(1))
        os.kill(worker_pid, signal.SIGKILL)
        while not any("restarted worker:control" in line for line in lines):
            assert time.monotonic() < deadline + 60, "".join(lines)
            lines.append(proc.stdout.readline())
        assert client.wait(client.enqueue("control.ping", {}).id, timeout=60).status.value == "succeeded"
    finally:
        os.killpg(proc.pid, signal.SIGINT) if proc.poll() is None else None
        # dev gives each group (workers and API, then infrastructure) 30 s to stop before SIGKILL: on a
        # loaded machine a warm shutdown can use it, so wait past both budgets.
        out, _ = proc.communicate(timeout=150)
    assert proc.returncode == 0, out
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
    # Nothing of the stack outlives it: not the killed worker's embedded beat, not the restarted worker.
    leftovers = subprocess.run(["pgrep", "-f", f"celerybeat-schedule-{proc.pid}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_tail_config_and_schema(stack, control_worker):
    job = client.enqueue("control.ping", {"seconds": 0.3})
    client.wait(job.id, timeout=30)
    tail = _cli(stack, "tail", job.id)
    assert tail.returncode == 0 and "end: succeeded" in tail.stdout and "status → running" in tail.stdout
    raw = _cli(stack, "tail", job.id, "--json", "--after", "1")
    events = [json.loads(line) for line in raw.stdout.splitlines() if line.startswith("{")]
    assert events[0]["seq"] == 2 and events[-1]["type"] == "end"

    config = json.loads(_cli(stack, "config", SWITCHYARD_API_KEYS="secret-key:acme").stdout)
    assert config["api_keys"] == "***" and config["webhook_secret"] == "***"
    assert "secret-key" not in json.dumps(config)

    schema = json.loads(_cli(stack, "schema", "control.ping").stdout)
    assert schema["properties"]["seconds"]["type"] == "number"
