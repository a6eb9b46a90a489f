"""A private stack whose servers a test may kill, and the soak: a mixed workload under a seeded fault schedule.

``PrivateStack`` starts its own Postgres (+pgvector), Redis and platform processes (workers, beat, API,
listener), so killing Redis or Postgres never touches the session's stack that other tests share.
``run_soak`` drives producers (signed webhooks, the trigger stream), injects faults (kill -9 of workers,
Redis and Postgres restarts, SIGSTOP past the lease) at seeded moments, then checks the promises of
RELIABILITY.md and returns a report (``format_table`` prints it). Run the full profile with ``make soak``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import httpx
import psycopg
import redis
from psycopg.rows import dict_row

from switchyard.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, wait_for_port
from switchyard.signing import sign
from tests.conftest import TEST_ENV, WEBHOOK_SECRET, ProcessHandle

# The private stack's settings: short leases and re-send delays so recovery fits in a test.
FAULT_ENV = {
    **TEST_ENV,
    "SWITCHYARD_REQUEUE_AFTER_S": "4",
    "SWITCHYARD_DISPATCH_GRACE_S": "3",
    "SWITCHYARD_INFRA_RETRY_BACKOFF_S": "0.5",
    "SWITCHYARD_MAX_INFRA_RETRIES": "10",
    "SWITCHYARD_LEDGER_RETRY_S": "90",
}


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


def rabbitmq_available() -> bool:
    return bool(shutil.which("rabbitmqctl")) and _rabbitmqctl("status").returncode == 0


class PipedProcessHandle(ProcessHandle):
    """A ``ProcessHandle`` whose output reaches its log file through a pipe, copied by a thread here: a
    process whose file size limit a test lowers (``limit_file_size``) must still be able to log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, ready_text: str | None):
        self.name, self.log_path, self.ready_text = name, log_path, ready_text
        log_path.touch()
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                        cwd=Path(__file__).resolve().parents[2], start_new_session=True)
        threading.Thread(target=self._copy, name=f"log-{name}", daemon=True).start()

    def _copy(self) -> None:
        with open(self.log_path, "ab") as out:
            while chunk := self.process.stdout.read1(65536):
                out.write(chunk)
                out.flush()


def limit_file_size(pid: int, nbytes: int) -> None:
    """A disk that fills up now, for one process tree: lower RLIMIT_FSIZE (prlimit) of ``pid`` and its
    children, so their writes past ``nbytes`` fail with EFBIG (Python ignores SIGXFSZ, and billiard's pool
    children keep an ignored signal ignored). Needs no root and touches no other process."""
    import psutil

    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        proc.rlimit(psutil.RLIMIT_FSIZE, (nbytes, psutil.RLIM_INFINITY))


