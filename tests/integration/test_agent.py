"""The agent pool end to end: real Postgres (checkpoints), Redis (events) and an agent worker process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration

CALC_MODEL = {"provider": "scripted", "responses": [
    {"content": "", "tool_calls": [{"name": "calculator", "args": {"expression": "6 * 7"}}]},
    "Six times seven is 42, as the calculator says.",
]}
NOTE_MODEL = {"provider": "scripted", "responses": [
    {"content": "", "tool_calls": [{"name": "save_note", "args": {"text": "buy milk"}}]},
    "Saved your note.",
]}


def slow_model(delay: float = 0.05, words: int = 60) -> dict:
    """Streams ``2 * words - 1`` tokens (words and spaces), ``delay`` apart; the critic approves at once."""
    return {"provider": "scripted", "token_delay_s": delay, "rules": [{"when": "Draft answer", "reply": "APPROVED"}],
            "responses": [" ".join(f"w{i}" for i in range(words))]}


@pytest.fixture(scope="module")
def agent_worker(stack, start_worker):
    worker = start_worker("agent", concurrency=6)
    yield worker
    worker.terminate()  # later modules (chaos) must know which worker runs their job


def submit(graph: str, thread_id: str, *, model: dict | None = None, input: dict | None = None,
           command: dict | None = None, strategy: str | None = None, **config) -> str:
    from switchyard import dispatch

    params: dict = {"graph": graph, "thread_id": thread_id,
                    "config": {"configurable": {"model": model, **config}}}
    if input is not None:
        params["input"] = input
    if command is not None:
        params["command"] = command
    if strategy:
        params["multitask_strategy"] = strategy
    job, _ = dispatch.enqueue("agent.run", params)
    return job.id


def ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def finish(job_id: str, timeout: float = 60):
    """Every event of the job, in order, and its final ledger row."""
    from switchyard import events, jobs

    seen = list(events.subscribe(job_id, timeout=timeout))
    return seen, jobs.get(job_id)


def notes(thread_id: str) -> list[str]:
    from switchyard.db import connection

    with connection() as conn:
        return [r["text"] for r in conn.execute("SELECT text FROM agent_notes WHERE thread_id = %s ORDER BY id",
                                                (thread_id,))]


def wait_for(job_id: str, predicate, timeout: float = 30):
    from switchyard import events

    for event in events.subscribe(job_id, timeout=timeout):
        if predicate(event):
            return event
    raise AssertionError(f"job {job_id} ended before the awaited event")


def test_run_streams_tokens_that_spell_the_final_message_and_keeps_memory(agent_worker):
    from switchyard.agents.threads import get_run

    thread = f"t-{uuid.uuid4()}"
    events, job = finish(submit("rag_agent", thread, model=CALC_MODEL, input=ask("What is 6 times 7?")))
    assert job.status.value == "succeeded", job.error
    result = job.result
    assert result["status"] == "success"
    messages = result["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[2]["content"] == "42"  # the calculator really ran
    final = messages[-1]
    tokens = [e.data for e in events if e.type == "token"]
    assert "".join(t["content"] for t in tokens if t["id"] == final["id"]) == final["content"]
    assert "".join(t["content"] for t in tokens) == final["content"]  # the tool-calling turn had no text
    assert {t["node"] for t in tokens} == {"agent"}
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)) and events[-1].type == "end"
    logs = [e.data["event"] for e in events if e.type == "log"]
    assert logs.count("tool_start") == 1 and logs.count("tool_end") == 1 and logs.count("llm_end") == 2
    assert any(e.type == "update" and e.data["node"] == "tools" for e in events)
    usage = result["usage"]
    assert usage["models"]["scripted"]["output_tokens"] > 0 and usage["llm_calls"] == 2
    # The first token came after the run began and before the job finished (a bound, not a timing).
    ran_ms = (job.finished_at - job.started_at).total_seconds() * 1000
    assert 0 < usage["ttft_ms"] <= ran_ms
    run = get_run(job.id)
    assert run["status"] == "success" and run["ttft_ms"] == usage["ttft_ms"] and run["usage"]["total_tokens"] > 0

    # The thread remembers: a second run sees the first conversation.
    _, second = finish(submit("rag_agent", thread, model={"provider": "scripted", "responses": ["You asked 6*7."]},
                              input=ask("What did I ask?")))
    assert [m["type"] for m in second.result["values"]["messages"]] == ["human", "ai", "tool", "ai", "human", "ai"]


def test_interrupt_pauses_for_approval_and_a_resume_from_another_process_completes(agent_worker, stack):
    thread = f"t-{uuid.uuid4()}"
    events, job = finish(submit("rag_agent", thread, model=NOTE_MODEL, input=ask("Remember: buy milk")))
    assert job.status.value == "succeeded" and job.result["status"] == "interrupted"
    (pause,) = job.result["interrupts"]
    assert pause["value"]["action_requests"][0]["tool"] == "save_note"
    assert any(e.type == "update" and e.data["node"] == "__interrupt__" for e in events)
    assert notes(thread) == []  # nothing happened without the human

    # The resume arrives as a raw Celery message from another process (any producer can send it).
    job_id = str(uuid.uuid4())
    kwargs = {"graph": "rag_agent", "thread_id": thread, "command": {"resume": {"type": "edit", "args": {
        "text": "buy oat milk"}}}, "config": {"configurable": {"model": NOTE_MODEL}}}
    code = ("import celery, json, sys; app = celery.Celery(broker=sys.argv[1]); "
            "app.send_task('switchyard.agent.run', kwargs=json.loads(sys.argv[2]), task_id=sys.argv[3], queue='agent')")
    subprocess.run([sys.executable, "-c", code, stack.broker_url, json.dumps(kwargs), job_id], check=True)
    _, resumed = finish(job_id)
    assert resumed.result["status"] == "success", resumed.error
    assert resumed.result["values"]["messages"][-1]["content"] == "Saved your note."
    assert notes(thread) == ["buy oat milk"]


def test_rejecting_a_side_effect_skips_it(agent_worker):
    thread = f"t-{uuid.uuid4()}"
    finish(submit("rag_agent", thread, model=NOTE_MODEL, input=ask("Remember: buy milk")))
    _, job = finish(submit("rag_agent", thread, model=NOTE_MODEL, command={"resume": {"type": "reject",
                                                                                      "message": "no"}}))
    assert job.result["status"] == "success"
    tool_messages = [m for m in job.result["values"]["messages"] if m["type"] == "tool"]
    assert tool_messages[-1]["content"] == "not run: no"
    assert notes(thread) == []


def test_cancel_stops_a_running_graph(agent_worker):
    from switchyard import dispatch
    from switchyard.agents.threads import get_run, get_thread

    thread = f"t-{uuid.uuid4()}"
    job_id = submit("reflection", thread, model=slow_model(0.1, 200), input=ask("Write at length."))
    wait_for(job_id, lambda e: e.type == "token")
    dispatch.cancel(job_id)
    events, job = finish(job_id)
    assert job.status.value == "cancelled"
    assert events[-1].data["status"] == "cancelled"
    assert sum(e.type == "token" for e in events) < 200  # stopped mid-generation
    assert get_run(job_id)["status"] == "cancelled"
    assert get_thread(thread)["active_run"] is None


def test_multitask_reject_fails_the_second_run(agent_worker):
    from switchyard.agents.threads import get_run

    thread = f"t-{uuid.uuid4()}"
    first = submit("reflection", thread, model=slow_model(0.02, 60), input=ask("one"))
    wait_for(first, lambda e: e.type == "token")
    _, second = finish(submit("reflection", thread, model=CALC_MODEL, input=ask("two"), strategy="reject"))
    assert second.status.value == "failed" and second.error["type"] == "ThreadBusyError"
    assert get_run(second.id)["status"] == "rejected"
    _, first_job = finish(first)
    assert first_job.status.value == "succeeded"


def test_multitask_enqueue_runs_after_the_active_run(agent_worker):
    from switchyard.agents.threads import get_run

    thread = f"t-{uuid.uuid4()}"
    first = submit("reflection", thread, model=slow_model(0.02, 30), input=ask("one"))
    wait_for(first, lambda e: e.type == "token")
    second = submit("reflection", thread, model={"provider": "scripted", "responses": ["second answer"]},
                    input=ask("two"), strategy="enqueue")
    _, first_job = finish(first)
    _, second_job = finish(second)
    assert first_job.status.value == second_job.status.value == "succeeded"
    assert get_run(first)["finished_at"] <= get_run(second)["started_at"]  # took the thread after it
    humans = [m["content"] for m in second_job.result["values"]["messages"] if m["type"] == "human"]
    assert humans == ["one", "two"]  # ran on top of the first run's finished state


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
def test_multitask_interrupt_and_rollback(agent_worker, strategy):
    from switchyard.agents.threads import get_run

    thread = f"t-{uuid.uuid4()}"
    first = submit("reflection", thread, model=slow_model(0.05, 400), input=ask("one"))
    wait_for(first, lambda e: e.type == "token")
    second = submit("reflection", thread, model={"provider": "scripted", "responses": ["APPROVED"]},
                    input=ask("two"), strategy=strategy)
    _, first_job = finish(first)
    _, second_job = finish(second)
    assert first_job.status.value == "cancelled"
    assert second_job.status.value == "succeeded", second_job.error
    humans = [m["content"] for m in second_job.result["values"]["messages"] if m["type"] == "human"]
    if strategy == "interrupt":
        assert humans == ["one", "two"]  # the interrupted run's input stays in the thread
        assert get_run(first)["status"] == "cancelled"
    else:
        assert humans == ["two"]  # rolled back: as if the first run never happened
        assert get_run(first)["status"] == "rolled_back"


def test_invalid_message_fails_its_job_with_the_reason(agent_worker):
    from switchyard import events, jobs

    job_id = str(uuid.uuid4())
    from workers.app import app

    app.send_task("switchyard.agent.run", kwargs={"graph": "nope", "thread_id": "x"}, task_id=job_id,
                  queue="agent")
    list(events.subscribe(job_id, timeout=30))
    job = jobs.get(job_id)
    assert job.status.value == "failed" and job.error["type"] == "invalid_params"
    assert "unknown graph 'nope'" in json.dumps(job.error["errors"])


def test_sql_tool_reads_but_never_writes(stack):
    from graphs.tools import make_sql_tool

    sql = make_sql_tool({"main": stack.database_url}, tenant="default")
    rows = json.loads(sql.invoke({"query": "SELECT 6 * 7 AS answer"}))["rows"]
    assert rows == [{"answer": 42}]
    assert "error" in sql.invoke({"query": "INSERT INTO agent_notes (thread_id, text) VALUES ('x', 'y')"})
    assert "error" in sql.invoke({"query": "SELECT 1; DELETE FROM agent_notes"})
    assert "unknown database" in sql.invoke({"query": "SELECT 1", "database": "other"})


@pytest.fixture(scope="module")
def collection(stack):
    from switchyard.retrieval import ingest_documents

    name = f"agent-{uuid.uuid4().hex[:8]}"
    ingest_documents(name, [
        {"id": "capitals.md", "text": "# Capitals\n\nParis is the capital of France. Berlin is the capital of Germany.",
         "metadata": {"source": "capitals.md"}},
        {"id": "rivers.md", "text": "# Rivers\n\nThe Danube flows through Vienna and Budapest.",
         "metadata": {"source": "rivers.md"}},
    ])
    return name


def test_rag_agent_retrieves_from_a_real_collection_and_cites_its_sources(agent_worker, collection):
    model = {"provider": "scripted", "responses": [
        {"content": "", "tool_calls": [{"name": "search_documents", "args": {"query": "capital of France"}}]},
        "Paris is the capital of France [1].",
    ]}
    _, job = finish(submit("rag_agent", f"t-{uuid.uuid4()}", model=model,
                           input=ask("What is the capital of France?") | {"collection": collection}))
    assert job.status.value == "succeeded", job.error
    values = job.result["values"]
    tool = next(m for m in values["messages"] if m["type"] == "tool")
    assert tool["content"].startswith("[1] (source: capitals.md)") and "Paris is the capital" in tool["content"]
    assert values["sources"][0]["document_id"] == "capitals.md"
    assert values["messages"][-1]["content"].endswith("[1].")


def test_rag_answer_over_a_real_collection(agent_worker, collection):
    model = {"provider": "scripted", "responses": ["The Danube flows through Vienna [1]."],
             "rules": [{"when": "Reply yes or no", "reply": "yes"}]}
    events, job = finish(submit("rag_answer", f"t-{uuid.uuid4()}", model=model,
                                input=ask("Which river flows through Vienna?") | {"collection": collection}))
    values = job.result["values"]
    assert values["sources"][0]["document_id"] == "rivers.md"
    (custom,) = [e.data["data"] for e in events if e.type == "custom"]  # the node's stream writer
    assert custom == {"stage": "retrieved", "query": "Which river flows through Vienna?",
                      "passages": len(values["sources"])}
    assert "".join(e.data["content"] for e in events if e.type == "token") == values["messages"][-1]["content"]


def test_cancel_while_enqueued_behind_another_run(agent_worker):
    from switchyard import dispatch
    from switchyard.agents.threads import get_run

    thread = f"t-{uuid.uuid4()}"
    first = submit("reflection", thread, model=slow_model(0.02, 40), input=ask("one"))
    wait_for(first, lambda e: e.type == "token")
    second = submit("reflection", thread, model=slow_model(0, 3), input=ask("two"), strategy="enqueue")
    wait_for(second, lambda e: e.type == "status" and e.data["status"] == "running")
    dispatch.cancel(second)
    _, second_job = finish(second)
    _, first_job = finish(first)
    assert second_job.status.value == "cancelled" and get_run(second)["status"] == "cancelled"
    assert first_job.status.value == "succeeded"


def test_old_checkpoints_are_pruned_by_ttl(agent_worker):
    from switchyard.agents.checkpointer import get_checkpointer, prune_checkpoints
    from switchyard.agents.threads import get_thread
    from switchyard.db import connection

    keep, drop = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    for thread in (keep, drop):
        finish(submit("rag_agent", thread, model=CALC_MODEL, input=ask("6*7?")))
    saver = get_checkpointer()
    history = lambda t: list(saver.list({"configurable": {"thread_id": t}}))  # noqa: E731
    assert len(history(keep)) > 3
    with connection() as conn:
        conn.execute("UPDATE agent_threads SET updated_at = now() - interval '2 days' WHERE thread_id = ANY(%s)",
                     ([keep, drop],))
    assert prune_checkpoints(ttl_s=86_400, strategy="keep_latest") >= 2
    (latest,) = history(keep)  # the conversation survives, its history does not
    assert [m.type for m in latest.checkpoint["channel_values"]["messages"]] == ["human", "ai", "tool", "ai"]
    with connection() as conn:
        conn.execute("UPDATE agent_threads SET updated_at = now() - interval '2 days' WHERE thread_id = %s", (drop,))
    assert prune_checkpoints(ttl_s=86_400, strategy="delete") == 1
    assert history(drop) == [] and get_thread(keep)


def test_a_local_transformers_model_streams_real_tokens_in_order(agent_worker, collection, tmp_path_factory):
    """A small Llama built here and loaded by the fine-tune pool's provider: real generation, real tokens."""
    from switchyard.finetune.models import build_tiny_llama

    path = build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")
    model = {"provider": "local", "base_model": str(path), "max_new_tokens": 24}
    events, job = finish(submit("rag_answer", f"t-{uuid.uuid4()}", model=model,
                                input=ask("Where does the Danube flow?") | {"collection": collection}), timeout=120)
    assert job.status.value == "succeeded", job.error
    final = job.result["values"]["messages"][-1]
    tokens = [e.data for e in events if e.type == "token"]
    assert len(tokens) > 1 and {t["node"] for t in tokens} == {"generate"}
    assert "".join(t["content"] for t in tokens) == final["content"]  # every token, in order
    assert job.result["usage"]["ttft_ms"] is not None and job.result["usage"]["llm_calls"] >= 2


