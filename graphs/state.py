"""Graph state shared by the graphs: LangGraph's message convention plus the RAG keys.

Every graph accepts ``{"messages": [{"role": "user", "content": ...}], "collection": ...}``; a missing
``collection`` falls back to the graph's configured default.
"""

from __future__ import annotations

from typing import Any, NotRequired

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import MessagesState


class AgentState(MessagesState):
    collection: NotRequired[str | None]
    # Passages the answer cites, in citation order: {"n", "source", "document_id", "chunk_id", "score"}.
    sources: NotRequired[list[dict[str, Any]]]


def last_question(messages: list[AnyMessage]) -> str:
    """The text of the latest user message (what the run is answering)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.content if isinstance(message.content, str) else str(message.content)
    return ""


def collection_of(state: dict[str, Any], default: str) -> str:
    return state.get("collection") or default
