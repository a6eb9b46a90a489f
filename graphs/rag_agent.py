"""``rag_agent``: a ReAct agent with retrieval, a calculator and read-only SQL.

    agent ──(tool calls)──► tools ──► agent          (at most ``max_tool_rounds`` rounds)
      │  └─(side-effecting call)──► review ──(approve/edit)──► tools
      │                                   └─(reject)─────────► agent
      └─(answer)──► cite ──► END

``review`` pauses the run with ``interrupt()`` until a human answers ``{"type": "approve"}``,
``{"type": "edit", "args": {...}}`` or ``{"type": "reject", "message": "..."}``. With
``configurable.auto_approve`` set, side-effecting tools run without asking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

from graphs.state import AgentState
from graphs.tools import calculator, is_side_effecting, make_retrieval_tool, make_sql_tool, save_note

SYSTEM_PROMPT = (
    "You are a careful assistant. Use search_documents to find passages in the knowledge base and cite "
    "them as [n] with their sources; search again with a refined query if the passages are not enough. "
    "Use calculator for arithmetic and sql_query for questions about the database. Answer concisely."
)
FINAL_PROMPT = "You have used all your tool calls. Answer now from what you have, citing passages as [n]."


class RagAgentState(AgentState):
    tool_rounds: int


def build_rag_agent(llm: Any, retriever: Any = None, checkpointer: Any = None, *,
                    tools: Sequence[BaseTool] | None = None, default_collection: str = "default",
                    sql_databases: Mapping[str, str] | None = None, tenant: str = "default",
                    max_tool_rounds: int = 4, system_prompt: str = SYSTEM_PROMPT, name: str = "rag_agent"):
    """Compile the agent. ``tools`` replaces the default set (retrieval, calculator, SQL, save_note)."""
    if tools is None:
        tools = [make_retrieval_tool(retriever, default_collection), calculator, save_note]
        if sql_databases:
            tools.append(make_sql_tool(sql_databases, tenant=tenant))  # the run's tenant: its rows only
    tools = list(tools)
    risky = {t.name for t in tools if is_side_effecting(t)}

    def agent(state: RagAgentState) -> dict:
        rounds = state.get("tool_rounds", 0)
        prompt = [SystemMessage(system_prompt), *state["messages"]]
        if rounds >= max_tool_rounds:  # the bound on the retrieve-again cycle: answer without tools
            reply = llm.invoke([*prompt, SystemMessage(FINAL_PROMPT)])
            if getattr(reply, "tool_calls", None):  # no tools were offered: calls now would dangle
                reply = reply.model_copy(update={"tool_calls": [], "tool_call_chunks": []})
        else:
            reply = llm.bind_tools(tools).invoke(prompt)
        return {"messages": [reply]}

    def route(state: RagAgentState) -> Literal["tools", "review", "cite"]:
        last = state["messages"][-1]
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return "cite"
        if any(call["name"] in risky for call in last.tool_calls):
            return "review"
        return "tools"

    def review(state: RagAgentState, config: RunnableConfig) -> Command[Literal["tools", "agent"]]:
        last = state["messages"][-1]
        if (config.get("configurable") or {}).get("auto_approve"):
            return Command(goto="tools")
        requests = [{"tool": c["name"], "args": c["args"], "id": c["id"]} for c in last.tool_calls
                    if c["name"] in risky]
        decision = interrupt({"type": "approval", "action_requests": requests})
        kind = decision.get("type") if isinstance(decision, dict) else str(decision)
        if kind == "approve":
            return Command(goto="tools")
        if kind == "edit":
            args = decision.get("args") or {}
            calls = [{**c, "args": {**c["args"], **args}} if c["name"] in risky else c for c in last.tool_calls]
            # Same id: add_messages replaces the proposed call with the edited one.
            return Command(goto="tools", update={"messages": [last.model_copy(update={"tool_calls": calls})]})
        reason = (decision.get("message") if isinstance(decision, dict) else None) or "rejected by a human"
        return Command(goto="agent", update={"messages": [
            ToolMessage(f"not run: {reason}", tool_call_id=c["id"], name=c["name"], status="error")
            for c in last.tool_calls]})

    def count_round(state: RagAgentState) -> dict:
        return {"tool_rounds": state.get("tool_rounds", 0) + 1}

    def cite(state: RagAgentState) -> dict:
        # The passages the tools returned since the question, numbered as the model saw them.
        sources: list[dict] = []
        for message in reversed(state["messages"]):
            if message.type == "human":
                break
            if isinstance(message, ToolMessage) and isinstance(message.artifact, list):
                sources[:0] = message.artifact
        return {"sources": sources, "tool_rounds": 0}

    builder = StateGraph(RagAgentState)
    builder.add_node("agent", agent)
    builder.add_node("review", review, destinations=("tools", "agent"))
    builder.add_node("tools", ToolNode(tools))
    builder.add_node("count_round", count_round)
    builder.add_node("cite", cite)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", "review", "cite"])
    builder.add_edge("tools", "count_round")
    builder.add_edge("count_round", "agent")
    builder.add_edge("cite", END)
    return builder.compile(checkpointer=checkpointer, name=name)
