from __future__ import annotations

import time

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs import build_graph
from switchyard.agents.streaming import StreamBridge, langgraph_modes, to_jsonable
from switchyard.agents.token_events import RunCallbackHandler
from switchyard.llm import get_chat_model


def test_usage_is_summed_per_model_and_priced():
    a = get_chat_model({"provider": "scripted", "responses": ["one two three"], "model_name": "small"})
    b = get_chat_model({"provider": "scripted", "responses": ["four"], "model_name": "big"})
    seen = []
    began = time.monotonic()
    handler = RunCallbackHandler(lambda t, d: seen.append((t, d)),
                                 prices={"small": {"input": 1.0, "output": 2.0}, "big": {"output": 100.0}})
    for llm in (a, a, b):
        list(llm.stream([HumanMessage("hi there")], config={"callbacks": [handler]}))
    elapsed_ms = (time.monotonic() - began) * 1000
    summary = handler.summary()
    assert summary["models"]["small"] == {"input_tokens": 4, "output_tokens": 6, "total_tokens": 10}
    assert summary["models"]["big"]["output_tokens"] == 1
    assert summary["cost_usd"] == round((4 * 1.0 + 6 * 2.0 + 1 * 100.0) / 1e6, 8)
    # The first token came after the handler began and before the calls returned (a bound, not a timing).
    assert summary["llm_calls"] == 3 and 0 < summary["ttft_ms"] <= elapsed_ms
    assert [d["event"] for t, d in seen if t == "log"].count("llm_end") == 3


def test_stop_requests_are_checked_on_every_token():
    class Stop(Exception):
        pass

    def stop():
        raise Stop

    llm = get_chat_model({"provider": "scripted", "responses": ["a b c"]})
    handler = RunCallbackHandler(check_stop=stop)
    try:
        list(llm.stream([HumanMessage("x")], config={"callbacks": [handler]}))
    except Stop:
        pass
    else:
        raise AssertionError("the stop request did not interrupt generation")


def test_tokens_spell_the_message_and_bridge_publishes_requested_modes():
    llm = get_chat_model({"provider": "scripted", "responses": ["Six times seven is 42."],
                          "rules": [{"when": "Draft answer", "reply": "APPROVED"}]})
    graph = build_graph("reflection", llm, None, InMemorySaver())
    out: list = []
    emit = lambda t, d: out.append((t, d))  # noqa: E731
    bridge = StreamBridge(emit, ["messages-tuple", "updates"])
    handler = RunCallbackHandler(emit, publish_tokens=True)
    assert langgraph_modes(["values"]) == ["messages", "values"]
    config = {"configurable": {"thread_id": "t"}, "callbacks": [handler]}
    for part in graph.stream({"messages": [{"role": "user", "content": "6*7?"}]}, config,
                             stream_mode=langgraph_modes(["updates"]), subgraphs=True):
        bridge.handle(part)
    final = graph.get_state(config).values["messages"][-1]
    tokens = [d for t, d in out if t == "token"]
    # The critic is `nostream`: only the draft's tokens are published, and they spell the answer.
    assert "".join(d["content"] for d in tokens) == final.content
    assert {d["id"] for d in tokens} == {final.id} and {d["node"] for d in tokens} == {"draft"}
    assert handler.ttft_ms is not None and handler.tokens == len(tokens)
    assert {d["node"] for t, d in out if t == "update"} == {"draft", "critique", "finish"}
    assert not any(t == "values" for t, _ in out)
    assert to_jsonable(final)["type"] == "ai" and to_jsonable(final)["content"] == final.content
