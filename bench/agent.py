"""Agent pool benchmark: checkpointer overhead, token delivery latency, throughput and concurrency.

Every figure is printed with the baseline measured in the same run and the ratio:

1. per-step cost with switchyard's checkpointer (``PostgresSaver`` over a pool, ``durability="sync"``)
   vs LangGraph's ``InMemorySaver`` on the same graph — trivial nodes, and nodes that call a small local
   transformers model (the overhead should be a small fraction of such a step);
2. token delivery latency, model callback → subscriber in another process (through LangGraph's
   ``messages`` stream, the job's event log and Redis pub/sub) vs a bare Redis ``PUBLISH`` + ``XADD``
   received by a bare subscriber, p50/p99, and tokens/s through the bus;
3. concurrent runs per agent worker (threads pool) before a run's latency doubles;
4. a run's graph built for the run vs kept for the process (``load_graph``).

    python bench/agent.py            # full run (~2 minutes)
    python bench/agent.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, TypedDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


# --- 1. checkpointer overhead ---------------------------------------------------------------------------

class Count(TypedDict):
    n: Annotated[int, operator.add]


def chain(steps: int, work=None, checkpointer=None):
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(Count)
    for i in range(steps):
        def node(state: Count) -> dict:
            if work:
                work()
            return {"n": 1}
        builder.add_node(f"s{i}", node)
        builder.add_edge(START if i == 0 else f"s{i - 1}", f"s{i}")
    builder.add_edge(f"s{steps - 1}", END)
    return builder.compile(checkpointer=checkpointer)


def per_step_ms(graphs: dict, runs: int, steps: int, durability: str = "sync") -> dict[str, float]:
    """Median per-step time of each graph; runs interleaved so drift on a shared machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in graphs}
    for graph in graphs.values():
        graph.invoke({"n": 0}, {"configurable": {"thread_id": f"warm-{uuid.uuid4()}"}}, durability=durability)
    for _ in range(runs):
        for name, graph in graphs.items():
            t0 = time.perf_counter()
            graph.invoke({"n": 0}, {"configurable": {"thread_id": str(uuid.uuid4())}}, durability=durability)
            times[name].append((time.perf_counter() - t0) * 1000 / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_checkpointer(quick: bool) -> list[str]:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.postgres import PostgresSaver

    from switchyard.agents.checkpointer import get_checkpointer
    from switchyard.db import database_url

    steps, runs = 10, (10 if quick else 40)
    rows = []
    cost_ms = 0.0
    with PostgresSaver.from_conn_string(database_url()) as library:
        for durability in ("sync", "async"):
            t = per_step_ms({"mem": chain(steps, checkpointer=InMemorySaver()),
                             "lib": chain(steps, checkpointer=library),
                             "ours": chain(steps, checkpointer=get_checkpointer())}, runs, steps, durability)
            rows.append(
                f"trivial node step, durability={durability}: InMemorySaver {t['mem']:.3f} ms | PostgresSaver "
                f"(library defaults, one connection) {t['lib']:.3f} ms = {t['lib'] / t['mem']:.1f}x | switchyard "
                f"(pool, synchronous_commit=off) {t['ours']:.3f} ms = {t['ours'] / t['mem']:.1f}x")
            if durability == "sync":
                cost_ms = t["ours"] - t["mem"]  # what checkpointing adds to any step

    # A step that calls a small local causal LM (tiny Llama, 16 new tokens, CPU).
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from switchyard.finetune.models import build_tiny_llama

    path = build_tiny_llama(Path(tempfile.mkdtemp(prefix="bench-agent-")) / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    inputs = tokenizer("The capital of France is", return_tensors="pt")

    def generate() -> None:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=32, min_new_tokens=32, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)

    lm_steps, lm_runs = 3, (5 if quick else 15)
    t = per_step_ms({"mem": chain(lm_steps, generate, InMemorySaver()),
                     "ours": chain(lm_steps, generate, get_checkpointer())}, lm_runs, lm_steps)
    mem, ours = t["mem"], t["ours"]
    rows.append(f"local-model step (tiny Llama, 32 new tokens on CPU): InMemorySaver {mem:.2f} ms | switchyard "
                f"{ours:.2f} ms = {ours / mem:.3f}x (measured overhead {100 * (ours - mem) / mem:+.1f}%, within noise; "
                f"the checkpoint's own cost, {cost_ms:.2f} ms from the trivial-node row, is "
                f"{100 * cost_ms / mem:.2f}% of this step)")
    return rows


def bench_graph_load(quick: bool) -> list[str]:
    """A run's graph: built for the run (what every run paid before switchyard/agents/compiled.py) vs the
    graph kept for the process's defaults, per built-in graph (p50 of ``load_graph``)."""
    from switchyard.agents.compiled import compiled_graphs
    from switchyard.agents.graph_catalog import GRAPHS
    from switchyard.agents.runs import load_graph

    n = 10 if quick else 50
    cells = []
    for name in GRAPHS:
        built, kept = [], []
        for _ in range(n):
            compiled_graphs().clear()
            t0 = time.perf_counter()
            load_graph(name, model="scripted", tenant="bench")
            built.append(time.perf_counter() - t0)
        for _ in range(n):
            t0 = time.perf_counter()
            load_graph(name, model="scripted", tenant="bench")
            kept.append(time.perf_counter() - t0)
        b, k = statistics.median(built) * 1000, statistics.median(kept) * 1000
        cells.append(f"{name} {b:.2f} → {k:.3f} ms")
    return ["a run's graph, built per run → kept per process (p50 of load_graph, scripted model): "
            + ", ".join(cells)]


# --- 2. token delivery ------------------------------------------------------------------------------------

SUBSCRIBER = r"""
import json, sys, time
mode, key, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
got = []
if mode == "switchyard":
    from switchyard import events
    print("ready", flush=True)
    for e in events.subscribe(key, timeout=60):
        if e.type == "token":
            got.append(time.time())
else:
    import redis, os
    r = redis.Redis.from_url(os.environ["SWITCHYARD_REDIS_URL"])
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe(key)
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while len(got) < expected and time.monotonic() < deadline:
        if p.get_message(timeout=1) is not None:  # None: a quiet second, or the subscribe reply
            got.append(time.time())
print(json.dumps(got), flush=True)
"""


def subscriber(mode: str, key: str, expected: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, mode, key, str(expected)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=os.environ.copy())
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)  # subscribed
    return proc


