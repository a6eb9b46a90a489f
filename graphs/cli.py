"""``switchyard graph``: list the registered graphs and draw them as Mermaid."""

from __future__ import annotations

import click


@click.group("graph")
def graph() -> None:
    """Agent graphs (LangGraph)."""


@graph.command("list")
def list_graphs() -> None:
    """List the registered graphs."""
    from switchyard.agents.graph_catalog import graphs

    for spec in graphs().values():
        click.echo(f"{spec.name:12} {spec.description}")


@graph.command("draw")
@click.argument("name")
@click.option("--xray/--no-xray", default=True, help="expand subgraphs")
def draw(name: str, xray: bool) -> None:
    """Print graph NAME as a Mermaid diagram."""
    from graphs import UnknownGraphError, build_graph

    try:
        compiled = build_graph(name)  # drawing needs no model, retriever or checkpointer
    except UnknownGraphError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    click.echo(compiled.get_graph(xray=xray).draw_mermaid())


@graph.command("run")
@click.argument("name")
@click.argument("question")
@click.option("--collection", default=None, help="collection to search (default: SWITCHYARD_AGENT_DEFAULT_COLLECTION)")
@click.option("--model", default=None, help="model name or provider:model (default: SWITCHYARD_LLM_DEFAULT_MODEL)")
@click.option("--thread", "thread_id", default=None, help="continue a conversation")
def run(name: str, question: str, collection: str | None, model: str | None, thread_id: str | None) -> None:
    """Ask graph NAME a QUESTION on an agent worker; stream the answer and its sources."""
    from switchyard.agents.ask import ask

    result = ask(question, graph=name, collection=collection, model=model, thread_id=thread_id)
    if result.get("status") == "error":
        raise SystemExit(1)
