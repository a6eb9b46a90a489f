"""A lone agent run through the LangGraph-compatible API, driven by LangGraph's official SDK, against
``langgraph dev`` (the in-memory LangGraph server from ``langgraph-cli[inmem]``) in the same run.

Both servers serve the same trivial ``echo`` graph (graphs/echo.py: no model call), so what is measured
is each platform's own cost of a run: ``client.runs.wait`` on a new thread, p50/p99 over N runs one at a
time, and runs/s with 16 concurrent clients. switchyard persists every checkpoint in Postgres and every
run in its ledger; ``langgraph dev`` keeps them in memory.

``langgraph-cli[inmem]`` pins other versions of protobuf (and more) than switchyard's venv, so it lives
in its own venv and runs as a subprocess on 127.0.0.1::

    python3.11 -m venv /tmp/lgdev && /tmp/lgdev/bin/pip install "langgraph-cli[inmem]"
    python bench/agent_api.py [--runs 100] [--concurrent-runs 320] [--langgraph /tmp/lgdev/bin/langgraph]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS = 16
INPUT = {"messages": [{"role": "user", "content": "ping"}]}
# The module langgraph dev loads. It registers `graphs` as a bare package (its __init__ imports the
# switchyard core, which is not installed in langgraph dev's venv) so only graphs/echo.py and
# graphs/state.py (langgraph and langchain-core alone) are imported.
ECHO_MODULE = f"""
import sys, types
pkg = types.ModuleType("graphs")
pkg.__path__ = [{str(ROOT / "graphs")!r}]
sys.modules.setdefault("graphs", pkg)
from graphs.echo import build_echo
graph = build_echo()
"""


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def start(argv: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)


def wait_ready(proc: subprocess.Popen, log: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args[0]} not ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 9)
    proc.wait()


def _cpu_seconds(processes: list) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:  # a child that exited meanwhile
            pass
    return total


def _processes(pids: list[int], names: tuple[str, ...]) -> list:
    """The processes a server runs on: each pid with its children, and every process named in ``names``
    (the stores: Postgres's backends are children of its postmaster, not of the server). The machine's
    own idle Postgres and Redis are counted too and add nothing measurable."""
    found = {}
    for pid in pids:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            found[proc.pid] = proc
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and proc.info["name"].startswith(names):
            found[proc.pid] = proc
    return list(found.values())


def measure(url: str, runs: int, concurrent_runs: int, server_pids: list[int],
            stores: tuple[str, ...] = ()) -> dict[str, float]:
    """p50/p99 of a lone ``runs.wait`` (new thread each), then runs/s with ``CLIENTS`` concurrent clients
    and the CPU each side spent per run meanwhile (ms: the servers, with their stores, and this client)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=None)

    def one(c) -> float:
        t0 = time.perf_counter()
        values = c.runs.wait(None, "echo", input=INPUT)
        elapsed = time.perf_counter() - t0
        if values["messages"][-1]["content"] != "ping":
            raise RuntimeError(f"unexpected answer from {url}: {values}")
        return elapsed

    for _ in range(5):  # warm up: imports, pools, compiled graph
        one(client)
    # This client's own full collections (60-70 ms with the SDK and httpx loaded) would land in whichever
    # run happens to be timed, for either server: collect once, then keep the startup heap out of reach.
    gc.collect()
    gc.freeze()
    lone = [one(client) for _ in range(runs)]
    clients = [get_sync_client(url=url, api_key=None) for _ in range(CLIENTS)]
    per_client = concurrent_runs // CLIENTS
    servers, me = _processes(server_pids, stores), psutil.Process()
    cpu0 = (_cpu_seconds(servers), _cpu_seconds([me]))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda c: [one(c) for _ in range(per_client)], clients))
    done = per_client * CLIENTS
    rate = done / (time.perf_counter() - t0)
    server_cpu, client_cpu = _cpu_seconds(servers) - cpu0[0], _cpu_seconds([me]) - cpu0[1]
    return {"p50_ms": pct(lone, 50) * 1000, "p99_ms": pct(lone, 99) * 1000, "runs_per_s": rate,
            "server_cpu_ms": server_cpu / done * 1000, "client_cpu_ms": client_cpu / done * 1000}


