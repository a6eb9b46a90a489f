"""The LangGraph-compatible HTTP API, driven by LangGraph's own SDK client against a real API server."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration

NOTE_MODEL = {"provider": "scripted", "responses": [
    {"content": "", "tool_calls": [{"name": "save_note", "args": {"text": "call mom"}}]},
    "Noted: call mom.",
]}


@pytest.fixture(scope="module")
def client(stack, api_server, start_worker):
    from langgraph_sdk import get_sync_client

    worker = start_worker("agent", concurrency=4)
    yield get_sync_client(url=api_server.url, api_key=None)
    worker.terminate()


def config(model) -> dict:
    return {"configurable": {"model": model}}


def test_assistants_are_the_registered_graphs(client):
    ids = {a["assistant_id"] for a in client.assistants.search()}
    assert {"rag_agent", "rag_answer", "reflection", "supervisor"} <= ids
    graph = client.assistants.get_graph("rag_answer")
    assert {n["id"] for n in graph["nodes"]} >= {"retrieve", "grade", "rewrite", "generate", "cite"}


def test_stream_wait_interrupt_resume_state_and_history(client):
    thread = client.threads.create()
    tid = thread["thread_id"]
    parts = list(client.runs.stream(tid, "rag_agent", input={"messages": [{"role": "user", "content": "note"}]},
                                    config=config(NOTE_MODEL), stream_mode=["values", "updates", "messages-tuple"]))
    kinds = [p.event for p in parts]
    assert kinds[0] == "metadata" and "values" in kinds and "updates" in kinds and kinds[-1] == "end"
    assert any(p.event == "updates" and "__interrupt__" in p.data for p in parts)

    state = client.threads.get_state(tid)
    assert state["next"] == ["review"]
    assert state["interrupts"][0]["value"]["action_requests"][0]["tool"] == "save_note"
    assert client.threads.get(tid)["status"] == "interrupted"

    values = client.runs.wait(tid, "rag_agent", command={"resume": {"type": "approve"}}, config=config(NOTE_MODEL))
    assert values["messages"][-1]["content"] == "Noted: call mom."
    tokens = [p for p in client.runs.stream(tid, "reflection", input={"messages": [
        {"role": "user", "content": "again"}]}, config=config({"provider": "scripted", "responses": ["APPROVED it"]}),
        stream_mode="messages-tuple") if p.event == "messages"]
    assert "".join(chunk["content"] for chunk, _meta in (t.data for t in tokens)) == "APPROVED it"

    history = client.threads.get_history(tid, limit=100)
    assert len(history) > 5 and history[0]["checkpoint"]["checkpoint_id"] == client.threads.get_state(tid)[
        "checkpoint"]["checkpoint_id"]
    runs = client.runs.list(tid)
    assert [r["status"] for r in runs] == ["success", "success", "interrupted"]
    assert runs[0]["usage"]["total_tokens"] > 0


def test_background_run_join_and_cancel(client):
    tid = client.threads.create()["thread_id"]
    slow = {"provider": "scripted", "token_delay_s": 0.05, "responses": [" ".join(["w"] * 300)]}
    run = client.runs.create(tid, "reflection", input={"messages": [{"role": "user", "content": "long"}]},
                             config=config(slow))
    assert client.runs.get(tid, run["run_id"])["run_id"] == run["run_id"]
    # A second run with "reject" while the first holds the thread: 409.
    from langgraph_sdk.errors import ConflictError

    deadline = time.monotonic() + 20
    while client.runs.get(tid, run["run_id"])["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.runs.get(tid, run["run_id"])["status"] == "running"
    with pytest.raises(ConflictError):
        client.runs.create(tid, "reflection", input={"messages": []}, multitask_strategy="reject")
    client.runs.cancel(tid, run["run_id"], wait=True)
    assert client.runs.get(tid, run["run_id"])["status"] == "cancelled"
    assert "__error__" in client.runs.join(tid, run["run_id"])


def test_unknown_thread_and_assistant_are_404(client):
    from langgraph_sdk.errors import NotFoundError

    with pytest.raises(NotFoundError):
        client.threads.get("no-such-thread")
    with pytest.raises(NotFoundError):
        client.runs.create("no-such-thread", "rag_agent", input={})
    tid = client.threads.create()["thread_id"]
    with pytest.raises(NotFoundError):
        client.runs.create(tid, "no_such_graph", input={})


def test_update_state_writes_a_checkpoint_the_next_run_continues_from(client):
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "reflection", input={"messages": [{"role": "user", "content": "draft it"}]},
                     config=config({"provider": "scripted", "responses": ["APPROVED v1"]}))
    before = client.threads.get_state(tid)
    written = client.threads.update_state(tid, {"messages": [{"role": "user", "content": "edited by a human"}]})
    after = client.threads.get_state(tid)
    assert written["checkpoint"]["checkpoint_id"] == after["checkpoint"]["checkpoint_id"]
    assert after["checkpoint"]["checkpoint_id"] != before["checkpoint"]["checkpoint_id"]
    assert after["values"]["messages"][-1]["content"] == "edited by a human"
    assert len(after["values"]["messages"]) == len(before["values"]["messages"]) + 1