def received(proc: subprocess.Popen) -> list[float]:
    out, _ = proc.communicate(timeout=120)
    return json.loads(out.strip().splitlines()[-1])


def bare_redis(n: int, gap_s: float) -> tuple[list[float], list[float]]:
    from switchyard.redis_conn import get_redis

    key = f"bench:raw:{uuid.uuid4()}"
    proc = subscriber("bare", key, n)
    r = get_redis()
    sent = []
    for i in range(n):
        payload = json.dumps({"seq": i, "type": "token", "data": {"content": "tok "}})
        sent.append(time.time())
        pipe = r.pipeline(transaction=False)
        pipe.xadd(key + ":log", {"e": payload}, maxlen=100_000, approximate=True)
        pipe.publish(key, payload)
        pipe.execute()
        if gap_s:
            time.sleep(gap_s)
    got = received(proc)
    r.delete(key + ":log")
    return sent, got


def switchyard_tokens(n: int, gap_s: float) -> tuple[list[float], list[float], float]:
    from langchain_core.callbacks import BaseCallbackHandler
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs import build_graph
    from switchyard import events
    from switchyard.agents.streaming import StreamBridge, langgraph_modes
    from switchyard.agents.token_events import RunCallbackHandler
    from switchyard.llm import get_chat_model

    class Clock(BaseCallbackHandler):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_llm_new_token(self, token: str, **kwargs) -> None:
            if token:
                self.times.append(time.time())

    job_id = f"bench-{uuid.uuid4()}"
    # One piece per word and one per space: n tokens from n/2 words.
    llm = get_chat_model({"provider": "scripted", "token_delay_s": gap_s,
                          "responses": [" ".join(["tok"] * ((n + 1) // 2))],
                          "rules": [{"when": "Draft answer", "reply": "APPROVED"}]})
    graph = build_graph("reflection", llm, None, InMemorySaver())
    proc = subscriber("switchyard", job_id, n)
    clock = Clock()  # first in the callback list: its time is taken before the token is published
    emit = lambda t, d: events.publish(job_id, t, d, persist=False)  # noqa: E731 - no ledger row here
    bridge = StreamBridge(emit, ["messages", "updates"])
    handler = RunCallbackHandler(emit, publish_tokens=True)
    t0 = time.perf_counter()
    # What execute_run does, minus the checkpointer: the same modes, bridge and callback handler.
    for part in graph.stream({"messages": [{"role": "user", "content": "go"}]},
                             {"configurable": {"thread_id": job_id}, "callbacks": [clock, handler]},
                             stream_mode=langgraph_modes(["messages", "updates"]), subgraphs=True):
        bridge.handle(part)
    elapsed = time.perf_counter() - t0
    events.publish(job_id, "end", {"status": "succeeded"}, persist=False)
    return clock.times, received(proc), handler.tokens / elapsed


def bench_tokens(quick: bool) -> list[str]:
    # Alternating blocks, so a load spike on this shared machine hits both sides alike; the figures are
    # the medians over blocks of each block's p50 and p99.
    blocks, n, gap = (2, 300, 0.002) if quick else (6, 400, 0.002)
    base50, base99, ours50, ours99 = [], [], [], []
    for _ in range(blocks):
        sent, got = bare_redis(n, gap)
        base = [(b - a) * 1000 for a, b in zip(sent, got, strict=False)]
        sent, got, _ = switchyard_tokens(n, gap)
        ours = [(b - a) * 1000 for a, b in zip(sent, got, strict=False)]
        base50.append(pct(base, 50))
        base99.append(pct(base, 99))
        ours50.append(pct(ours, 50))
        ours99.append(pct(ours, 99))
    m = statistics.median
    rows = [f"token delivery, callback -> subscriber process ({blocks} x {n} tokens, 2 ms apart; median of "
            f"blocks): bare PUBLISH+XADD p50 {m(base50):.3f} ms p99 {m(base99):.3f} ms | switchyard p50 "
            f"{m(ours50):.3f} ms p99 {m(ours99):.3f} ms = {m(ours50) / m(base50):.2f}x p50, "
            f"{m(ours99) / m(base99):.2f}x p99"]
    t0 = time.perf_counter()
    sent, got = bare_redis(n * 2, 0)
    bare_rate = len(got) / (time.perf_counter() - t0)
    _, got, rate = switchyard_tokens(n * 2, 0)
    rows.append(f"tokens/s through the bus (model as fast as it goes): bare {bare_rate:,.0f}/s | switchyard "
                f"{rate:,.0f}/s = {rate / bare_rate:.2f}x")
    return rows


# --- 3. concurrency -----------------------------------------------------------------------------------------

def bench_concurrency(quick: bool) -> list[str]:
    from switchyard import dispatch, events, jobs

    log = Path(tempfile.mkdtemp(prefix="bench-agent-worker-")) / "worker.log"
    out = open(log, "wb")  # noqa: SIM115 - handed to the child
    worker = subprocess.Popen([sys.executable, "-m", "switchyard.cli", "worker", "agent", "-c", "32",
                               "-n", f"bench-agent-{os.getpid()}@%h"], stdout=out, stderr=subprocess.STDOUT,
                              cwd=ROOT, env=os.environ.copy(), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text())
            time.sleep(0.1)
        # A run that waits on its model like a remote LLM would: 40 tokens, 10 ms apart, plus a tool call.
        model = {"provider": "scripted", "token_delay_s": 0.01, "responses": [
            {"content": "", "tool_calls": [{"name": "calculator", "args": {"expression": "6*7"}}]},
            " ".join(["word"] * 20)]}

        def batch(n: int) -> float:
            ids = [dispatch.enqueue("agent.run", {"graph": "rag_agent", "thread_id": str(uuid.uuid4()),
                                                  "input": {"messages": [{"role": "user", "content": "q"}]},
                                                  "config": {"configurable": {"model": model}}})[0].id
                   for _ in range(n)]
            for job_id in ids:
                for _event in events.subscribe(job_id, timeout=120):
                    pass
            # Submit → finish, from the ledger (not from when this loop got round to each job).
            done = [jobs.get(job_id) for job_id in ids]
            return statistics.mean((j.finished_at - j.created_at).total_seconds() for j in done)

        batch(1)  # warm up
        levels = [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16, 32]
        results = {n: batch(n) for n in levels}
        base = results[1]
        under = [n for n in levels if results[n] <= 2 * base]
        rows = ["concurrent runs per agent worker (threads): mean run latency " + ", ".join(
            f"{n} -> {results[n] * 1000:.0f} ms ({results[n] / base:.2f}x)" for n in levels)]
        rows.append(f"runs in flight before latency doubles (2 CPU cores here): {max(under)}"
                    + ("" if max(under) < levels[-1] else f" (not reached at {levels[-1]})"))
        return rows
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from switchyard.embedded import ephemeral_stack

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with ephemeral_stack("switchyard-bench-agent-") as env:
        os.environ.update({k: v for k, v in env.items() if k.startswith("SWITCHYARD_")})
        rows = (bench_checkpointer(args.quick) + bench_graph_load(args.quick) + bench_tokens(args.quick)
                + bench_concurrency(args.quick))
    print("\nswitchyard agent benchmark")
    for row in rows:
        print(" -", row)


if __name__ == "__main__":
    main()
