"""The SDK's contract on a busy thread, and the ``echo`` graph, through LangGraph's own SDK client against a
real API server and agent worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration

HELLO = {"messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def client(stack, api_server):
    from langgraph_sdk import get_sync_client

    return get_sync_client(url=api_server.url, api_key=None)


def _create(client, tid: str, strategy: str = "reject") -> str:
    """``"ok"`` or ``"409"``: the outcome of one create."""
    from langgraph_sdk.errors import ConflictError

    try:
        client.runs.create(tid, "echo", input=HELLO, multitask_strategy=strategy)
    except ConflictError:
        return "409"
    return "ok"


def test_a_pending_run_makes_reject_answer_409_at_once(client, start_worker):
    # No agent worker yet: the first run stays pending and holds no thread, yet the thread is busy.
    tid = client.threads.create()["thread_id"]
    first = client.runs.create(tid, "echo", input=HELLO)
    assert client.runs.get(tid, first["run_id"])["status"] == "pending"
    assert _create(client, tid) == "409"
    assert [r["run_id"] for r in client.runs.list(tid)] == [first["run_id"]]  # the refused run left no row

    worker = start_worker("agent", concurrency=4)
    try:
        values = client.runs.join(tid, first["run_id"])
        assert [m["type"] for m in values["messages"]] == ["human", "ai"]
        # The thread is idle again: a "reject" run is accepted and runs.
        values = client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "again"}]},
                                  multitask_strategy="reject")
        assert values["messages"][-1]["content"] == "again"
    finally:
        worker.terminate()


def test_two_concurrent_creates_on_an_idle_thread_cannot_both_pass(client):
    from langgraph_sdk import get_sync_client

    # One client per caller, so the two requests really are concurrent (no worker: both would stay pending).
    callers = [get_sync_client(url=client.http.client.base_url, api_key=None) for _ in range(2)]
    for _ in range(4):
        tid = client.threads.create()["thread_id"]
        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(lambda c, t=tid: _create(c, t), callers))
        assert outcomes == ["409", "ok"]
        assert len(client.runs.list(tid)) == 1
        # An "enqueue" run is not refused: it waits its turn.
        assert _create(client, tid, "enqueue") == "ok"


def test_echo_graph_through_the_api(client, start_worker):
    assert "echo" in {a["assistant_id"] for a in client.assistants.search()}
    worker = start_worker("agent", concurrency=2)
    try:
        tid = client.threads.create()["thread_id"]
        values = client.runs.wait(tid, "echo", input=HELLO)
        assert [(m["type"], m["content"]) for m in values["messages"]] == [("human", "hello"), ("ai", "hello")]
        state = client.threads.get_state(tid)
        assert state["values"]["messages"][-1]["content"] == "hello" and state["checkpoint"]["checkpoint_id"]
        assert client.runs.wait(None, "echo", input=HELLO)["messages"][-1]["content"] == "hello"
    finally:
        worker.terminate()
