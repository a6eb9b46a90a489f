"""Shared fixtures: one embedded PostgreSQL (+pgvector) and one private Redis per test session, and
real worker / API processes started on demand.

``SWITCHYARD_DATABASE_URL`` / ``SWITCHYARD_REDIS_URL`` in the environment replace the embedded servers
(the database must have pgvector available).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WEBHOOK_SECRET = "test-webhook-secret"

# Short leases so chaos tests see a dead worker's job requeued within seconds (renewed every 2 s: a
# loaded CI machine must not starve a live worker's heartbeat into a spurious requeue).
TEST_ENV = {
    "SWITCHYARD_LEASE_S": "6",
    "SWITCHYARD_REAPER_INTERVAL_S": "1",
    "SWITCHYARD_DISPATCH_GRACE_S": "5",
    "SWITCHYARD_LOG_LEVEL": "INFO",
    "SWITCHYARD_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


# Inputs (docs/security-inputs.md): tests read the demo files by path, and outbound webhooks go to
# receivers on "localhost" (an explicit allowlist entry may be a loopback address). Set here, not in
# the stack fixture, because unit tests read demo files too; security tests override both.
# Pytest's own temporary directories are a root too: tests build tiny models and datasets there.
PYTEST_TMP = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
os.environ.setdefault("SWITCHYARD_FILE_ROOTS", f"{ROOT / 'demo'},{PYTEST_TMP}")
os.environ.setdefault("SWITCHYARD_EGRESS_ALLOW", "localhost")


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
    from switchyard.embedded import ephemeral_stack

    saved = {k: os.environ.get(k) for k in TEST_ENV}
    os.environ.update(TEST_ENV)
    with ephemeral_stack(prefix="switchyard-test-") as env:
        os.environ["SWITCHYARD_BROKER_URL"] = env["SWITCHYARD_BROKER_URL"]
        yield Stack(Path(env["state"]), env["SWITCHYARD_DATABASE_URL"], env["SWITCHYARD_REDIS_URL"],
                    env["SWITCHYARD_BROKER_URL"])
    os.environ.pop("SWITCHYARD_BROKER_URL", None)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
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
        handle.nodename = f"{name}@{socket.gethostname()}"
        return handle.wait_ready() if wait else handle

    return start


@pytest.fixture(scope="session")
def reaper(process_factory):
    """Celery beat on its own: schedules the lease reaper every second (any control worker runs it)."""
    return process_factory("beat", [sys.executable, "-m", "switchyard.cli", "beat"])


@pytest.fixture(scope="session")
def _control(start_worker, reaper):
    return {"worker": None}


@pytest.fixture
def control_worker(_control, start_worker):
    """A live control worker (restarted if a chaos test killed it) plus beat running the reaper."""
    handle = _control["worker"]
    if handle is None or handle.process.poll() is not None:
        handle = _control["worker"] = start_worker("control")
    return handle


@pytest.fixture(scope="session")
def api_server(process_factory, stack):
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    handle = process_factory("api", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)])
    wait_for_port(port, timeout=60)
    handle.url = f"http://127.0.0.1:{port}"
    return handle
