"""Backbone benchmark: job round trip and small-job throughput, as ratios to bare Celery.

Both sides run on the same Redis broker, in the same run, with a worker of the same execution pool
and concurrency. The baseline is a bare Celery task whose caller waits on the Redis result backend.
switchyard's job also writes its ledger row (enqueue and finish durable, the claim asynchronous) and
publishes its events (queued, running, progress, succeeded, end) before the caller sees ``end``.

The floor of the round trip is bare Celery plus the two durable commits the no-lost-job promise needs
(accept, finish): the bench measures a bare durable ``INSERT`` commit on the same database, interleaved
with the round trips, and prints the floor and the ratio to it. That floor adds two commits' latency to
bare Celery and nothing for their CPU, so the bench also measures one: ``bare.durable`` (bench/_bare_app.py)
is the bare task doing the least a durable ledger must write (the producer commits the job's row before
it sends, the worker claims it and commits its finish before the acknowledgement), timed on the same
worker pool, interleaved. Figures are marked "loaded" when the load average exceeds 3 (other work shares
the cores).

    python bench/backbone.py            # full run (~1 minute)
    python bench/backbone.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POOL = ["-P", "threads", "-c", "2"]
BARE_NODE, OURS_NODE = f"bare-{os.getpid()}@bench", f"ours-{os.getpid()}@bench"


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 60
    while b" ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)
    return proc


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def _send_bare(app, ledger=None):
    """A bare Celery task; with ``ledger`` (a connection), the durable floor's: its row committed first."""
    if ledger is None:
        return app.send_task("bare.noop", queue="bare")
    from _bare_app import ACCEPT_SQL

    job_id = ledger.execute(ACCEPT_SQL).fetchone()[0]
    return app.send_task("bare.durable", [job_id], queue="bare")


def bare_round_trips(app, n: int, ledger=None) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        _send_bare(app, ledger).get(timeout=30)
        times.append(time.perf_counter() - t0)
    return times


FLOOR_TABLE_SQL = "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, v text NOT NULL)"