class PrivateStack:
    """Postgres, Redis, and platform processes of one test's own, on loopback."""

    def __init__(self, *, broker: str = "redis", env: dict[str, str] | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="switchyard-faults-"))
        self.broker = broker
        self.extra_env = env or {}
        self.postgres = EmbeddedPostgres(self.root / "postgres")
        self.redis = EmbeddedRedis(self.root / "redis")
        self.vhost: str | None = None
        self.processes: list[ProcessHandle] = []
        (self.root / "logs").mkdir()

    # --- servers --------------------------------------------------------------------------------
    def start(self) -> PrivateStack:
        from switchyard.db import migrate

        database_url = self.postgres.start()
        redis_url = self.redis.start()
        broker_url = redis_url
        if self.broker == "rabbitmq":
            self.vhost = f"switchyard-soak-{uuid.uuid4().hex[:8]}"
            assert _rabbitmqctl("add_vhost", self.vhost).returncode == 0
            assert _rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*").returncode == 0
            broker_url = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.database_url, self.redis_url, self.broker_url = database_url, redis_url, broker_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
        self.env.update(FAULT_ENV)
        self.env.update({"SWITCHYARD_DATABASE_URL": database_url, "SWITCHYARD_REDIS_URL": redis_url,
                         "SWITCHYARD_BROKER_URL": broker_url,
                         "SWITCHYARD_STATE_DIR": str(self.root / "state"), **self.extra_env})
        migrate(database_url)
        return self

    def kill_redis(self) -> None:
        """kill -9: the broker's queued messages (on the Redis broker) and the event logs die with it."""
        if self.redis.process is not None:
            self.redis.process.kill()
            self.redis.process.wait()

    def start_redis(self) -> None:
        self.redis = EmbeddedRedis(self.root / "redis", port=self.redis.port)
        self.redis.start()

    def crash_postgres(self) -> None:
        """An immediate shutdown: no checkpoint, crash recovery at the next start."""
        self.postgres._run("pg_ctl", "-D", str(self.postgres.data_dir), "-m", "immediate", "-w", "stop",
                           check=False)

    def start_postgres(self) -> None:
        self.postgres.start()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Point this test process's settings (events.subscribe, jobs.*) at the private stack; restored
        after. Never send through the Celery app inside: it binds to the first broker it sees."""
        from switchyard.config import reload_settings

        try:
            with mock.patch.dict(os.environ, {k: v for k, v in self.env.items() if k.startswith("SWITCHYARD_")}):
                reload_settings()
                yield
        finally:
            reload_settings()

    def send_raw(self, task: str, kwargs: dict, queue: str) -> str:
        """A raw producer's message (Celery ``send_task``, as DESIGN.md's producers send): the worker records
        the job. A Celery app of its own, bound to this stack's broker. Returns the job id."""
        import celery

        job_id = str(uuid.uuid4())
        app = celery.Celery(broker=self.broker_url)
        try:
            app.send_task(task, kwargs=kwargs, queue=queue, task_id=job_id)
        finally:
            app.close()
        return job_id

    def sql(self, statement: str, args: tuple = ()) -> list[dict]:
        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as conn:
            cur = conn.execute(statement, args)
            return cur.fetchall() if cur.description else []

    # --- processes ------------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], ready_text: str | None = None, *,
              env: dict[str, str] | None = None, piped: bool = False) -> ProcessHandle:
        handle = (PipedProcessHandle if piped else ProcessHandle)(
            name, argv, {**self.env, **(env or {})}, self.root / "logs" / f"{name}-{uuid.uuid4().hex[:6]}.log",
            ready_text)
        self.processes.append(handle)
        return handle

    def worker(self, pool: str, *, concurrency: int | None = None, wait: bool = True,
               env: dict[str, str] | None = None, piped: bool = False) -> ProcessHandle:
        name = f"{pool}-{uuid.uuid4().hex[:6]}"
        argv = [sys.executable, "-m", "switchyard.cli", "worker", pool, "-n", f"{name}@%h", "--loglevel", "INFO"]
        if concurrency:
            argv += ["-c", str(concurrency)]
        if pool == "control":
            argv.append("--no-beat")
        handle = self.spawn(f"worker-{name}", argv, " ready.", env=env, piped=piped)
        handle.pool = pool
        return handle.wait_ready(120) if wait else handle

    def beat(self) -> ProcessHandle:
        return self.spawn("beat", [sys.executable, "-m", "switchyard.cli", "beat"])

    def api(self, port: int | None = None, *, piped: bool = False) -> ProcessHandle:
        port = port or free_port()
        handle = self.spawn("api", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)],
                            piped=piped)
        wait_for_port(port, timeout=90)
        handle.url = f"http://127.0.0.1:{port}"
        handle.port = port
        return handle

    def drop_broker_connections(self) -> None:
        """RabbitMQ closes every connection of our vhost (only ours: other tests may share the server)."""
        assert self.vhost is not None
        _rabbitmqctl("close_all_connections", "--vhost", self.vhost, "--limit", "1000", "switchyard soak fault")

    def listener(self) -> ProcessHandle:
        return self.spawn("listen", [sys.executable, "-m", "switchyard.cli", "listen"])

    def logs(self) -> str:
        return "\n".join(f"== {h.name}\n{h.log()[-3000:]}" for h in self.processes)

    def close(self) -> None:
        for handle in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(handle.process.pid, signal.SIGCONT)
            handle.kill()
        self.redis.stop()
        self.postgres.stop()
        if self.vhost:
            _rabbitmqctl("delete_vhost", self.vhost)
        shutil.rmtree(self.root, ignore_errors=True)


