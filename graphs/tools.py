"""The agents' tools: retrieval with sources, a calculator, read-only SQL, and a side-effecting note.

Tools are built by functions that take what they need (a retriever factory, database URLs), so a test
can build them against anything that quacks like a LangChain retriever.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import InjectedState

# A retriever for a collection name. Graphs accept a plain BaseRetriever too (one collection).
RetrieverFactory = Callable[[str], BaseRetriever]

# Tools whose call changes the world: the agent pauses for a human before running them.
SIDE_EFFECT = "side_effect"


def as_factory(retriever: BaseRetriever | RetrieverFactory | None) -> RetrieverFactory:
    if retriever is None:
        def missing(collection: str) -> BaseRetriever:
            raise RuntimeError("this graph was built without a retriever")
        return missing
    if isinstance(retriever, BaseRetriever):
        return lambda _collection: retriever
    return retriever


def source_of(doc: Document) -> str:
    meta = doc.metadata or {}
    return str(meta.get("source") or meta.get("title") or meta.get("document_id") or "unknown")


def document_to_source(n: int, doc: Document) -> dict[str, Any]:
    meta = doc.metadata or {}
    return {"n": n, "source": source_of(doc), "document_id": meta.get("document_id"),
            "chunk_id": meta.get("chunk_id"), "score": meta.get("score"), "text": doc.page_content}


def format_passages(docs: list[Document], start: int = 1) -> str:
    """Numbered passages with their sources, the form the prompts ask the model to cite."""
    if not docs:
        return "No passages found."
    return "\n\n".join(f"[{i}] (source: {source_of(d)})\n{d.page_content}" for i, d in enumerate(docs, start))


def is_side_effecting(t: BaseTool) -> bool:
    return bool((t.metadata or {}).get(SIDE_EFFECT))


def make_retrieval_tool(retriever: BaseRetriever | RetrieverFactory | None, default_collection: str) -> BaseTool:
    factory = as_factory(retriever)

    @tool(response_format="content_and_artifact")
    def search_documents(query: str, state: Annotated[dict, InjectedState]) -> tuple[str, list[dict]]:
        """Search the knowledge base. Returns numbered passages with their sources; cite them as [n].
        Call again with a refined query if the passages do not answer the question."""
        docs = factory(state.get("collection") or default_collection).invoke(query)
        return format_passages(docs), [document_to_source(i, d) for i, d in enumerate(docs, 1)]

    return search_documents


# simpleeval parses with `ast` and allows only arithmetic: no names, attributes or calls beyond these.
_MATH_FUNCTIONS = {name: getattr(math, name) for name in
                   ("sqrt", "log", "log10", "exp", "sin", "cos", "tan", "floor", "ceil", "fabs")}
_MATH_FUNCTIONS.update({"abs": abs, "round": round, "min": min, "max": max})


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression, e.g. "(3 + 4) * 2 / sqrt(16)". Supports + - * / // % **
    and sqrt, log, exp, sin, cos, tan, floor, ceil, abs, round, min, max, pi, e."""
    from simpleeval import SimpleEval

    evaluator = SimpleEval(functions=_MATH_FUNCTIONS, names={"pi": math.pi, "e": math.e})
    try:
        return str(evaluator.eval(expression))
    except Exception as exc:  # the model sees the error and can fix its expression
        return f"error: {type(exc).__name__}: {exc}"


def make_sql_tool(databases: Mapping[str, str], *, tenant: str, max_rows: int | None = None,
                  timeout_ms: int | None = None) -> BaseTool:
    """A read-only SQL tool over named databases (``{"name": url}`` from configuration; the first is the
    default) for one run's ``tenant``: switchyard's own database is queried as the least-privileged
    reader role, through views that show only the tenant's rows (switchyard.agents.sql_tool)."""
    from switchyard.agents.sql_tool import get_sql_tool_settings, resolve_targets, run_query

    settings = get_sql_tool_settings()
    targets = resolve_targets(databases)
    names = list(targets)
    limits = {"max_rows": max_rows or settings.max_rows, "timeout_ms": timeout_ms or settings.timeout_ms}

    @tool
    def sql_query(query: str, database: str = names[0] if names else "default") -> str:
        """Run one read-only SQL query (a single SELECT) against a named database. Returns JSON
        {"rows": [...], "truncated": bool}. On switchyard's database the tables are views of your own
        data: collections, documents, chunks, jobs, agent_runs, agent_notes, adapters."""
        target = targets.get(database)
        if target is None:
            return f"error: unknown database {database!r}; known: {names}"
        return run_query(target, query, tenant=tenant, **limits)

    return sql_query


@tool
def save_note(text: str, config: RunnableConfig) -> str:
    """Save a note for the user (persists; needs human approval)."""
    from switchyard.agents.threads import save_note as store_note

    configurable = config.get("configurable") or {}
    # The run sets switchyard_tenant after the caller's configurable, so a caller cannot choose it.
    thread_id, tenant = configurable.get("thread_id", ""), configurable.get("switchyard_tenant")
    return f"saved note {store_note(thread_id, text, tenant)}"


save_note.metadata = {SIDE_EFFECT: True}
