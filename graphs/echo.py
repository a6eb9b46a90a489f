"""``echo``: one node that answers the last user message with an AI message repeating it; no model call.

For benchmarks (the platform's own cost of a run, with the graph's time close to nothing) and health
checks (a run that needs no model, retriever or tool to succeed). Checkpoints are kept like any graph's.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from graphs.state import last_question


def build_echo(llm: Any = None, retriever: Any = None, checkpointer: Any = None, *, name: str = "echo"):
    """Compile the echo graph; ``llm`` and ``retriever`` are accepted like every builder's and not used."""

    def echo(state: MessagesState) -> dict:
        return {"messages": [AIMessage(last_question(state["messages"]))]}

    builder = StateGraph(MessagesState)
    builder.add_node("echo", echo)
    builder.add_edge(START, "echo")
    builder.add_edge("echo", END)
    return builder.compile(checkpointer=checkpointer, name=name)
