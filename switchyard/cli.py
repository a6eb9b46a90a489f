"""The ``switchyard`` command: dev stack, migrations, workers, API, listener, and job tools."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from typing import TYPE_CHECKING

import click

from switchyard.config import get_settings

if TYPE_CHECKING:
    from workers.profiles import PoolProfile


@click.group()
def main() -> None:
    """switchyard: an event-driven worker platform for LLM work."""
    from switchyard import logs

    logs.configure()


@main.command()
@click.option("--pools", default=None, help="comma-separated pools to run (default: all installed)")
@click.option("--no-api", is_flag=True, help="do not start the HTTP API")
@click.option("--no-listen", is_flag=True, help="do not start the trigger-stream listener")
@click.option("--no-defaults", is_flag=True,
              help="skip the demo model and the demo corpus as the agents' default collection")
def dev(pools: str | None, no_api: bool, no_listen: bool, no_defaults: bool) -> None:
    """Run everything on this machine (embedded Postgres and Redis where no URL is set)."""
    from rich.console import Console

    from switchyard.dev import DevStack

    console = Console()
    stack = DevStack(pools.split(",") if pools else None, api=not no_api, listener=not no_listen,
                     defaults=not no_defaults, on_event=lambda text: console.print(f"[dim]dev[/dim] {text}"))
    try:
        urls = stack.start()
        console.print("[bold green]switchyard is up[/bold green]")
        for key, value in urls.items():
            console.print(f"  {key}={value}")
        console.print(f"  (other shells: set -a; . {stack.state / 'dev.env'})  Ctrl-C stops everything.")
        stack.run_forever()
    finally:
        console.print("stopping…")
        stack.stop()


@main.command()
def migrate() -> None:
    """Apply pending database migrations (safe to run from several processes at once)."""
    from switchyard.db import migrate as run

    applied = run()
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@main.command()
@click.argument("pool", type=click.Choice(["finetune", "index", "agent", "eval", "control"]))
@click.option("-c", "--concurrency", type=int, default=None)
@click.option("-n", "--nodename", default=None)
@click.option("--loglevel", default="INFO")
@click.option("--no-beat", is_flag=True, help="control pool only: do not run beat in this worker")
def worker(pool: str, concurrency: int | None, nodename: str | None, loglevel: str, no_beat: bool) -> None:
    """Start a Celery worker with POOL's queues, execution pool, concurrency and acks settings."""
    from workers.profiles import profiles, visible_gpus, worker_argv

    profile = profiles()[pool]
    beat = False if no_beat else None
    if pool == "finetune" and len(gpus := visible_gpus()) > 1:
        _run_per_gpu(profile, gpus, loglevel)
        return
    argv = worker_argv(profile, concurrency=concurrency, nodename=nodename, loglevel=loglevel, beat=beat)
    if pool == "finetune" and (gpus := visible_gpus()):
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[0]
    os.execv(sys.executable, argv)


def _run_per_gpu(profile: PoolProfile, gpus: list[str], loglevel: str) -> None:
    """One finetune worker process per GPU, each pinned with CUDA_VISIBLE_DEVICES, supervised."""
    from switchyard.dev import Child, Supervisor
    from workers.profiles import worker_argv

    state = get_settings().state_dir.resolve()
    supervisor = Supervisor(on_event=click.echo)
    for gpu in gpus:
        argv = worker_argv(profile, nodename=f"finetune-gpu{gpu}-{os.getpid()}@%h", loglevel=loglevel)
        supervisor.add(Child(f"finetune-gpu{gpu}", argv, state / "logs" / f"finetune-gpu{gpu}.log",
                             env={"CUDA_VISIBLE_DEVICES": gpu}))
    try:
        supervisor.run_forever()
    finally:
        supervisor.stop()


@main.command()
@click.option("--loglevel", default="INFO")
def beat(loglevel: str) -> None:
    """Run Celery beat alone (the control pool's schedule: lease reaper and housekeeping)."""
    from workers.profiles import beat_argv

    os.execv(sys.executable, beat_argv(loglevel))


