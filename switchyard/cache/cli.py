"""``switchyard cache stats|clear``: what the LLM cache saved, and dropping entries."""

from __future__ import annotations

import json

import click


@click.group("cache")
def cache() -> None:
    """The LLM cache (exact: LRU + Redis; semantic: pgvector). See docs/cache.md."""


@cache.command("stats")
@click.option("--namespace", default=None, help="one namespace (tenant/purpose), default all")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def stats(namespace: str | None, as_json: bool) -> None:
    """Hits per layer, misses, hit latency, tokens and cost saved, and entries, per namespace."""
    from switchyard.cache import redis_exact, semantic
    from switchyard.cache.backends import cache_redis
    from switchyard.cache.config import get_cache_settings
    from switchyard.cache.metrics import LAYERS, read_stats

    prefix = get_cache_settings().prefix
    client = cache_redis()
    counters = read_stats(client, prefix, namespace)
    entries = redis_exact.count_entries(client, prefix, namespace)
    try:
        semantic_entries = semantic.count_entries()
    except Exception as exc:  # Postgres down or not migrated: the Redis side still prints
        click.echo(f"semantic entries unavailable: {exc}", err=True)
        semantic_entries = {}
    rows = []
    for ns in sorted(set(counters) | set(entries) | {n for n in semantic_entries if not namespace or n == namespace}):
        c = counters.get(ns, {})
        hits = {layer: int(c.get(f"{layer}:hits", 0)) for layer in LAYERS}
        total_hits = sum(hits.values())
        rows.append({
            "namespace": ns, "hits": hits, "misses": int(c.get("misses", 0)),
            "hit_rate": round(total_hits / max(total_hits + c.get("misses", 0), 1), 4),
            "mean_hit_ms": round(sum(c.get(f"{layer}:hit_seconds", 0) for layer in LAYERS) * 1000
                                 / max(total_hits, 1), 3),
            "tokens_saved": int(sum(c.get(f"{layer}:tokens_saved", 0) for layer in LAYERS)),
            "cost_saved_usd": round(sum(c.get(f"{layer}:cost_saved_usd", 0) for layer in LAYERS), 6),
            "entries": {"redis": entries.get(ns, 0), "semantic": semantic_entries.get(ns, 0)},
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("namespace", "hits lru/redis/semantic", "misses", "hit rate", "mean hit ms", "tokens saved",
                  "USD saved", "entries redis/semantic")
    for r in rows:
        table.add_row(r["namespace"], "/".join(str(r["hits"][k]) for k in LAYERS), str(r["misses"]),
                      f"{r['hit_rate']:.1%}", f"{r['mean_hit_ms']:.2f}", str(r["tokens_saved"]),
                      f"{r['cost_saved_usd']:.4f}", f"{r['entries']['redis']}/{r['entries']['semantic']}")
    Console().print(table)


@cache.command("clear")
@click.option("--namespace", default=None, help="a namespace (tenant/purpose) or a tenant: its entries go")
@click.option("--model", default=None, help="only this model's entries (its model name)")
@click.option("--collection", default=None, help="only answers cached against this collection")
@click.option("--yes", is_flag=True, help="clear everything without asking when nothing narrows it")
def clear(namespace: str | None, model: str | None, collection: str | None, yes: bool) -> None:
    """Drop cached answers from every layer (other processes' LRUs drop theirs within LRU_TTL_S)."""
    from switchyard.cache.layered import invalidate

    if not (namespace or model or collection or yes):
        click.confirm("Clear the whole LLM cache?", abort=True)
    counts = invalidate(namespace=namespace, model=model, collection=collection)
    click.echo(json.dumps({"deleted": counts}))
