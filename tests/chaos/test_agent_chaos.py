"""kill -9 an agent worker between tool calls: the run resumes from its last checkpoint elsewhere."""

from __future__ import annotations

import uuid

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def test_killed_worker_resumes_from_checkpoint_without_repeating_the_tool(stack, start_worker, control_worker):
    from switchyard import dispatch, events, jobs
    from switchyard.db import connection

    thread = f"chaos-{uuid.uuid4()}"
    answer = " ".join(f"word{i}" for i in range(60))
    model = {"provider": "scripted", "token_delay_s": 0.05, "responses": [
        {"content": "", "tool_calls": [{"name": "save_note", "args": {"text": "side effect"}}]},
        answer,
    ]}
    victim = start_worker("agent", concurrency=4)
    job, _ = dispatch.enqueue("agent.run", {
        "graph": "rag_agent", "thread_id": thread,
        "input": {"messages": [{"role": "user", "content": "note it, then explain"}]},
        "config": {"configurable": {"model": model, "auto_approve": True}},
    })

    seen = []
    stream = events.subscribe(job.id, timeout=60)
    for event in stream:  # the tool has run; the model is streaming the answer
        seen.append(event)
        if event.type == "token" and sum(e.type == "token" for e in seen) >= 5:
            break
    assert any(e.type == "log" and e.data["event"] == "tool_end" for e in seen)
    victim.kill()  # SIGKILL: no shutdown hooks, the message is never acked
    rescuer = start_worker("agent", concurrency=4)
    seen.extend(stream)  # the same subscriber, across the crash
    rescuer.terminate()

    final = jobs.get(job.id)
    assert final.status.value == "succeeded", final.error
    assert final.attempts == 2
    with connection() as conn:
        count = conn.execute("SELECT count(*) AS n FROM agent_notes WHERE thread_id = %s", (thread,)).fetchone()["n"]
    assert count == 1  # the completed tool call was not executed again

    # One coherent stream: every seq once, in order, one end; the resumed answer's tokens spell it.
    seqs = [e.seq for e in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert [e.type for e in seen].count("end") == 1 and seen[-1].type == "end"
    assert any(e.type == "message" and "resuming" in e.data["text"] for e in seen)
    last = final.result["values"]["messages"][-1]
    assert last["content"] == answer
    assert "".join(e.data["content"] for e in seen if e.type == "token" and e.data["id"] == last["id"]) == answer
    tools = [m for m in final.result["values"]["messages"] if m["type"] == "tool"]
    assert len(tools) == 1