# --- producers ----------------------------------------------------------------------------------

def post_hook(api_url: Callable[[], str], kind: str, params: dict, key: str, *, deadline: float) -> str:
    """Submit a job through a signed webhook, retrying (same Idempotency-Key) until it is accepted."""
    body = json.dumps(params).encode()
    delay = 0.2
    while True:
        try:
            response = httpx.post(f"{api_url()}/hooks/{kind}", content=body, timeout=10, headers={
                "Switchyard-Signature": sign(WEBHOOK_SECRET, body), "Idempotency-Key": key,
                "Content-Type": "application/json"})
            if response.status_code == 202:
                return response.json()["job_id"]
            if response.status_code not in (429, 500, 502, 503):
                raise AssertionError(f"webhook refused: {response.status_code} {response.text}")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"webhook {key} not accepted in time")
        time.sleep(delay)
        delay = min(delay * 2, 3.0)


# --- the soak -----------------------------------------------------------------------------------

@dataclass
class Profile:
    name: str
    webhook_pings: int
    trigger_pings: int
    ingests: int
    submit_s: float  # producers spread their submissions over this long
    faults: dict[str, int]  # kind -> how many
    control_workers: int = 2
    drain_timeout_s: float = 120
    subscribers: int = 12


SHORT = Profile("short", webhook_pings=80, trigger_pings=30, ingests=6, submit_s=40,
                faults={"kill_worker": 1, "restart_redis": 1, "restart_postgres": 1, "sigstop_worker": 1,
                        "restart_api": 1})
FULL = Profile("full", webhook_pings=760, trigger_pings=200, ingests=60, submit_s=240,
               faults={"kill_worker": 4, "restart_redis": 3, "restart_postgres": 3, "sigstop_worker": 3,
                       "restart_api": 2},
               control_workers=3, drain_timeout_s=420, subscribers=40)


@dataclass
class Report:
    profile: str
    broker: str
    seed: int
    schedule: list[tuple[float, str]]
    submitted: int = 0
    jobs_run: int = 0
    succeeded: int = 0
    failed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stream_gaps: list[str] = field(default_factory=list)
    stale_leases: int = 0
    crashed: list[str] = field(default_factory=list)  # platform processes that died without being killed
    faults: Counter = field(default_factory=Counter)
    recovery_s: dict[str, float] = field(default_factory=dict)
    resent: int = 0
    infra_retries: int = 0
    wall_s: float = 0.0


    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stream_gaps or self.failed or self.stale_leases
                    or self.crashed)


def make_schedule(rng: random.Random, profile: Profile) -> list[tuple[float, str]]:
    """Fault times spread over the submission window (never two within 8 s, so each recovery is timed)."""
    kinds = [k for k, n in profile.faults.items() for _ in range(n)]
    rng.shuffle(kinds)
    slot = profile.submit_s / (len(kinds) + 1)
    return [(round(slot * (i + 1) + rng.uniform(-slot / 4, slot / 4), 1), kind) for i, kind in enumerate(kinds)]


def _pace(begun: float, done: int, interval: float) -> None:
    """Wait for the next submission's slot on the clock (not a fixed sleep after each one): submissions
    that waited out a fault, or a slow request on a loaded machine, are made up for at once, a backlog the
    platform must absorb, so the submission window stays ``submit_s`` long instead of stretching."""
    time.sleep(max(0.0, begun + done * interval - time.monotonic()))


