"""``reflection``: draft → critique → revise, at most ``max_revisions`` times, then answer.

The critic (``nostream``) replies ``APPROVED`` or a list of fixes. Drafts stream as tokens; the final
answer message reuses the last draft's id, so its tokens are the ones that streamed under that id.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph

from graphs.state import AgentState, last_question

CRITIQUE_PROMPT = (
    "Question: {question}\n\nDraft answer:\n{draft}\n\nIf the draft is correct, complete and clear, reply "
    "APPROVED. Otherwise list the specific fixes it needs."
)
REVISE_PROMPT = "Revise your draft to apply these fixes, and reply with the revised answer only:\n{critique}"


class ReflectionState(AgentState):
    draft: str
    draft_id: str
    critique: str
    revisions: int


def build_reflection(llm: Any, retriever: Any = None, checkpointer: Any = None, *, max_revisions: int = 2,
                     name: str = "reflection"):
    quiet = llm.with_config(tags=["nostream"]) if llm is not None else None

    def draft(state: ReflectionState) -> dict:
        reply = llm.invoke(state["messages"])
        return {"draft": reply.content, "draft_id": reply.id, "revisions": 0}

    def critique(state: ReflectionState) -> dict:
        reply = quiet.invoke([HumanMessage(CRITIQUE_PROMPT.format(
            question=last_question(state["messages"]), draft=state["draft"]))])
        return {"critique": str(reply.content)}

    def decide(state: ReflectionState) -> Literal["revise", "finish"]:
        done = "APPROVED" in state.get("critique", "").upper() or state.get("revisions", 0) >= max_revisions
        return "finish" if done else "revise"

    def revise(state: ReflectionState) -> dict:
        reply = llm.invoke([*state["messages"], AIMessage(state["draft"]),
                            SystemMessage(REVISE_PROMPT.format(critique=state["critique"]))])
        return {"draft": reply.content, "draft_id": reply.id, "revisions": state.get("revisions", 0) + 1}

    def finish(state: ReflectionState) -> dict:
        return {"messages": [AIMessage(state["draft"], id=state.get("draft_id"))], "critique": ""}

    builder = StateGraph(ReflectionState)
    for node in (draft, critique, revise, finish):
        builder.add_node(node.__name__, node)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "critique")
    builder.add_conditional_edges("critique", decide, ["revise", "finish"])
    builder.add_edge("revise", "critique")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name=name)
