"""Core pieces that need no servers: settings, the task catalogue, pool profiles, events, supervision."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from switchyard import task_catalog
from switchyard.config import Settings
from switchyard.errors import InvalidParamsError, UnknownTaskError
from switchyard.events import Event


def test_settings_mask_secrets_and_url_passwords(monkeypatch):
    # Only what this test sets: the session's stack puts SWITCHYARD_* variables (random temporary paths
    # among them) in the environment, and a short secret such as "k1" can occur in a random path.
    for key in [k for k in os.environ if k.startswith("SWITCHYARD_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SWITCHYARD_WEBHOOK_SECRET_GITHUB", "gh-secret-4d1f")
    settings = Settings(database_url="postgresql://app:db-password-93c2@db:5432/x",
                        webhook_secret="webhook-secret-7a0e", api_keys="api-key-one-5b8d:acme, api-key-two-e61c:globex",
                        redis_url=None, broker_url=None)
    masked = json.dumps(settings.masked())
    for secret in ("db-password-93c2", "webhook-secret-7a0e", "api-key-one-5b8d", "api-key-two-e61c", "gh-secret-4d1f"):
        assert secret not in masked
    assert settings.masked()["api_keys"] == "***" and settings.masked()["webhook_secret"] == "***"
    assert settings.masked()["database_url"] == "postgresql://app:***@db:5432/x"
    assert settings.masked()["webhook_sources"] == ["github"]
    assert settings.api_key_tenants() == {"api-key-one-5b8d": "acme", "api-key-two-e61c": "globex"}
    assert settings.webhook_secret_for("github") == "gh-secret-4d1f"
    assert settings.webhook_secret_for("other") == "webhook-secret-7a0e"
    assert settings.effective_broker_url is None


def test_registry_validates_params_with_field_errors():
    assert task_catalog.validate_params("switchyard.control.ping", {"seconds": 2}).seconds == 2
    with pytest.raises(InvalidParamsError) as excinfo:
        task_catalog.validate_params("control.ping", {"seconds": -1, "colour": "red"})
    assert {tuple(e["loc"]) for e in excinfo.value.errors} == {("seconds",), ("colour",)}
    with pytest.raises(UnknownTaskError):
        task_catalog.get_spec("control.nope")
    assert task_catalog.get_spec("control.ping").kind == "control.ping"
    assert task_catalog.json_schema("control.ping")["properties"]["seconds"]["minimum"] == 0


def test_pool_profiles_follow_the_design():
    from workers.profiles import profiles, worker_argv

    pools = profiles()
    assert pools["finetune"].concurrency == 1 and pools["finetune"].max_tasks_per_child == 1
    assert pools["agent"].pool == "threads" and pools["agent"].concurrency >= 16
    assert "celery" in pools["control"].queues and pools["control"].beat
    argv = worker_argv(pools["index"], nodename="index-1@%h")
    assert argv[argv.index("-Q") + 1] == "index" and argv[argv.index("--prefetch-multiplier") + 1] == "1"
    assert "-B" not in argv


def test_event_round_trips_through_json_and_sse():
    event = Event(seq=3, job_id="j1", type="progress", data={"done": 1}, ts=1.5)
    assert Event.from_json(event.to_json()) == event
    assert event.to_sse() == {"id": "3", "event": "progress", "data": event.to_json()}


def test_supervisor_restarts_a_dead_child(tmp_path):
    from switchyard.dev import Child, Supervisor

    lines: list[str] = []
    supervisor = Supervisor(on_event=lines.append)
    flaky = supervisor.add(Child("flaky", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "f.log"))
    first_pid = flaky.process.pid
    deadline = time.monotonic() + 10
    while flaky.restarts == 0 and time.monotonic() < deadline:
        supervisor.check()
        time.sleep(0.05)
    assert flaky.restarts == 1 and flaky.process.pid != first_pid
    assert any("exited with code 3" in line for line in lines)
    supervisor.stop(timeout=5)
