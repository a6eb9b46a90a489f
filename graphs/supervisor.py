"""``supervisor``: a router that hands the question to one of two specialist subgraphs.

- ``researcher``: the ``rag_answer`` graph (retrieval with citations);
- ``analyst``: a ReAct agent with the calculator and read-only SQL.

The supervisor (``nostream``) names the specialist; the specialist's answer is the run's answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

from graphs.rag_agent import build_rag_agent
from graphs.rag_answer import build_rag_answer
from graphs.state import AgentState, last_question
from graphs.tools import calculator, make_sql_tool

ROUTE_PROMPT = (
    "Route this request to one specialist. researcher: questions answered from the document collection. "
    "analyst: arithmetic and questions about database tables.\n\nRequest: {question}\n\n"
    "Reply with one word: researcher or analyst."
)


class SupervisorState(AgentState):
    route: str


def build_supervisor(llm: Any, retriever: Any = None, checkpointer: Any = None, *,
                     default_collection: str = "default", sql_databases: Mapping[str, str] | None = None,
                     tenant: str = "default", name: str = "supervisor"):
    quiet = llm.with_config(tags=["nostream"]) if llm is not None else None
    # Subgraphs without their own checkpointer: they checkpoint inside the parent's thread.
    researcher = build_rag_answer(llm, retriever, None, default_collection=default_collection, name="researcher")
    analyst_tools = [calculator] + ([make_sql_tool(sql_databases, tenant=tenant)] if sql_databases else [])
    analyst = build_rag_agent(llm, None, None, tools=analyst_tools, name="analyst",
                              system_prompt="You are an analyst. Use the calculator and SQL tools; answer concisely.")

    def supervise(state: SupervisorState) -> dict:
        reply = quiet.invoke([HumanMessage(ROUTE_PROMPT.format(question=last_question(state["messages"])))])
        text = str(reply.content).lower()
        return {"route": "analyst" if "analyst" in text else "researcher"}

    def route(state: SupervisorState) -> Literal["researcher", "analyst"]:
        return state["route"]

    builder = StateGraph(SupervisorState)
    builder.add_node("supervisor", supervise)
    builder.add_node("researcher", researcher)
    builder.add_node("analyst", analyst)
    builder.add_edge(START, "supervisor")
    builder.add_conditional_edges("supervisor", route, ["researcher", "analyst"])
    builder.add_edge("researcher", END)
    builder.add_edge("analyst", END)
    return builder.compile(checkpointer=checkpointer, name=name)
