"""Each graph alone: a scripted chat model, an in-memory retriever and LangGraph's InMemorySaver."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs import GRAPHS, UnknownGraphError, build_graph
from graphs.tools import SIDE_EFFECT
from switchyard.llm import get_chat_model

CORPUS = {
    "geo": [Document("Paris is the capital of France.", metadata={"source": "geo.md", "document_id": "d1"})],
    "other": [Document("Bananas are yellow.", metadata={"source": "fruit.md", "document_id": "d2"})],
}


ASKED: list[tuple[str, str]] = []


class DictRetriever(BaseRetriever):
    """Returns a collection's documents and remembers the queries it was asked (in ``ASKED``)."""

    collection: str

    def _get_relevant_documents(self, query: str, *, run_manager=None) -> list[Document]:
        ASKED.append((self.collection, query))
        return CORPUS.get(self.collection, [])


def retrievers():
    ASKED.clear()
    return (lambda c: DictRetriever(collection=c)), ASKED


def scripted(*responses, rules=None):
    return get_chat_model({"provider": "scripted", "responses": list(responses), "rules": rules or []})


def ask(text: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


CFG = {"configurable": {"thread_id": "t1"}}


def test_every_graph_draws():
    for name in GRAPHS:
        assert "graph TD" in build_graph(name).get_graph(xray=True).draw_mermaid()
    with pytest.raises(UnknownGraphError):
        build_graph("nope")


def test_rag_answer_generates_from_relevant_passages_and_cites():
    factory, asked = retrievers()
    llm = scripted("Paris [1].", rules=[{"when": "Reply yes or no", "reply": "yes"}])
    graph = build_graph("rag_answer", llm, factory, InMemorySaver(), default_collection="geo")
    out = graph.invoke(ask("Capital of France?"), CFG)
    assert out["messages"][-1].content == "Paris [1]."
    assert out["sources"] == [{"n": 1, "source": "geo.md", "document_id": "d1", "chunk_id": None, "score": None}]
    assert asked == [("geo", "Capital of France?")]


def test_rag_answer_rewrites_once_when_graded_irrelevant_then_answers():
    factory, asked = retrievers()
    llm = scripted("I could not find it.", rules=[{"when": "Reply yes or no", "reply": "no"},
                                                   {"when": "Write one better search query", "reply": "fruit colour"}])
    graph = build_graph("rag_answer", llm, factory, InMemorySaver(), default_collection="geo", max_rewrites=1)
    out = graph.invoke(ask("What colour are bananas?", collection="other"), CFG)
    assert asked == [("other", "What colour are bananas?"), ("other", "fruit colour")]
    assert out["messages"][-1].content == "I could not find it."


def test_rag_agent_searches_again_within_its_bound_then_must_answer():
    factory, asked = retrievers()
    search = {"content": "", "tool_calls": [{"name": "search_documents", "args": {"query": "capital"}}]}
    llm = scripted(search, rules=[{"when": "You have used all your tool calls", "reply": "Paris [1]."}])
    graph = build_graph("rag_agent", llm, factory, InMemorySaver(), default_collection="geo", max_tool_rounds=2)
    out = graph.invoke(ask("Capital?"), CFG)
    assert len(asked) == 2  # the third search was not allowed
    assert out["messages"][-1].content == "Paris [1]."
    assert out["sources"][0]["source"] == "geo.md"


def test_rag_agent_calculator_tool():
    llm = scripted({"content": "", "tool_calls": [{"name": "calculator", "args": {"expression": "2 ** 10"}}]}, "1024")
    out = build_graph("rag_agent", llm, None, InMemorySaver()).invoke(ask("2^10?"), CFG)
    assert out["messages"][2].content == "1024"


def test_side_effecting_tool_waits_for_approval():
    calls: list[str] = []

    @tool
    def send_email(to: str) -> str:
        """Send an email."""
        calls.append(to)
        return f"sent to {to}"

    send_email.metadata = {SIDE_EFFECT: True}
    llm = scripted({"content": "", "tool_calls": [{"name": "send_email", "args": {"to": "a@x"}}]}, "Done.")
    graph = build_graph("rag_agent", llm, None, InMemorySaver(), tools=[send_email])
    paused = graph.invoke(ask("email a"), CFG)
    assert paused["__interrupt__"][0].value["action_requests"][0]["args"] == {"to": "a@x"}
    assert calls == []
    done = graph.invoke(Command(resume={"type": "edit", "args": {"to": "b@x"}}), CFG)
    assert calls == ["b@x"] and done["messages"][-1].content == "Done."


def test_reflection_revises_until_approved_within_bound():
    # The reviser sees one earlier draft, so the script's second reply is every revision.
    llm = scripted("draft one", "draft two",
                   rules=[{"when": "draft two", "reply": "APPROVED"}, {"when": "Draft answer", "reply": "fix it"}])
    out = build_graph("reflection", llm, None, InMemorySaver(), max_revisions=5).invoke(ask("write"), CFG)
    assert out["messages"][-1].content == "draft two" and out["revisions"] == 1

    stubborn = scripted("draft", rules=[{"when": "Draft answer", "reply": "fix it"}])
    out = build_graph("reflection", stubborn, None, InMemorySaver(), max_revisions=1).invoke(ask("write"), CFG)
    assert out["revisions"] == 1  # bounded


def test_supervisor_routes_to_the_right_specialist():
    factory, asked = retrievers()
    llm = scripted("42", rules=[{"when": "Reply with one word", "reply": "analyst"}])
    out = build_graph("supervisor", llm, factory, InMemorySaver()).invoke(ask("6*7?"), CFG)
    assert out["route"] == "analyst" and asked == []
    llm = scripted("Paris [1].", rules=[{"when": "Reply with one word", "reply": "researcher"},
                                        {"when": "Reply yes or no", "reply": "yes"}])
    out = build_graph("supervisor", llm, factory, InMemorySaver(), default_collection="geo").invoke(
        ask("Capital?"), {"configurable": {"thread_id": "t2"}})
    assert out["route"] == "researcher" and asked and out["messages"][-1].content == "Paris [1]."
