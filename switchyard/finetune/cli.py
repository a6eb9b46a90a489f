"""``switchyard adapters list|show|merge|export|delete``: the adapter registry from the shell."""

from __future__ import annotations

import json

import click


def _fail_unknown(name: str) -> None:
    raise click.ClickException(f"no adapter named {name!r} (see `switchyard adapters list`)")


@click.group()
def adapters() -> None:
    """Fine-tuned adapters: list, inspect, merge into the base, export, delete."""


@adapters.command("list")
@click.option("--base", default=None, help="only adapters of this base model")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines")
def list_cmd(base: str | None, as_json: bool) -> None:
    """Registered adapters, newest first."""
    from rich.console import Console
    from rich.table import Table

    from switchyard.finetune.adapters import list_adapters

    found = list_adapters(base_model=base)
    if as_json:
        for adapter in found:
            click.echo(json.dumps(adapter.to_dict(), default=str))
        return
    table = Table("name", "base", "method", "r", "steps", "train loss", "eval loss", "created")
    for a in found:
        m = a.metrics
        table.add_row(a.name, a.base_model, a.method, str(a.config.get("r")), str(m.get("step")),
                      f"{m['train_loss']:.4f}" if "train_loss" in m else "", f"{m['eval_loss']:.4f}"
                      if "eval_loss" in m else "", a.created_at.strftime("%Y-%m-%d %H:%M"))
    console = Console()
    if not console.is_terminal:  # piped: do not wrap names at 80 columns
        console = Console(width=250)
    console.print(table)


@adapters.command()
@click.argument("name")
def show(name: str) -> None:
    """One adapter's record as JSON (config, metrics, job, artifact location)."""
    from switchyard.finetune.adapters import AdapterNotFound, get_adapter

    try:
        record = get_adapter(name).to_dict()
    except AdapterNotFound:
        _fail_unknown(name)
    record["metrics"].pop("history", None)
    click.echo(json.dumps(record, indent=2, default=str))


@adapters.command()
@click.argument("name")
@click.argument("dest", type=click.Path(file_okay=False))
def merge(name: str, dest: str) -> None:
    """Fold the adapter into its base model and save a standalone model to DEST."""
    from switchyard.finetune.adapters import AdapterNotFound
    from switchyard.finetune.adapters import merge as run

    try:
        click.echo(str(run(name, dest)))
    except AdapterNotFound:
        _fail_unknown(name)


@adapters.command()
@click.argument("name")
@click.argument("dest")
def export(name: str, dest: str) -> None:
    """Copy the adapter's files (adapter_config.json, adapter_model.safetensors) to DEST (path or fsspec URL)."""
    from switchyard.finetune.adapters import AdapterNotFound
    from switchyard.finetune.adapters import export as run

    try:
        click.echo(run(name, dest))
    except AdapterNotFound:
        _fail_unknown(name)


@adapters.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="do not ask")
def delete(name: str, yes: bool) -> None:
    """Remove the adapter from the registry and the artifact store."""
    from switchyard.finetune.adapters import AdapterNotFound, delete_adapter

    if not yes:
        click.confirm(f"delete adapter {name}?", abort=True)
    try:
        delete_adapter(name)
    except AdapterNotFound:
        _fail_unknown(name)
    click.echo(f"deleted {name}")


@adapters.command("register-base")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--description", default=None)
def register_base(name: str, path: str, description: str | None) -> None:
    """Register a local base model directory (save_pretrained output) under NAME for jobs to use."""
    from pathlib import Path

    from switchyard.finetune.models import register_base_model

    if not (Path(path) / "config.json").is_file():
        raise click.ClickException(f"{path} has no config.json (expected a save_pretrained directory)")
    entry = register_base_model(name, Path(path).resolve(), description)
    click.echo(f"{entry.name} -> {entry.path}")


@adapters.command("bases")
def bases() -> None:
    """Registered base models (name → local path)."""
    from switchyard.finetune.models import list_base_models

    for entry in list_base_models():
        click.echo(f"{entry.name}\t{entry.path}\t{entry.description or ''}")


@click.group()
def models() -> None:
    """Base models: the registry jobs and the local chat provider resolve names in, and built-in models."""


@models.command("list")
def models_list() -> None:
    """Registered base models, and the built-in ones with whether their wheel is installed and converted."""
    from switchyard.finetune.base_models import (
        BUILTIN_MODELS,
        ModelNotInstalledError,
        converted_dir,
        find_gguf,
        is_converted,
    )
    from switchyard.finetune.models import list_base_models

    registered = {entry.name: entry for entry in list_base_models()}
    for entry in registered.values():
        click.echo(f"{entry.name}\t{entry.path}\t{entry.description or ''}")
    for name, builtin in BUILTIN_MODELS.items():
        if name in registered:
            continue
        try:
            find_gguf(builtin)
            state = f"converted: {converted_dir(name)}" if is_converted(name) else "converted on first use"
        except ModelNotInstalledError:
            state = f"not installed: {builtin.install_command}"
        click.echo(f"{name}\t(built-in, {state})\t{builtin.description}")


@models.command("add")
@click.argument("name")
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--description", default=None)
def models_add(name: str, path: str | None, description: str | None) -> None:
    """Register PATH (a save_pretrained directory) as NAME; without PATH, convert built-in model NAME now."""
    from pathlib import Path

    from switchyard.finetune.base_models import BUILTIN_MODELS
    from switchyard.finetune.models import UnknownModelError, register_base_model, resolve_model

    if path is None:
        if name not in BUILTIN_MODELS:
            raise click.ClickException(f"{name!r} is not a built-in model ({', '.join(BUILTIN_MODELS)}): give a PATH")
        try:
            click.echo(f"{name} -> {resolve_model(name)}")
        except UnknownModelError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if not (Path(path) / "config.json").is_file():
        raise click.ClickException(f"{path} has no config.json (expected a save_pretrained directory)")
    entry = register_base_model(name, Path(path).resolve(), description)
    click.echo(f"{entry.name} -> {entry.path}")


@models.command("remove")
@click.argument("name")
def models_remove(name: str) -> None:
    """Forget NAME in the registry (its files stay; a built-in model is registered again on next use)."""
    from switchyard.finetune.models import delete_base_model

    if not delete_base_model(name):
        raise click.ClickException(f"no base model named {name!r} (see `switchyard models list`)")
    click.echo(f"removed {name}")
