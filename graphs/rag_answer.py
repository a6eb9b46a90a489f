"""``rag_answer``: retrieve → grade → (rewrite → retrieve | generate) → cite, with no tool calling.

A fixed graph a small local model can run: the model only ever completes plain prompts. Grading and
rewriting are tagged ``nostream``, so the run's token stream is exactly the answer.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from graphs.state import AgentState, collection_of, last_question
from graphs.tools import as_factory, document_to_source, format_passages

GRADE_PROMPT = (
    "Question: {question}\n\nPassages:\n{passages}\n\n"
    "Do these passages contain the information needed to answer the question? Reply yes or no."
)
REWRITE_PROMPT = (
    "The search query {query!r} did not find passages that answer: {question}\n"
    "Write one better search query. Reply with the query only."
)
ANSWER_PROMPT = (
    "Answer the question from the passages below and cite them as [n]. If they do not contain the "
    "answer, say so.\n\nPassages:\n{passages}"
)


# Only the first words of a grade and the first line of a rewrite are read: a small local model would
# otherwise spend seconds writing paragraphs nobody reads (``max_tokens`` is the OpenAI name; the local
# provider takes it too).
GRADE_TOKENS = 4
REWRITE_TOKENS = 24


class RagAnswerState(AgentState):
    query: str
    documents: list[dict[str, Any]]
    rewrites: int
    relevant: bool


def _docs(state: RagAnswerState) -> list[Document]:
    return [Document(d["text"], metadata=d) for d in state.get("documents", [])]


def _text(message: Any) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


def build_rag_answer(llm: Any, retriever: Any = None, checkpointer: Any = None, *,
                     default_collection: str = "default", max_rewrites: int = 1, name: str = "rag_answer"):
    factory = as_factory(retriever)
    quiet = llm.with_config(tags=["nostream"]) if llm is not None else None

    def retrieve(state: RagAnswerState) -> dict:
        question = last_question(state["messages"])
        # A new question starts over; a rewrite keeps its refined query.
        query = state.get("query") if state.get("rewrites") else question
        docs = factory(collection_of(state, default_collection)).invoke(query or question)
        # A progress note for UIs (the `custom` stream): what was searched and how much came back.
        get_stream_writer()({"stage": "retrieved", "query": query or question, "passages": len(docs)})
        return {"query": query, "documents": [document_to_source(i, d) for i, d in enumerate(docs, 1)]}

    def grade(state: RagAnswerState) -> dict:
        docs = _docs(state)
        if not docs:
            return {"relevant": False}
        reply = quiet.invoke([HumanMessage(GRADE_PROMPT.format(
            question=last_question(state["messages"]), passages=format_passages(docs)))], max_tokens=GRADE_TOKENS)
        return {"relevant": "no" not in _text(reply).strip().lower()[:8]}

    def decide(state: RagAnswerState) -> Literal["rewrite", "generate"]:
        if state.get("relevant") or state.get("rewrites", 0) >= max_rewrites:
            return "generate"
        return "rewrite"

    def rewrite(state: RagAnswerState) -> dict:
        reply = quiet.invoke([HumanMessage(REWRITE_PROMPT.format(
            query=state.get("query"), question=last_question(state["messages"])))], max_tokens=REWRITE_TOKENS)
        query = _text(reply).strip().splitlines()[0].strip(' "') if _text(reply).strip() else state["query"]
        return {"query": query, "rewrites": state.get("rewrites", 0) + 1}

    def generate(state: RagAnswerState) -> dict:
        system = SystemMessage(ANSWER_PROMPT.format(passages=format_passages(_docs(state))))
        reply = llm.invoke([system, *state["messages"]])
        return {"messages": [reply]}

    def cite(state: RagAnswerState) -> dict:
        sources = [{k: v for k, v in d.items() if k != "text"} for d in state.get("documents", [])]
        return {"sources": sources, "rewrites": 0, "query": ""}

    builder = StateGraph(RagAnswerState)
    for node in (retrieve, grade, rewrite, generate, cite):
        builder.add_node(node.__name__, node)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "grade")
    builder.add_conditional_edges("grade", decide, ["rewrite", "generate"])
    builder.add_edge("rewrite", "retrieve")
    builder.add_edge("generate", "cite")
    builder.add_edge("cite", END)
    return builder.compile(checkpointer=checkpointer, name=name)