def test_ask_streams_the_answer_and_its_sources_to_a_terminal(agent_worker, collection):
    import io

    from switchyard.agents.ask import ask as ask_graph

    out = io.StringIO()
    model = {"provider": "scripted", "responses": ["Vienna and Budapest [1]."],
             "rules": [{"when": "Reply yes or no", "reply": "yes"}]}
    result = ask_graph("Where does the Danube flow?", collection=collection, model=model, out=out)
    assert result["status"] == "success"
    assert out.getvalue().startswith("Vienna and Budapest [1].\n") and "[1] rivers.md" in out.getvalue()


def test_a_failing_graph_fails_its_job_and_frees_the_thread(agent_worker):
    from switchyard.agents.threads import get_run, get_thread

    thread = f"t-{uuid.uuid4()}"
    _, job = finish(submit("reflection", thread, model={"provider": "local", "base_model": "/nonexistent"},
                           input=ask("hi")))
    assert job.status.value == "failed" and "nonexistent" in job.error["message"]
    assert get_run(job.id)["status"] == "error"
    assert get_thread(thread)["status"] == "error" and get_thread(thread)["active_run"] is None
    _, again = finish(submit("reflection", thread, model={"provider": "scripted", "responses": ["APPROVED"]},
                             input=ask("hi again")))
    assert again.status.value == "succeeded" and get_thread(thread)["status"] == "idle"