def switchyard_figures(runs: int, concurrent_runs: int, workdir: Path) -> dict[str, float]:
    from switchyard.embedded import ephemeral_stack, free_port, wait_for_port

    with ephemeral_stack("switchyard-bench-agent-api-") as env:
        os.environ.update({k: v for k, v in env.items() if k.startswith("SWITCHYARD_")})
        child_env = os.environ.copy()
        port = free_port()
        api = start([sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)], workdir / "api.log",
                    child_env)
        worker_log = workdir / "worker.log"
        worker = start([sys.executable, "-m", "switchyard.cli", "worker", "agent", "-c", str(CLIENTS),
                        "-n", f"bench-agent-api-{os.getpid()}@%h"], worker_log, child_env)
        try:
            wait_for_port(port, timeout=60)
            wait_ready(worker, worker_log, " ready.")
            return measure(f"http://127.0.0.1:{port}", runs, concurrent_runs, [api.pid, worker.pid],
                           stores=("postgres", "redis-server"))
        finally:
            stop(worker)
            stop(api)


def langgraph_dev_figures(langgraph: str, runs: int, concurrent_runs: int, workdir: Path) -> dict[str, float]:
    from switchyard.embedded import free_port, wait_for_port

    (workdir / "echo_graph.py").write_text(ECHO_MODULE)
    (workdir / "langgraph.json").write_text(json.dumps({"dependencies": ["."],
                                                        "graphs": {"echo": "./echo_graph.py:graph"}}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env["LANGGRAPH_NO_ANALYTICS"] = "1"
    proc = start([langgraph, "dev", "--config", str(workdir / "langgraph.json"), "--host", "127.0.0.1",
                  "--port", str(port), "--no-browser", "--no-reload"], workdir / "langgraph-dev.log", env,
                 cwd=workdir)  # langgraph.json's paths are read from the working directory
    try:
        wait_for_port(port, timeout=120)
        return measure(f"http://127.0.0.1:{port}", runs, concurrent_runs, [proc.pid])
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="lone runs, one at a time (p50/p99)")
    parser.add_argument("--concurrent-runs", type=int, default=320, help=f"runs over {CLIENTS} clients")
    parser.add_argument("--langgraph", default="/tmp/lgdev/bin/langgraph", help="langgraph-cli's executable")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-agent-api-"))
    load_start = os.getloadavg()[0]
    base = langgraph_dev_figures(args.langgraph, args.runs, args.concurrent_runs, workdir)
    ours = switchyard_figures(args.runs, args.concurrent_runs, workdir)
    load_end = os.getloadavg()[0]
    loaded = "loaded" if max(load_start, load_end) >= 2.5 else "quiet"
    print(f"\nlone agent run, official SDK runs.wait on the echo graph ({args.runs} lone runs, "
          f"{args.concurrent_runs} runs over {CLIENTS} clients); logs in {workdir}")
    print(f"load average (1 min) {load_start:.2f} at the start, {load_end:.2f} at the end: {loaded}")
    print("| benchmark | baseline: langgraph dev (same run) | switchyard | ratio | goal |")
    print("|---|---|---|---|---|")
    print(f"| lone run p50 | {base['p50_ms']:.1f} ms | {ours['p50_ms']:.1f} ms | "
          f"{base['p50_ms'] / ours['p50_ms']:.1f}x faster | <= 30 ms, >= 30x |")
    print(f"| lone run p99 | {base['p99_ms']:.1f} ms | {ours['p99_ms']:.1f} ms | "
          f"{base['p99_ms'] / ours['p99_ms']:.1f}x faster | |")
    print(f"| runs/s, {CLIENTS} concurrent clients | {base['runs_per_s']:.1f} | {ours['runs_per_s']:.1f} | "
          f"{ours['runs_per_s'] / base['runs_per_s']:.2f}x | >= 2x |")
    print(f"| CPU per run, servers (ms; switchyard: API, worker, Postgres, Redis) | {base['server_cpu_ms']:.1f} | "
          f"{ours['server_cpu_ms']:.1f} | {ours['server_cpu_ms'] / base['server_cpu_ms']:.1f}x | |")
    print(f"| CPU per run, this client (ms) | {base['client_cpu_ms']:.1f} | {ours['client_cpu_ms']:.1f} | | |")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # What the CPU alone allows on this machine: every core busy with nothing but the servers and the client.
    for name, fig in (("langgraph dev", base), ("switchyard", ours)):
        cap = cores * 1000 / (fig["server_cpu_ms"] + fig["client_cpu_ms"])
        print(f"{name}: at most {cap:.0f} runs/s on {cores} cores at this CPU per run")


if __name__ == "__main__":
    main()