def durable_commits(conn, n: int) -> list[float]:
    """A bare durable ``INSERT`` commit (autocommit, ``synchronous_commit`` on), n times."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("INSERT INTO bench_floor (v) VALUES (%s)", ("x",))
        times.append(time.perf_counter() - t0)
    return times


def worker_cpu(proc: subprocess.Popen) -> float:
    """Seconds of CPU a worker process has used (the threads pool: one process does everything)."""
    import psutil

    times = psutil.Process(proc.pid).cpu_times()
    return times.user + times.system


def load_average() -> float:
    return os.getloadavg()[0]


def _paused(app, queue: str, node: str):
    """Stop a worker consuming ``queue`` (to fill a backlog), and a callable that resumes it."""
    app.control.cancel_consumer(queue, destination=[node], reply=True)

    def resume() -> None:
        app.control.add_consumer(queue, destination=[node], reply=True)

    return resume


def bare_throughput(app, n: int, *, drain: bool, ledger=None) -> float:
    """Tasks/s: ``drain`` times a worker emptying a backlog of n; otherwise send and run at once."""
    resume = _paused(app, "bare", BARE_NODE) if drain else None
    t0 = time.perf_counter()
    results = [_send_bare(app, ledger) for _ in range(n)]
    if resume:
        t0 = time.perf_counter()
        resume()
    for r in results:
        r.get(timeout=300)
    return n / (time.perf_counter() - t0)


def switchyard_round_trips(n: int) -> list[float]:
    from switchyard import client

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        job = client.enqueue("control.ping", {})
        for event in client.events(job.id, timeout=30):
            if event.is_end:
                break
        times.append(time.perf_counter() - t0)
    return times


def switchyard_throughput(n: int, *, drain: bool) -> float:
    from switchyard import client, constants
    from switchyard.redis_conn import get_redis
    from workers.app import app

    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(constants.JOBS_CHANNEL)
    resume = _paused(app, "control", OURS_NODE) if drain else None
    t0 = time.perf_counter()
    ids = {client.enqueue("control.ping", {}).id for _ in range(n)}
    if resume:
        t0 = time.perf_counter()
        resume()
    ended = 0
    deadline = time.monotonic() + 300
    while ended < n and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
        if message and b'"type":"end"' in message["data"]:
            ended += 1
    elapsed = time.perf_counter() - t0
    pubsub.close()
    assert ended == n, f"only {ended}/{n} jobs ended"
    assert len(ids) == n
    return n / elapsed


def where_time_goes(n: int) -> dict[str, float]:
    """p50 of each durable step the ledger adds, measured in isolation (ms)."""
    from switchyard import events, jobs

    parts: dict[str, list[float]] = {"ledger insert": [], "claim": [], "finish": [], "event publish": []}
    for _ in range(n):
        t0 = time.perf_counter()
        job, _ = jobs.create("switchyard.control.ping", {}, first_event=("status", {"status": "queued"}, time.time()))
        t1 = time.perf_counter()
        jobs.claim(job.id, "bench", "bench", 30)
        t2 = time.perf_counter()
        jobs.finish(job.id, "bench", jobs.JobStatus.SUCCEEDED, result={})
        t3 = time.perf_counter()
        events.publish(job.id, "progress", {"done": 1})
        t4 = time.perf_counter()
        parts["ledger insert"].append(t1 - t0)
        parts["claim"].append(t2 - t1)
        parts["finish"].append(t3 - t2)
        parts["event publish"].append(t4 - t3)
    return {k: statistics.median(v) * 1000 for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_rt, n_tp = (30, 100) if args.quick else (300, 1000)

    from switchyard.embedded import ephemeral_stack

    with ephemeral_stack(prefix="switchyard-bench-") as env:
        state = Path(env["state"])
        child_env = {**os.environ, "BARE_BROKER_URL": env["SWITCHYARD_REDIS_URL"],
                     "BARE_BACKEND_URL": env["SWITCHYARD_REDIS_URL"].rsplit("/", 1)[0] + "/1",
                     "BARE_DATABASE_URL": env["SWITCHYARD_DATABASE_URL"],
                     "SWITCHYARD_LOG_LEVEL": "WARNING"}
        common = [*POOL, "-l", "INFO", "--without-gossip", "--without-mingle"]
        bare = start([sys.executable, "-m", "celery", "-A", "bench._bare_app", "worker", "-Q", "bare", "-n", BARE_NODE,
                      *common], child_env, state / "bare.log")
        ours = start([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "control", "-n", OURS_NODE,
                      *common], child_env, state / "ours.log")
        try:
            sys.path.insert(0, str(ROOT / "bench"))
            os.environ.update({k: v for k, v in child_env.items() if k.startswith("BARE_")})
            import psycopg
            from _bare_app import DURABLE_TABLE_SQL
            from _bare_app import app as bare_app

            floor_db = psycopg.connect(env["SWITCHYARD_DATABASE_URL"], autocommit=True)
            floor_db.execute(FLOOR_TABLE_SQL)
            floor_db.execute(DURABLE_TABLE_SQL)
            loads = [load_average()]
            # Warm every path (connections, imports, scripts) before measuring.
            bare_round_trips(bare_app, 10)
            bare_round_trips(bare_app, 10, ledger=floor_db)
            switchyard_round_trips(10)
            durable_commits(floor_db, 10)
            bare_rt, durable_rt, ours_rt, commits = [], [], [], []
            for _ in range(3):  # interleave, so drift on a shared machine hits every side alike
                bare_rt += bare_round_trips(bare_app, n_rt // 3)
                commits += durable_commits(floor_db, n_rt // 3)
                durable_rt += bare_round_trips(bare_app, n_rt // 3, ledger=floor_db)
                ours_rt += switchyard_round_trips(n_rt // 3)
            # Each worker's CPU per job while it drains (it idles while the backlog fills).
            bare_cpu, ours_cpu = worker_cpu(bare), worker_cpu(ours)
            bare_drain = bare_throughput(bare_app, n_tp, drain=True)
            bare_cpu = worker_cpu(bare) - bare_cpu
            durable_cpu = worker_cpu(bare)
            durable_drain = bare_throughput(bare_app, n_tp, drain=True, ledger=floor_db)
            durable_cpu = worker_cpu(bare) - durable_cpu
            ours_drain = switchyard_throughput(n_tp, drain=True)
            ours_cpu = worker_cpu(ours) - ours_cpu
            floor_db.close()
            bare_tp = bare_throughput(bare_app, n_tp, drain=False)
            ours_tp = switchyard_throughput(n_tp, drain=False)
            parts = where_time_goes(50 if args.quick else 200)
            loads.append(load_average())
        finally:
            bare.terminate()
            ours.terminate()
            bare.wait(30)
            ours.wait(30)

    ms = 1000
    loaded = max(loads) > 3
    print(f"\nbackbone benchmark ({'quick' if args.quick else 'full'}; Redis broker, threads pool, 2 slots; "
          f"load average {loads[0]:.1f} → {loads[-1]:.1f}{', LOADED: indicative only' if loaded else ''})")
    print(f"{'':34}{'bare Celery':>14}{'switchyard':>14}{'ratio':>9}")
    for label, q in (("round trip p50 (ms)", 50), ("round trip p99 (ms)", 99)):
        b, o = pct(bare_rt, q) * ms, pct(ours_rt, q) * ms
        print(f"{label:34}{b:14.2f}{o:14.2f}{o / b:8.2f}×")
    commit = pct(commits, 50) * ms
    floor = pct(bare_rt, 50) * ms + 2 * commit
    ours = pct(ours_rt, 50) * ms
    print(f"{'bare durable INSERT commit p50 (ms)':34}{commit:14.2f}")
    print(f"{'floor p50: bare + 2 commits (ms)':34}{floor:14.2f}{ours:14.2f}{ours / floor:8.2f}×   goal ≤ 1.2×")
    print(f"{'drain of a backlog (jobs/s)':34}{bare_drain:14.0f}{ours_drain:14.0f}{ours_drain / bare_drain:8.2f}×"
          "   goal ≥ 0.8×")
    # The measured floor: bare Celery doing the least a durable ledger must (bench/_bare_app.py).
    durable = pct(durable_rt, 50) * ms
    print("\nbare Celery + a minimal durable ledger (accept and finish durable, claim asynchronous; measured):")
    print(f"{'round trip p50 (ms)':34}{durable:14.2f}{ours:14.2f}{ours / durable:8.2f}×")
    print(f"{'drain of a backlog (jobs/s)':34}{durable_drain:14.0f}{ours_drain:14.0f}"
          f"{ours_drain / durable_drain:8.2f}×   (its own ratio to bare Celery: {durable_drain / bare_drain:.2f}×)")
    per_job = 1000 / n_tp
    print(f"{'worker CPU per job, drain (ms)':34}{bare_cpu * per_job:14.2f}{ours_cpu * per_job:14.2f}"
          f"{ours_cpu / bare_cpu:8.2f}×   (bare + minimal durable ledger: {durable_cpu * per_job:.2f})")
    print(f"{'send + run, one producer (jobs/s)':34}{bare_tp:14.0f}{ours_tp:14.0f}{ours_tp / bare_tp:8.2f}×")
    print("\nwhere switchyard's extra time goes (p50 of each step alone, ms):")
    for name, value in parts.items():
        print(f"  {name:20}{value:8.3f}")


if __name__ == "__main__":
    main()
