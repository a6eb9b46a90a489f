"""The agents' read-only SQL tool: least privilege enforced by Postgres, not by reading the SQL.

A query against switchyard's own database runs as ``switchyard_sql_reader`` (migrations/0006_sql_roles.sql):
no superuser, no server files or programs, SELECT on the views of schema ``sql_tool`` only. The views
show the rows of one tenant: right before the query the application records, in a table the reader
cannot touch, that the reader's backend serves this run's tenant, and deletes the record after.

On every connection, own database or a configured other one:
- ``DECLARE CURSOR`` over the extended protocol: one statement, and only a SELECT or VALUES;
- a read-only transaction, rolled back; ``statement_timeout``, plus a cancel from this side that the
  query cannot switch off with ``set_config``;
- rows fetched from the server cursor up to the row limit (a huge result is never transferred);
- refusal to run as a superuser or as a role that may read or write server files or run programs.

Other databases in ``SWITCHYARD_AGENT_SQL_DATABASES`` are not tenant-filtered: configure only shared
data there, with a read-only role (docs/security-db.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchyard.db import on_migrate

log = logging.getLogger("switchyard.agents.sql_tool")

READER_ROLE = "switchyard_sql_reader"
VIEWS_SCHEMA = "sql_tool"
# How much later than statement_timeout this side cancels a query that switched its timeout off.
CANCEL_GRACE_S = 1.0
# A cell's text is cut here: the result goes into a model's context.
MAX_CELL_CHARS = 2000


class SqlToolSettings(BaseSettings):
    """``SWITCHYARD_SQL_TOOL_*``: how the tool reaches switchyard's own database as the reader."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_SQL_TOOL_", extra="ignore")

    # The reader's full URL; unset: SWITCHYARD_DATABASE_URL with the reader's user and password.
    url: str | None = None
    # The reader's password; unset: none (the embedded Postgres trusts loopback). `switchyard migrate`
    # sets it on the role when it may.
    password: SecretStr | None = None
    timeout_ms: int = 5000
    max_rows: int = 50


def get_sql_tool_settings() -> SqlToolSettings:
    return SqlToolSettings()


@dataclass(frozen=True)
class SqlTarget:
    """A database the tool may query: the URL it connects with, and whether rows are the tenant's."""

    name: str
    url: str
    tenant_bound: bool


def _address(url: str) -> tuple[str, str, str]:
    info = conninfo_to_dict(url)
    return (str(info.get("host") or info.get("hostaddr") or ""), str(info.get("port") or "5432"),
            str(info.get("dbname") or info.get("user") or ""))


def reader_url(app_url: str, settings: SqlToolSettings | None = None) -> str:
    """The reader's connection string: the configured one, or the application's with its user and
    password swapped for the reader's (the application's password never travels with it)."""
    settings = settings or get_sql_tool_settings()
    if settings.url:
        return settings.url
    info = conninfo_to_dict(app_url)
    info.setdefault("dbname", info.get("user") or "")  # libpq's default dbname is the user's name
    info.pop("password", None)
    info.pop("passfile", None)
    info["user"] = READER_ROLE
    if settings.password:
        info["password"] = settings.password.get_secret_value()
    return make_conninfo("", **info)


def resolve_targets(databases: Mapping[str, str], app_url: str | None = None) -> dict[str, SqlTarget]:
    """Configured ``{name: url}`` → targets. A URL that points at switchyard's own database (same host,
    port and database, whatever its user) is always served as the reader, tenant-filtered."""
    if app_url is None:
        from switchyard.config import get_settings

        app_url = get_settings().database_url
    own = _address(app_url) if app_url else None
    targets = {}
    for name, url in databases.items():
        if own is not None and _address(url) == own:
            targets[name] = SqlTarget(name, reader_url(app_url), tenant_bound=True)
        else:
            targets[name] = SqlTarget(name, url, tenant_bound=False)
    return targets


# --- SQL ----------------------------------------------------------------------------------------------

# The backend's identity and whether its role is one the tool must never run as.
WHOAMI = """
SELECT pg_backend_pid() AS pid,
       (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS backend_start,
       r.rolsuper OR EXISTS (
           SELECT 1 FROM pg_roles d
           WHERE d.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program',
                               'pg_write_all_data')
             AND pg_has_role(current_user, d.oid, 'MEMBER')) AS privileged
FROM pg_roles r WHERE r.rolname = current_user
"""

