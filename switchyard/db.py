"""Postgres access: one connection pool per process, and the migrations runner.

The pool is keyed by pid because Celery's prefork pool forks after import: a connection must never be
shared between a parent and its children.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from switchyard._singleton import PerProcess
from switchyard.config import get_settings
from switchyard.errors import ConfigurationError

log = logging.getLogger(__name__)

_pools: PerProcess[ConnectionPool] = PerProcess()  # by (url, durable)

MIGRATIONS_TABLE = "switchyard_migrations"
# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK_ID = 0x5717C4_2026


def database_url() -> str:
    url = get_settings().database_url
    if not url:
        raise ConfigurationError(
            "SWITCHYARD_DATABASE_URL is not set (run `switchyard dev`, or `set -a; . .switchyard/dev.env`)"
        )
    return url


def get_pool(url: str | None = None, *, durable: bool = True) -> ConnectionPool:
    url = url or database_url()
    return _pools.get((url, durable), lambda: _new_pool(url, durable))


def _new_pool(url: str, durable: bool) -> ConnectionPool:
    kwargs: dict = {"autocommit": True, "row_factory": dict_row}
    if not durable:
        kwargs["options"] = "-c synchronous_commit=off"
    return ConnectionPool(
        url,
        min_size=1,
        max_size=int(os.environ.get("SWITCHYARD_DB_POOL_SIZE", "20")),
        kwargs=kwargs,
        configure=_configure_connection,
        check=_check_if_idle,
        open=True,
        name=f"switchyard-{os.getpid()}{'' if durable else '-async'}",
    )


def _configure_connection(conn: psycopg.Connection) -> None:
    # pgvector's types, where the extension exists (it does after `switchyard migrate`).
    try:
        from pgvector.psycopg import register_vector

        register_vector(conn)
    except (psycopg.ProgrammingError, ImportError):
        pass


# Reconnection after a Postgres restart or failover: psycopg_pool replaces a connection that fails its
# ``check`` (and reconnects with backoff, ``reconnect_timeout``). Its own ``check_connection`` costs a
# round trip per checkout; we only pay it for a connection that sat idle in the pool for a while (a busy
# one has just proved itself). Whatever slips through (a restart inside that window) fails one statement
# with OperationalError, and the pool drops the broken connection; the runner's ledger writes retry.
# The time a connection was last used is noted by ``connection()`` as its block ends, not by the pool's
# ``reset`` callback: with a ``reset`` psycopg_pool hands every returned connection to its worker thread,
# a thread hand-off (and a connection not yet back for the next caller) on every statement. A connection
# used outside ``connection()`` is never noted, so it is checked at its next checkout: safe, rare.
CHECK_IDLE_AFTER_S = 1.0
_returned_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _check_if_idle(conn: psycopg.Connection) -> None:
    returned = _returned_at.get(conn)
    if returned is None or time.monotonic() - returned > CHECK_IDLE_AFTER_S:
        ConnectionPool.check_connection(conn)


@contextmanager
def connection(*, durable: bool = True) -> Iterator[psycopg.Connection]:
    """A pooled autocommit connection; use ``with conn.transaction():`` for several statements.

    ``durable=False`` commits without waiting for the WAL flush (``synchronous_commit=off``): for
    writes that are safe to lose in a Postgres crash because something else re-creates them (lease
    renewals, the claim, the dispatch mark, the Postgres copy of events that Redis also holds).
    """
    with get_pool(durable=durable).connection() as conn:
        try:
            yield conn
        finally:
            _returned_at[conn] = time.monotonic()


@contextmanager
def pipelined_transaction(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """One transaction on ``conn`` whose statements go out together: BEGIN rides the first batch and COMMIT
    the last, one round trip when nothing in the block reads a result (psycopg's ``transaction()`` syncs
    after BEGIN and again at the end). Reading a result sends what is queued. A failure rolls the block
    back, if the connection still stands, and is raised."""
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
    except BaseException:
        if not conn.broken:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")  # the aborted block a failed statement left
        raise


def close_pools() -> None:
    """Close this process's pools (tests, and a forked child discarding its parent's)."""
    _pools.clear(ConnectionPool.close)  # those inherited from a parent are dropped, not closed


# --- migrations -------------------------------------------------------------------------------------

def migration_files() -> list[tuple[str, str]]:
    """``(name, sql)`` of every ``migrations/NNNN_name.sql``, in order."""
    folder = _migrations_dir()
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql") and p.name[:4].isdigit())
    return [(p.name, p.read_text()) for p in files]


def _migrations_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "migrations"
    if here.is_dir():
        return here
    return Path(str(resources.files("switchyard") / "migrations"))


def migrate(url: str | None = None) -> list[str]:
    """Apply pending migrations in order; returns the names applied.

    Safe when several processes start at once: they serialize on an advisory lock, and each file is
    applied in its own transaction together with its row in the migrations table.
    """
    url = url or database_url()
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        # Poll with try-lock rather than block in pg_advisory_lock: a blocked statement holds a snapshot,
        # and LangGraph's setup() runs CREATE INDEX CONCURRENTLY, which waits for every snapshot to go
        # away — the holder would wait for the waiters forever.
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_ID,)).fetchone()[0]:
            time.sleep(0.2)
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
            for name, sql in migration_files():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name) VALUES (%s)", (name,))
                log.info("applied migration %s", name)
                applied.append(name)
            # Hooks run under the same lock: LangGraph's setup() is not safe to run concurrently.
            for module in MIGRATION_HOOK_MODULES:
                if importlib.util.find_spec(module) is not None:
                    importlib.import_module(module)  # registers its @on_migrate hooks
            for hook in _post_migrate_hooks:
                hook(url)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return applied


# Modules whose @on_migrate hooks `switchyard migrate` runs after the SQL files (never at import).
MIGRATION_HOOK_MODULES = ["switchyard.agents.checkpointer", "switchyard.agents.sql_tool"]
_post_migrate_hooks: list = []


def on_migrate(hook):
    """Register ``hook(url)`` to run after the SQL migrations (LangGraph's ``setup()``, for example)."""
    _post_migrate_hooks.append(hook)
    return hook
