"""Graphs by name: the built-in dotted paths, SWITCHYARD_GRAPHS adding and overriding them, and a user's
builder module that switchyard never names."""

from __future__ import annotations

import json

import pytest

from switchyard.agents import graph_catalog
from switchyard.config import reload_settings


@pytest.fixture
def configured(monkeypatch):
    def configure(value: dict) -> None:
        monkeypatch.setenv("SWITCHYARD_GRAPHS", json.dumps(value))
        reload_settings()

    yield configure
    monkeypatch.delenv("SWITCHYARD_GRAPHS", raising=False)
    reload_settings()


def test_builtin_graphs_are_dotted_paths_into_the_graphs_package():
    assert {s.builder.split(".")[0] for s in graph_catalog.graphs().values()} == {"graphs"}
    assert graph_catalog.get_spec("reflection").builder == "graphs.reflection:build_reflection"


def test_a_configured_graph_is_added_and_built(configured, tmp_path, monkeypatch):
    (tmp_path / "user_graphs_mod.py").write_text(
        "def build_echo(llm, retriever, checkpointer, tenant='default'):\n    return ('echo', tenant)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    configured({"echo": "user_graphs_mod:build_echo",
                "reflection": {"builder": "user_graphs_mod:build_echo", "description": "overridden"}})
    assert graph_catalog.get_spec("reflection").description == "overridden"
    assert graph_catalog.build_graph("echo", tenant="t1", default_collection="ignored") == ("echo", "t1")
    assert "echo" in graph_catalog.graphs() and "rag_agent" in graph_catalog.graphs()


def test_unknown_graph(configured):
    configured({})
    with pytest.raises(graph_catalog.UnknownGraphError, match="known: "):
        graph_catalog.get_spec("nope")