@main.command(name="worker-ping")
@click.argument("target", required=False)
@click.option("--timeout", type=float, default=5.0, show_default=True)
def worker_ping(target: str | None, timeout: float) -> None:
    """Exit 0 if a worker on this host answers a ping through the broker (container and k8s probes).

    TARGET is a node name (``index@host``) or a pool, meaning ``POOL@<this hostname>``; without it,
    any worker whose node name ends in ``@<this hostname>`` counts (e.g. every per-GPU finetune child).
    """
    import socket

    from workers.app import app

    host = socket.gethostname()
    destination = None if not target else [target if "@" in target else f"{target}@{host}"]
    # Celery's broadcast ping: answered by the worker's main process, so a busy pool still replies.
    replies = app.control.ping(destination=destination, timeout=timeout)
    nodes = sorted(name for reply in replies for name in reply
                   if destination is not None or name.endswith(f"@{host}"))
    if not nodes:
        raise click.ClickException(f"no worker answered within {timeout}s ({destination or f'*@{host}'})")
    click.echo(" ".join(nodes))


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    if not settings.api_key_tenants():
        click.echo(f"SWITCHYARD_API_KEYS is unset: the API answers loopback clients only ({host}:{port})",
                   err=True)
    uvicorn.run("switchyard.api:create_app", factory=True, host=host, port=port, log_level="info",
                proxy_headers=False)


@main.command()
def listen() -> None:
    """Consume the trigger stream (switchyard:triggers) and enqueue the jobs it carries."""
    from switchyard.listen import Listener

    listener = Listener()
    click.echo(f"listening on {listener.stream} as {listener.consumer}", err=True)
    listener.run()


@main.command()
@click.argument("job_id")
@click.option("--after", type=int, default=0, help="resume after this event seq")
@click.option("--json", "raw", is_flag=True, help="print raw event JSON lines")
def tail(job_id: str, after: int, raw: bool) -> None:
    """Print a job's events live until it ends (tokens inline, progress as a bar)."""
    from switchyard.tail import tail as run

    end = run(job_id, after_seq=after, raw=raw)
    if end is not None and end.data.get("status") != "succeeded":
        sys.exit(1)


@main.command()
def config() -> None:
    """Print the effective configuration as JSON, secrets masked."""
    click.echo(json.dumps(get_settings().masked(), indent=2, default=str))


@main.command()
@click.argument("task", required=False)
def schema(task: str | None) -> None:
    """Print a task's kwargs as JSON Schema (or list the tasks)."""
    from switchyard import task_catalog

    if task is None:
        for spec in task_catalog.TASKS.values():
            click.echo(f"{spec.name:32} queue={spec.queue:9} {spec.description}")
        return
    click.echo(json.dumps(task_catalog.json_schema(task_catalog.get_spec(task).name), indent=2))


@main.command()
@click.argument("kind")
@click.argument("params", default="{}")
@click.option("--idempotency-key", default=None)
@click.option("--callback-url", default=None)
@click.option("--wait/--no-wait", "follow", default=False, help="follow the job's events to its end")
def submit(kind: str, params: str, idempotency_key: str | None, callback_url: str | None, follow: bool) -> None:
    """Enqueue a job: switchyard submit control.ping '{"seconds": 2}' --wait"""
    from switchyard import client
    from switchyard.errors import InvalidParamsError

    try:
        job = client.enqueue(kind, json.loads(params), idempotency_key, callback_url=callback_url)
    except InvalidParamsError as exc:
        raise click.ClickException(json.dumps(exc.errors, default=str)) from None
    click.echo(job.id)
    if follow:
        from switchyard.tail import tail as run

        run(job.id)


@main.command(name="get")
@click.argument("job_id")
def get_job(job_id: str) -> None:
    """Print a job's ledger row as JSON."""
    from switchyard import client

    click.echo(json.dumps(client.get(job_id).to_dict(), indent=2, default=str))


@main.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job (a running job stops at its next step boundary)."""
    from switchyard import client

    click.echo(client.cancel(job_id).status.value)


@main.command()
def demo() -> None:
    """Start the embedded stack, run the end-to-end demo, stop."""
    from switchyard.demo.run import run_demo

    sys.exit(run_demo())


# Command groups contributed by the pools, mounted when installed.
for _module, _attr in (("switchyard.finetune.cli", "adapters"), ("switchyard.finetune.cli", "models"),
                       ("graphs.cli", "graph"),
                       ("switchyard.evaluation.cli", "eval_cli"),
                       ("switchyard.cache.cli", "cache")):
    if importlib.util.find_spec(_module.rsplit(".", 1)[0]) and importlib.util.find_spec(_module):
        main.add_command(getattr(importlib.import_module(_module), _attr))


if __name__ == "__main__":
    main()
