"""Compiled graphs kept per process (switchyard/agents/compiled.py): built once per graph, model, tenant
and configuration; never shared across tenants, configurations, processes or caller-named models."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from switchyard.agents import checkpointer as checkpointer_module
from switchyard.agents.compiled import CompiledGraphs, compiled_graphs, shared_model
from switchyard.agents.runs import load_graph
from switchyard.config import reload_settings
from switchyard.llm.factory import get_llm_settings


class Builds:
    """A build function that counts its calls and makes a new object each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        return object()


def test_the_same_key_and_inputs_build_once():
    cache, build, config = CompiledGraphs(), Builds(), object()
    first = cache.get("g", (config,), build)
    assert cache.get("g", (config,), build) is first and build.calls == 1


def test_new_input_objects_build_anew_even_if_equal():
    """Inputs are compared by identity: reloaded settings are new objects, possibly equal to the old."""
    cache, build = CompiledGraphs(), Builds()
    first = cache.get("g", ({"a": 1},), build)
    second = cache.get("g", ({"a": 1},), build)
    assert second is not first and build.calls == 2
    assert cache.get("g", ({"a": 1}, "one more"), build) is not second  # another number of inputs


def test_the_least_recently_used_graph_goes_first():
    cache, build, config = CompiledGraphs(max_graphs=2), Builds(), object()
    a = cache.get("a", (config,), build)
    cache.get("b", (config,), build)
    assert cache.get("a", (config,), build) is a  # "a" is now the most recent
    cache.get("c", (config,), build)  # evicts "b"
    assert len(cache) == 2 and build.calls == 3
    assert cache.get("a", (config,), build) is a
    cache.get("b", (config,), build)
    assert build.calls == 4


def test_a_forked_child_starts_empty():
    build, config = Builds(), object()
    compiled_graphs().get("g", (config,), build)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's graph must not be returned
        try:
            child_build = Builds()
            compiled_graphs().get("g", (config,), child_build)
            os.write(write, str(child_build.calls).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 8) == b"1"
    os.close(read)
    assert compiled_graphs().get("g", (config,), build) is not None and build.calls == 1  # the parent's is kept
    compiled_graphs().clear()


@pytest.mark.parametrize(("model", "shared"), [
    (None, True), ("scripted", True), ("openai:gpt-4o-mini", True), ("configured-name", True),
    ("local:support-bot", False), ({"provider": "scripted"}, False),
])
def test_only_the_process_s_own_models_are_shared(model, shared):
    """A caller's inline config is screened, and a tenant's adapter checked, on every run."""
    assert shared_model(model) is shared


@pytest.fixture
def scripted_defaults(monkeypatch):
    """The default model is the scripted one and the checkpointer an in-memory saver (no database)."""
    saver = InMemorySaver()
    monkeypatch.setattr(checkpointer_module, "get_checkpointer", lambda: saver)
    monkeypatch.setenv("SWITCHYARD_LLM_DEFAULT_MODEL", "scripted")
    get_llm_settings.cache_clear()
    compiled_graphs().clear()
    yield saver
    monkeypatch.delenv("SWITCHYARD_LLM_DEFAULT_MODEL")
    get_llm_settings.cache_clear()
    compiled_graphs().clear()


def test_load_graph_keeps_a_graph_per_graph_model_and_tenant(scripted_defaults):
    echo = load_graph("echo", tenant="acme")
    assert load_graph("echo", tenant="acme") is echo
    assert load_graph("echo", tenant="globex") is not echo
    assert load_graph("echo") is not echo  # the operator (tenant None) is not a tenant's
    assert load_graph("echo", model="scripted", tenant="acme") is not echo  # named, not the default
    assert load_graph("reflection", tenant="acme") is not echo
    assert load_graph("echo", model={"provider": "scripted"}, tenant="acme") is not load_graph(
        "echo", model={"provider": "scripted"}, tenant="acme")  # inline: built per run
    assert load_graph("echo", checkpointer=InMemorySaver(), tenant="acme") is not echo


def test_reloaded_settings_build_the_graph_anew(scripted_defaults):
    echo = load_graph("echo", tenant="acme")
    reload_settings()
    assert load_graph("echo", tenant="acme") is not echo


def test_a_kept_graph_serves_concurrent_runs(scripted_defaults):
    """A compiled graph is reentrant: runs on their own threads in parallel, each with its own answer."""
    graph = load_graph("echo", tenant="acme")

    def run(n: int) -> str:
        state = graph.invoke({"messages": [("user", f"question {n}")]}, {"configurable": {"thread_id": f"t{n}"}})
        return state["messages"][-1].content

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(run, range(32)))
    assert answers == [f"question {n}" for n in range(32)]
    assert load_graph("echo", tenant="acme") is graph
