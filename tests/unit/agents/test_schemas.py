from __future__ import annotations

import pytest

from switchyard import task_catalog
from switchyard.errors import InvalidParamsError


def test_run_params_defaults_and_contract():
    params = task_catalog.validate_params("switchyard.agent.run", {
        "graph": "rag_answer", "thread_id": "t", "input": {"messages": [{"role": "user", "content": "hi"}]},
        "stream_mode": "values"})
    assert params.stream_mode == ["values"] and params.multitask_strategy == "enqueue"
    resume = task_catalog.validate_params("switchyard.agent.run", {
        "graph": "rag_agent", "thread_id": "t", "command": {"resume": {"type": "approve"}}})
    assert resume.command.resume == {"type": "approve"}
    assert task_catalog.json_schema("switchyard.agent.run")["properties"]["multitask_strategy"]["enum"] == [
        "reject", "enqueue", "interrupt", "rollback"]


@pytest.mark.parametrize("bad, where", [
    ({"graph": "nope", "thread_id": "t"}, "graph"),
    ({"graph": "rag_agent", "thread_id": ""}, "thread_id"),
    ({"graph": "rag_agent", "thread_id": "t", "input": {}, "command": {"resume": 1}}, "both"),
    ({"graph": "rag_agent", "thread_id": "t", "stream_mode": ["tokens"]}, "stream_mode"),
    ({"graph": "rag_agent", "thread_id": "t", "multitask_strategy": "queue"}, "multitask_strategy"),
    ({"graph": "rag_agent", "thread_id": "t", "surprise": 1}, "surprise"),
])
def test_invalid_run_params_say_where(bad, where):
    with pytest.raises(InvalidParamsError) as info:
        task_catalog.validate_params("switchyard.agent.run", bad)
    assert where in str(info.value)
