"""Shared fixtures: one embedded PostgreSQL (+pgvector) and one private Redis per test session, and
real worker / API processes started on demand.

``SWITCHYARD_DATABASE_URL`` / ``SWITCHYARD_REDIS_URL`` in the environment replace the embedded servers
(the database must have pgvector available).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Short leases so chaos tests see a dead worker's job requeued within seconds.
TEST_ENV = {
    "SWITCHYARD_LEASE_S": "3",
    "SWITCHYARD_REAPER_INTERVAL_S": "1",
    "SWITCHYARD_DISPATCH_GRACE_S": "5",
    "SWITCHYARD_LOG_LEVEL": "INFO",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


class Stack:
    def __init__(self, state_dir: Path, database_url: str, redis_url: str, broker_url: str):
        self.state_dir = state_dir
        self.database_url = database_url
        self.redis_url = redis_url
        self.broker_url = broker_url

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **extra}


@pytest.fixture(scope="session")
def stack():
    from switchyard.config import reload_settings
    from switchyard.embedded import EmbeddedPostgres, EmbeddedRedis

    state = Path(tempfile.mkdtemp(prefix="switchyard-test-"))
    postgres = redis = None
    database_url = os.environ.get("SWITCHYARD_DATABASE_URL")
    redis_url = os.environ.get("SWITCHYARD_REDIS_URL")
    if not database_url:
        postgres = EmbeddedPostgres(state / "postgres")
        database_url = postgres.start()
    if not redis_url:
        redis = EmbeddedRedis(state / "redis")
        redis_url = redis.start()
    broker_url = os.environ.get("SWITCHYARD_BROKER_URL") or redis_url
    saved = {k: os.environ.get(k) for k in (*TEST_ENV, "SWITCHYARD_DATABASE_URL", "SWITCHYARD_REDIS_URL",
                                             "SWITCHYARD_BROKER_URL", "SWITCHYARD_STATE_DIR")}
    os.environ.update(TEST_ENV)
    os.environ.update({"SWITCHYARD_DATABASE_URL": database_url, "SWITCHYARD_REDIS_URL": redis_url,
                       "SWITCHYARD_BROKER_URL": broker_url, "SWITCHYARD_STATE_DIR": str(state / "state")})
    reload_settings()
    from switchyard.db import close_pools, migrate

    migrate()
    yield Stack(state, database_url, redis_url, broker_url)
    close_pools()
    if redis:
        redis.stop()
    if postgres:
        postgres.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reload_settings()
    shutil.rmtree(state, ignore_errors=True)


class ProcessHandle:
    """A platform process (worker, API) started for a test, in its own process group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, ready_text: str | None):
        self.name = name
        self.log_path = log_path
        self.ready_text = ready_text
        with open(log_path, "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> ProcessHandle:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if self.ready_text is None or self.ready_text in self.log():
                return self
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log()[-4000:]}")

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM (graceful shutdown) and wait."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its pool children): a crash."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


@pytest.fixture(scope="session")
def process_factory(stack):
    started: list[ProcessHandle] = []
    logs = stack.state_dir / "logs"
    logs.mkdir(exist_ok=True)

    def start(name: str, argv: list[str], *, env: dict[str, str] | None = None, ready_text: str | None = None):
        handle = ProcessHandle(name, argv, stack.env(**(env or {})), logs / f"{name}-{uuid.uuid4().hex[:6]}.log",
                               ready_text)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.kill()


@pytest.fixture(scope="session")
def start_worker(process_factory):
    """``start_worker(pool, env=None, concurrency=None, beat=False)`` → a ready worker process."""

    def start(pool: str, *, env: dict[str, str] | None = None, concurrency: int | None = None,
              beat: bool = False, wait: bool = True) -> ProcessHandle:
        name = f"{pool}-{uuid.uuid4().hex[:6]}"
        argv = [sys.executable, "-m", "switchyard.cli", "worker", pool, "-n", f"{name}@%h", "--loglevel", "INFO"]
        if concurrency:
            argv += ["-c", str(concurrency)]
        if pool == "control" and not beat:
            argv.append("--no-beat")
        handle = process_factory(f"worker-{name}", argv, env=env, ready_text=" ready.")
        return handle.wait_ready() if wait else handle

    return start


@pytest.fixture(scope="session")
def control_worker(start_worker):
    """The session's control worker with beat: the lease reaper and forwarding of raw messages."""
    return start_worker("control", beat=True)


@pytest.fixture(scope="session")
def api_server(process_factory, stack):
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    handle = process_factory("api", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)])
    wait_for_port(port, timeout=60)
    handle.url = f"http://127.0.0.1:{port}"
    return handle
