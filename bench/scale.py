"""Scale-out: index throughput with one and with two worker processes on the same broker.

    python bench/scale.py             # 48 package descriptions, one ingest job per document, 6 rounds
    python bench/scale.py --docs 24   # shorter

Its own embedded Postgres + pgvector and Redis; two real `switchyard worker index` processes with
distinct node names (a stand-in for two hosts), each `-c 1` with one torch thread, so one process is one
core's worth of work. Both stay up the whole run; in a "1 worker" round the second one is told to stop
consuming the `index` queue (Celery's cancel_consumer) and in a "2 workers" round to consume it again.
Rounds alternate 1, 2, 1, 2, ... on fresh documents (the embedding cache would otherwise make later
rounds free), so drift in the machine's load hits both alike. Throughput is chunks embedded per second
of wall time from the first enqueue to the last job's end; the baseline is the 1-worker rate from the
same run, and the ratio is 2-worker / 1-worker (ideal 2.0 when two cores are free).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backbone import start  # noqa: E402 - after the path tweak
from bench.index import package_descriptions  # noqa: E402


def ingest_round(docs: list[dict], collection: str) -> tuple[int, float, set[str]]:
    """One job per document, all enqueued at once; ``(chunks embedded, seconds, workers used)``."""
    from switchyard import client

    started = time.perf_counter()
    ids = [client.enqueue("index.ingest", {"collection": collection, "documents": [d]}).id for d in docs]
    done = [client.wait(job_id, timeout=1800) for job_id in ids]
    seconds = time.perf_counter() - started
    failed = [j for j in done if j.status.value != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} ingest job(s) failed: {failed[0].error}")
    return sum(j.result["chunks_embedded"] for j in done), seconds, {j.worker for j in done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=6, help="alternating 1- and 2-worker rounds (even)")
    args = parser.parse_args()
    rounds = max(2, args.rounds - args.rounds % 2)

    from switchyard.embedded import ephemeral_stack

    with ephemeral_stack(prefix="switchyard-bench-scale-") as env:
        os.environ["SWITCHYARD_BROKER_URL"] = env["SWITCHYARD_BROKER_URL"]
        child_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
                     "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        logs = Path(env["state"])
        nodes = [f"scale-{i}-{os.getpid()}@bench" for i in (1, 2)]
        workers = [start([sys.executable, "-m", "switchyard.cli", "worker", "index", "-c", "1", "-n", node],
                         child_env, logs / f"worker-{i}.log") for i, node in enumerate(nodes)]
        try:
            run(nodes, args.docs, rounds)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(60)


def run(nodes: list[str], n_docs: int, rounds: int) -> None:
    from workers.app import app

    docs = package_descriptions(n_docs + 2)
    warm, docs = docs[:2], docs[2:]
    # Warm both workers (model load is not timed): one job each, by pausing the other.
    for i, other in enumerate(reversed(nodes)):
        app.control.cancel_consumer("index", destination=[other], reply=True)
        ingest_round([warm[i]], "warm-up")
        app.control.add_consumer("index", destination=[other], reply=True)

    totals = {1: [0, 0.0], 2: [0, 0.0]}
    for r in range(rounds):
        n_workers = 1 if r % 2 == 0 else 2
        part = docs[r * len(docs) // rounds:(r + 1) * len(docs) // rounds]
        if n_workers == 1:
            app.control.cancel_consumer("index", destination=[nodes[1]], reply=True)
        chunks, seconds, used = ingest_round(part, f"scale-{r}")
        if n_workers == 1:
            app.control.add_consumer("index", destination=[nodes[1]], reply=True)
        totals[n_workers][0] += chunks
        totals[n_workers][1] += seconds
        print(f"  round {r + 1}/{rounds}: {n_workers} worker(s), {len(part)} jobs, {chunks} chunks, "
              f"{seconds:.2f} s, {chunks / seconds:.1f} chunks/s, ran on {len(used)} node(s)", flush=True)

    one, two = (totals[k][0] / totals[k][1] for k in (1, 2))
    print(f"\n{'run':40} {'chunks':>7} {'seconds':>8} {'chunks/s':>9}  ratio")
    print(f"{'1 index worker process (baseline)':40} {totals[1][0]:7d} {totals[1][1]:8.2f} {one:9.1f}  1.00")
    print(f"{'2 index worker processes':40} {totals[2][0]:7d} {totals[2][1]:8.2f} {two:9.1f}  {two / one:.2f}")
    print(f"\ncores on this machine: {os.cpu_count()}; load average at the end: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