class Soak:
    def __init__(self, stack: PrivateStack, profile: Profile, seed: int):
        self.stack = stack
        self.profile = profile
        self.rng = random.Random(seed)
        if stack.broker == "rabbitmq":  # the broker dropping connections (on Redis: restart_redis)
            profile = Profile(**{**profile.__dict__, "faults": {**profile.faults, "drop_broker": 2}})
            self.profile = profile
        self.schedule = make_schedule(self.rng, profile)
        self.report = Report(profile.name, stack.broker, seed, self.schedule)
        self.expected: dict[str, str] = {}  # idempotency key -> job id (once accepted)
        self.trigger_entries: dict[str, dict] = {}  # idempotency key -> stream entry
        self.documents: set[str] = set()
        self.streams: dict[str, list] = {}
        self.lock = threading.Lock()
        self.control: list[ProcessHandle] = []
        self.index: ProcessHandle | None = None
        self.api: ProcessHandle | None = None

    # --- set-up ---------------------------------------------------------------------------------
    def start_processes(self) -> None:
        s = self.stack
        self.control = [s.worker("control", concurrency=4, wait=False) for _ in range(self.profile.control_workers)]
        self.index = s.worker("index", concurrency=1, wait=False)
        s.beat()
        self.api = s.api()
        s.listener()
        for handle in [*self.control, self.index]:
            handle.wait_ready(180)

    # --- producers ------------------------------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + self.profile.submit_s + self.profile.drain_timeout_s

    def _accepted(self, key: str, job_id: str) -> None:
        with self.lock:
            self.expected[key] = job_id
            sample = len(self.streams) < self.profile.subscribers and self.rng.random() < 0.3
            if sample:
                self.streams[job_id] = []
        if sample:
            threading.Thread(target=self._subscribe, args=(job_id,), daemon=True).start()

    def webhook_producer(self) -> None:
        n = self.profile.webhook_pings + self.profile.ingests
        kinds = ["index.ingest"] * self.profile.ingests + ["control.ping"] * self.profile.webhook_pings
        self.rng.shuffle(kinds)
        begun = time.monotonic()
        for i, kind in enumerate(kinds):
            key = f"soak-hook-{i}"
            if kind == "index.ingest":
                docs = [{"id": f"doc-{i}-{j}", "text": f"Soak document {i}.{j}: " + "lorem ipsum " * 20}
                        for j in range(2)]
                self.documents.update(d["id"] for d in docs)
                params = {"collection": "soak", "documents": docs}
            else:
                params = {"seconds": round(self.rng.uniform(0, 1.2), 2)}
            self._accepted(key, post_hook(lambda: self.api.url, kind, params, key, deadline=self._deadline()))
            _pace(begun, i + 1, self.profile.submit_s / n)

    def trigger_producer(self) -> None:
        client = redis.Redis.from_url(self.stack.redis_url)
        begun = time.monotonic()
        for i in range(self.profile.trigger_pings):
            key = f"soak-trigger-{i}"
            entry = {"kind": "control.ping", "params": json.dumps({"seconds": round(self.rng.uniform(0, 1), 2)}),
                     "idempotency_key": key, "producer": "soak-stream"}
            self.trigger_entries[key] = entry
            self._xadd(client, entry)
            _pace(begun, i + 1, self.profile.submit_s / self.profile.trigger_pings)

    def _xadd(self, client: redis.Redis, entry: dict) -> None:
        from switchyard import constants

        while True:
            try:
                client.xadd(constants.TRIGGER_STREAM, entry)
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.5)  # Redis is down: the producer retries, as any stream producer must

    def resend_unseen_triggers(self) -> None:
        """An entry Redis lost before the listener read it is the producer's to send again (same key)."""
        keys = list(self.trigger_entries)
        rows = self.stack.sql("SELECT idempotency_key, id FROM jobs WHERE idempotency_key = ANY(%s)", (keys,))
        found = {r["idempotency_key"]: r["id"] for r in rows}
        client = redis.Redis.from_url(self.stack.redis_url)
        for key in keys:
            if key in found:
                if key not in self.expected:
                    self._accepted(key, found[key])
            else:
                self._xadd(client, self.trigger_entries[key])

    def _subscribe(self, job_id: str) -> None:
        from switchyard import events

        got = self.streams[job_id]
        try:
            for event in events.subscribe(job_id, timeout=self.profile.drain_timeout_s):
                got.append(event)
        except Exception as exc:  # recorded as a gap below
            got.append(("error", repr(exc)))

    # --- faults ---------------------------------------------------------------------------------
    def injector(self, started: float) -> None:
        for at, kind in self.schedule:
            time.sleep(max(0.0, started + at - time.monotonic()))
            self.replace_crashed()
            t0 = time.monotonic()
            print(f"[soak] t={t0 - started:6.1f}s fault {kind}", flush=True)
            getattr(self, f"_fault_{kind}")()
            self.report.faults[kind] += 1
            probe = post_hook(lambda: self.api.url, "control.ping", {"seconds": 0},
                              f"soak-probe-{uuid.uuid4().hex[:8]}", deadline=self._deadline())
            self._accepted(f"probe-{probe}", probe)
            self._wait_end(probe, timeout=90)
            took = time.monotonic() - t0
            self.report.recovery_s[kind] = max(self.report.recovery_s.get(kind, 0.0), round(took, 1))
            print(f"[soak] {kind}: a fresh job completed {took:.1f}s after the fault", flush=True)

    def replace_crashed(self) -> None:
        """A worker that died on its own is a finding (reported), and is replaced so the run goes on."""
        for i, handle in enumerate(self.control):
            if handle.process.poll() is not None:
                self.report.crashed.append(f"{handle.name}: exit {handle.process.returncode}")
                self.control[i] = self.stack.worker("control", concurrency=4)
        if self.index is not None and self.index.process.poll() is not None:
            self.report.crashed.append(f"{self.index.name}: exit {self.index.process.returncode}")
            self.index = self.stack.worker("index", concurrency=1)

    def _wait_end(self, job_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                rows = self.stack.sql("SELECT status FROM jobs WHERE id = %s", (job_id,))
                if rows and rows[0]["status"] in ("succeeded", "failed", "cancelled"):
                    return
            time.sleep(0.2)

    def _fault_kill_worker(self) -> None:
        victims = [*self.control, self.index]
        victim = self.rng.choice(victims)
        victim.kill()
        replacement = self.stack.worker(victim.pool, concurrency=4 if victim.pool == "control" else 1)
        if victim.pool == "control":
            self.control[self.control.index(victim)] = replacement
        else:
            self.index = replacement

    def _fault_restart_redis(self) -> None:
        self.stack.kill_redis()
        time.sleep(6)  # longer than redis-py's own retries: clients see the outage
        self.stack.start_redis()

    def _fault_restart_postgres(self) -> None:
        self.stack.crash_postgres()
        time.sleep(3)
        self.stack.start_postgres()

    def _fault_restart_api(self) -> None:
        self.api.kill()  # mid-request for some producers: they retry with the same Idempotency-Key
        self.api = self.stack.api(port=self.api.port)

    def _fault_drop_broker(self) -> None:
        self.stack.drop_broker_connections()

    def _fault_sigstop_worker(self) -> None:
        victim = self.rng.choice(self.control)
        os.killpg(victim.process.pid, signal.SIGSTOP)
        time.sleep(float(FAULT_ENV["SWITCHYARD_LEASE_S"]) * 1.5)  # past its lease: its jobs run elsewhere
        os.killpg(victim.process.pid, signal.SIGCONT)

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> Report:
        print(f"[soak] profile={self.profile.name} broker={self.stack.broker} seed={self.report.seed}", flush=True)
        print(f"[soak] schedule: {self.schedule}", flush=True)
        t_start = time.monotonic()
        self.start_processes()
        started = time.monotonic()
        threads = [threading.Thread(target=self.webhook_producer, daemon=True),
                   threading.Thread(target=self.trigger_producer, daemon=True),
                   threading.Thread(target=self.injector, args=(started,), daemon=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.profile.submit_s + self.profile.drain_timeout_s)
        self.drain()
        self.replace_crashed()
        self.check()
        self.report.wall_s = round(time.monotonic() - t_start, 1)
        return self.report

    def drain(self) -> None:
        deadline = time.monotonic() + self.profile.drain_timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                self.resend_unseen_triggers()
                if len(self.expected) >= self._wanted() and not self._unfinished():
                    break
            time.sleep(1)
        for job_id in list(self.streams):
            self._wait_stream(job_id, deadline)

    def _wanted(self) -> int:
        return (self.profile.webhook_pings + self.profile.ingests + self.profile.trigger_pings
                + sum(self.report.faults.values()))

    def _unfinished(self) -> list[str]:
        ids = list(self.expected.values())
        rows = self.stack.sql("SELECT id FROM jobs WHERE id = ANY(%s) AND status NOT IN"
                              " ('succeeded', 'failed', 'cancelled')", (ids,))
        return [r["id"] for r in rows]

    def _wait_stream(self, job_id: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            got = self.streams[job_id]
            if got and (isinstance(got[-1], tuple) or got[-1].is_end):
                return
            time.sleep(0.2)

    def check(self) -> None:
        r = self.report
        ids = list(self.expected.values())
        r.submitted = self._wanted()
        r.lost = [key for key in self._all_keys() if key not in self.expected] + self._unfinished()
        rows = self.stack.sql("SELECT id, status, error, redispatches, infra_retries FROM jobs WHERE id = ANY(%s)",
                              (ids,))
        r.jobs_run = len(rows)
        r.succeeded = sum(row["status"] == "succeeded" for row in rows)
        r.failed = [f"{row['id']}: {row['error']}" for row in rows if row["status"] == "failed"]
        r.resent = sum(row["redispatches"] for row in rows)
        r.infra_retries = sum(row["infra_retries"] for row in rows)
        # Side effects: one `end` per job, each document once with its chunks once.
        ends = self.stack.sql("SELECT job_id, count(*) AS n FROM job_events WHERE type = 'end'"
                              " AND job_id = ANY(%s) GROUP BY job_id HAVING count(*) > 1", (ids,))
        r.duplicated = [f"job {row['job_id']}: {row['n']} end events" for row in ends]
        docs = self.stack.sql(
            "SELECT d.id, d.chunk_count, (SELECT count(*) FROM chunks c JOIN collections k ON k.id = c.collection_id"
            " WHERE c.collection_id = d.collection_id AND c.document_id = d.id"
            " AND c.generation_id = k.active_generation) AS chunks"
            " FROM documents d JOIN collections k ON k.id = d.collection_id WHERE k.name = 'soak'")
        present = Counter(row["id"] for row in docs)
        r.duplicated += [f"document {d} stored {n} times" for d, n in present.items() if n > 1]
        r.duplicated += [f"document {row['id']}: {row['chunks']} chunks, {row['chunk_count']} expected"
                         for row in docs if row["chunks"] != row["chunk_count"]]
        r.lost += [f"document {d}" for d in sorted(self.documents - set(present))]
        # Streams: complete (end last), strictly ordered, every durable event present.
        durable = defaultdict(set)
        for row in self.stack.sql("SELECT job_id, seq FROM job_events WHERE job_id = ANY(%s)", (list(self.streams),)):
            durable[row["job_id"]].add(row["seq"])
        for job_id, got in self.streams.items():
            if not got or isinstance(got[-1], tuple) or not got[-1].is_end:
                r.stream_gaps.append(f"{job_id}: incomplete ({got[-1] if got else 'nothing'})")
                continue
            seqs = [e.seq for e in got]
            if seqs != sorted(set(seqs)):
                r.stream_gaps.append(f"{job_id}: out of order {seqs}")
            missing = durable[job_id] - set(seqs)
            if missing:
                r.stream_gaps.append(f"{job_id}: durable events missing {sorted(missing)}")
        r.stale_leases = self.stack.sql("SELECT count(*) AS n FROM jobs WHERE lease_owner IS NOT NULL"
                                        " AND status <> 'running'")[0]["n"]
        r.stale_leases += len(self.stack.sql("SELECT id FROM jobs WHERE status = 'running'"))

    def _all_keys(self) -> list[str]:
        n = self.profile.webhook_pings + self.profile.ingests
        return [f"soak-hook-{i}" for i in range(n)] + list(self.trigger_entries)


def format_table(reports: list[Report]) -> str:
    lines = ["| broker | profile | seed | jobs run | faults injected | lost | duplicated side effects | "
             "stream gaps | failed | crashed processes | re-sends | infra retries | longest recovery (s) | wall (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        faults = ", ".join(f"{k} {n}" for k, n in sorted(r.faults.items()))
        recovery = ", ".join(f"{k} {v}" for k, v in sorted(r.recovery_s.items()))
        lines.append(f"| {r.broker} | {r.profile} | {r.seed} | {r.jobs_run} | {faults} | {len(r.lost)} | "
                     f"{len(r.duplicated)} | {len(r.stream_gaps)} | {len(r.failed)} | {len(r.crashed)} | {r.resent} | "
                     f"{r.infra_retries} | {recovery} | {r.wall_s} |")
    return "\n".join(lines)


def run_soak(profile: Profile, *, broker: str = "redis", seed: int | None = None) -> Report:
    seed = seed if seed is not None else int(os.environ.get("SOAK_SEED", random.randrange(1 << 30)))
    stack = PrivateStack(broker=broker).start()
    try:
        with stack.activate():
            report = Soak(stack, profile, seed).run()
        for name in ("lost", "duplicated", "stream_gaps", "failed", "crashed"):
            for item in getattr(report, name)[:10]:
                print(f"[soak] {name}: {item}", flush=True)
        if not report.ok:
            print(stack.logs()[-20000:], flush=True)
        return report
    finally:
        stack.close()


def _report_from_json(raw: str) -> Report:
    data = json.loads(raw)
    return Report(**{**data, "schedule": [tuple(x) for x in data["schedule"]], "faults": Counter(data["faults"])})


def _soak_in_child(broker: str) -> subprocess.Popen:
    """One broker's soak in a process of its own (its own stack, seed and Celery app); its report comes back
    as the last line of its output, after ``REPORT_MARK``."""
    env = {**os.environ, "SOAK_BROKERS": broker, "SOAK_CHILD": "1"}
    return subprocess.Popen([sys.executable, "-m", "tests.chaos._soak"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parents[2])


REPORT_MARK = "[soak-report] "


def _relay(broker: str, child: subprocess.Popen, reports: dict[str, Report]) -> None:
    for line in child.stdout:
        if line.startswith(REPORT_MARK):
            reports[broker] = _report_from_json(line[len(REPORT_MARK):])
        else:
            print(f"[{broker}] {line}", end="", flush=True)
    child.wait()


if __name__ == "__main__":  # make soak
    only = os.environ.get("SOAK_BROKERS", "redis,rabbitmq").split(",")
    if "rabbitmq" in only and not rabbitmq_available():
        print("[soak] no RabbitMQ here: skipped", flush=True)
        only.remove("rabbitmq")
    profile = FULL if os.environ.get("SOAK_PROFILE", "full") == "full" else SHORT
    began = time.monotonic()
    if len(only) > 1 and not os.environ.get("SOAK_SEQUENTIAL"):
        # The brokers' soaks run at once, each on its own private stack: most of a soak's wall time is
        # its producers' pacing and its recovery waits, not CPU (SOAK_SEQUENTIAL=1 runs them in turn).
        found: dict[str, Report] = {}
        relays = [threading.Thread(target=_relay, args=(b, _soak_in_child(b), found)) for b in only]
        for relay in relays:
            relay.start()
        for relay in relays:
            relay.join()
        missing = [b for b in only if b not in found]
        reports = [found[b] for b in only if b in found]
    else:
        reports, missing = [run_soak(profile, broker=b) for b in only], []
    if os.environ.get("SOAK_CHILD"):
        for report in reports:
            print(REPORT_MARK + json.dumps({**vars(report), "faults": dict(report.faults)}), flush=True)
    else:
        print(format_table(reports), flush=True)
        print(f"[soak] all brokers: {time.monotonic() - began:.0f} s wall; load average "
              f"{os.getloadavg()[0]:.1f} at the end", flush=True)
    if missing:
        print(f"[soak] no report from {missing} (crashed: see its output above)", flush=True)
    sys.exit(0 if reports and not missing and all(r.ok for r in reports) else 1)
