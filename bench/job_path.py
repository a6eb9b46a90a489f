"""One job's path, counted: every Postgres statement and Redis command of a ``control.ping`` round trip
(producer ``dispatch.enqueue`` → worker ``runner.run_job`` → finish → events → the caller sees ``end``),
per process, with the median time of each.

    python bench/job_path.py          # 30 round trips after a warm-up

Both sides are traced by wrapping psycopg's cursor and redis-py's command paths (bench/_trace.py); the
broker's own blocking reads (kombu's BRPOP loop) bypass them and are not counted.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backbone import start  # noqa: E402


def round_trip(i: int) -> tuple[str, float, float]:
    from switchyard import client
    from switchyard.logs import current_job_id

    token = current_job_id.set(f"round-{i}")
    t0 = time.perf_counter()
    try:
        job = client.enqueue("control.ping", {})
        for event in client.events(job.id, timeout=30):
            if event.is_end:
                break
    finally:
        current_job_id.reset(token)
    return job.id, t0, time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args()

    from switchyard.embedded import ephemeral_stack

    with ephemeral_stack(prefix="switchyard-path-") as env:
        state = Path(env["state"])
        trace = state / "trace.jsonl"
        child_env = {**os.environ, "SWITCHYARD_LOG_LEVEL": "WARNING", "JOB_PATH_TRACE": str(trace)}
        worker = start([sys.executable, "-m", "celery", "-A", "bench._traced_app", "worker", "-Q", "control",
                        "-P", "threads", "-c", "2", "-l", "INFO", "--without-gossip", "--without-mingle",
                        "-n", f"path-{os.getpid()}@bench"], child_env, state / "worker.log")
        try:
            for i in range(5):
                round_trip(-1 - i)  # warm: connections, scripts, imports
            from bench import _trace

            _trace.install(str(trace))
            time.sleep(0.5)
            trace.write_text("")
            rounds = [round_trip(i) for i in range(args.n)]
            time.sleep(1.0)  # let the worker finish writing after the last end
        finally:
            worker.terminate()
            worker.wait(30)
        records = [json.loads(line) for line in trace.read_text().splitlines() if line]

    producer_pid = os.getpid()
    by_job = {job_id: i for i, (job_id, _, _) in enumerate(rounds)}
    per_round: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    times: dict[tuple[str, str, str], list[float]] = collections.defaultdict(list)
    for r in records:
        side = "producer" if r["pid"] == producer_pid else "worker"
        job = r["job"]
        if job and job.startswith("round-"):
            i = int(job.split("-", 1)[1])
        elif job in by_job:
            i = by_job[job]
        else:  # untagged (the broker ack, the lease keeper): the round trip it fell in
            i = next((k for k, (_, t0, t1) in enumerate(rounds) if t0 <= r["t"] <= t1), None)
            side += " (untagged)"
        if i is None or i < 0:
            continue
        per_round[i][(side, r["kind"], r["what"])] += 1
        times[(side, r["kind"], r["what"])].append(r["ms"])

    n = len(rounds)
    rt = sorted(t1 - t0 for _, t0, t1 in rounds)
    print(f"\none job's path, {n} round trips (p50 {statistics.median(rt) * 1000:.2f} ms)")
    print(f"{'side':22}{'to':16}{'what':53}{'per job':>8}{'p50 ms':>9}")
    totals: collections.Counter = collections.Counter()
    for key in sorted(times):
        side, kind, what = key
        per_job = len(times[key]) / n
        if kind != "pg (pipelined)":
            totals[(side.split(" ")[0], kind)] += per_job
        print(f"{side:22}{kind:16}{what[:52]:53}{per_job:8.2f}{statistics.median(times[key]):9.3f}")
    print("\nround trips per job:", ", ".join(f"{s} {k} {v:.2f}" for (s, k), v in sorted(totals.items())))


if __name__ == "__main__":
    main()