BIND_SESSION = """
INSERT INTO sql_tool_sessions (backend_pid, backend_start, tenant) VALUES (%s, %s, %s)
ON CONFLICT (backend_pid) DO UPDATE
SET backend_start = EXCLUDED.backend_start, tenant = EXCLUDED.tenant, bound_at = now()
"""

UNBIND_SESSION = "DELETE FROM sql_tool_sessions WHERE backend_pid = %s AND backend_start = %s"


@contextmanager
def _bound_to(tenant: str, pid: int, backend_start: Any) -> Iterator[None]:
    """The reader backend ``pid`` serves ``tenant`` for the duration (written as the application)."""
    from switchyard.db import connection

    with connection() as app:
        app.execute(BIND_SESSION, (pid, backend_start, tenant))
    try:
        yield
    finally:
        with connection() as app:
            app.execute(UNBIND_SESSION, (pid, backend_start))


def _cell(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + "…"
    return value


def _options(target: SqlTarget, timeout_ms: int) -> str:
    options = [f"statement_timeout={int(timeout_ms)}", "default_transaction_read_only=on",
               f"idle_in_transaction_session_timeout={int(timeout_ms) * 2}"]
    if target.tenant_bound:
        options.append(f"search_path={VIEWS_SCHEMA}")  # `SELECT * FROM jobs` means the view
    return " ".join(f"-c {o}" for o in options)


def run_query(target: SqlTarget, query: str, *, tenant: str, max_rows: int = 50, timeout_ms: int = 5000) -> str:
    """Run one read-only query; JSON ``{"rows": [...], "truncated": bool}`` or ``"error: ..."``."""
    try:
        with psycopg.connect(target.url, options=_options(target, timeout_ms), connect_timeout=10,
                             autocommit=False) as conn:
            who = conn.execute(WHOAMI).fetchone()
            conn.rollback()
            if who is None or who[2]:
                log.error("SQL tool refused database %r: its role is privileged", target.name)
                return (f"error: database {target.name!r} is configured with a privileged role; "
                        "the SQL tool refuses to use it")
            pid, backend_start = who[0], who[1]
            bound = _bound_to(tenant, pid, backend_start) if target.tenant_bound else nullcontext()
            with bound:
                rows, truncated = _fetch(conn, query, max_rows, timeout_ms)
    except psycopg.Error as exc:
        return f"error: {type(exc).__name__}: {str(exc).strip()}"
    return json.dumps({"rows": rows, "truncated": truncated}, default=str)


def _fetch(conn: psycopg.Connection, query: str, max_rows: int, timeout_ms: int) -> tuple[list[dict], bool]:
    # statement_timeout is the query's to change (set_config inside the SELECT); this timer is not.
    watchdog = threading.Timer(timeout_ms / 1000 + CANCEL_GRACE_S, conn.cancel_safe)
    watchdog.daemon = True
    watchdog.start()
    try:
        with conn.cursor(name="sql_tool_query") as cur:  # one query per connection: one name will do
            cur.execute(query)
            cols = [c.name for c in cur.description or []]
            fetched = cur.fetchmany(max_rows + 1)
    finally:
        watchdog.cancel()
        conn.rollback()
    rows = [{c: _cell(v) for c, v in zip(cols, row, strict=True)} for row in fetched[:max_rows]]
    return rows, len(fetched) > max_rows


@on_migrate
def set_reader_password(url: str) -> None:
    """Give the reader role SWITCHYARD_SQL_TOOL_PASSWORD, where configured and the migrator may. libpq
    hashes it (SCRAM) on this side, so the statement, and any server log of it, holds no password."""
    settings = get_sql_tool_settings()
    if not settings.password:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        secret = conn.pgconn.encrypt_password(settings.password.get_secret_value().encode(), READER_ROLE.encode())
        try:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(READER_ROLE), sql.Literal(secret.decode())))
        except psycopg.errors.InsufficientPrivilege:
            log.warning("cannot set the password of %s (needs CREATEROLE): ask the DBA", READER_ROLE)
