"""The agents' SQL tool, attacked as a hostile tenant's agent would (issue 8, "least privilege").

Two tenants' rows are seeded as the application; every attack runs through the tool as the agent
``globex`` and through a raw connection as ``switchyard_sql_reader`` (someone holding the reader's
credentials, without the tool's wrapping), against the real embedded Postgres of the ``stack``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from switchyard.agents.sql_tool import READER_ROLE, SqlToolSettings, reader_url

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
ACME, GLOBEX = f"acme-{RUN}", f"globex-{RUN}"
SECRET = f"sk-acme-secret-{RUN}"  # in an acme job's params and an acme document
VIEWS = ("collections", "documents", "chunks", "jobs", "agent_runs", "agent_notes", "adapters")
APP_TABLES = ["jobs", "job_events", "collections", "documents", "chunks", "agent_threads", "agent_runs",
              "agent_notes", "adapters", "finetune_files", "sql_tool_sessions", "sql_tool_current_tenant",
              "switchyard_migrations", "checkpoints"]


def seed(conn: psycopg.Connection, tenant: str, secret: str) -> None:
    """One row per view for ``tenant``, each naming the tenant (and ``secret`` where a secret could hide)."""
    conn.execute("INSERT INTO jobs (id, kind, tenant, params) VALUES (%s, 'switchyard.agent.run', %s, %s)",
                 (f"job-{tenant}", tenant, json.dumps({"model": {"api_key": secret}})))
    coll = conn.execute("INSERT INTO collections (tenant, name) VALUES (%s, %s) RETURNING id",
                        (tenant, f"coll-{tenant}")).fetchone()[0]
    gen = conn.execute("INSERT INTO index_generations (collection_id, model, dimension, status)"
                       " VALUES (%s, 'm', 3, 'active') RETURNING id", (coll,)).fetchone()[0]
    conn.execute("UPDATE collections SET active_generation = %s WHERE id = %s", (gen, coll))
    conn.execute("INSERT INTO documents (collection_id, id, source, content_hash, text, chunk_count)"
                 " VALUES (%s, %s, 'memo.md', 'h', %s, 1)", (coll, f"doc-{tenant}", f"memo of {tenant}: {secret}"))
    conn.execute("INSERT INTO chunks (generation_id, collection_id, document_id, chunk_hash, doc_hash, position,"
                 " text, embedding) VALUES (%s, %s, %s, 'c', 'h', 0, %s, '[1,2,3]')",
                 (gen, coll, f"doc-{tenant}", f"chunk of {tenant}: {secret}"))
    conn.execute("INSERT INTO agent_threads (thread_id, tenant) VALUES (%s, %s)", (f"thread-{tenant}", tenant))
    conn.execute("INSERT INTO agent_runs (run_id, thread_id, graph, tenant) VALUES (%s, %s, 'rag_agent', %s)",
                 (f"run-{tenant}", f"thread-{tenant}", tenant))
    # One note with its own tenant, one older note (no tenant column value) that takes its thread's.
    conn.execute("INSERT INTO agent_notes (thread_id, text, tenant) VALUES (%s, %s, %s)",
                 (f"thread-{tenant}", f"note of {tenant}", tenant))
    conn.execute("INSERT INTO agent_notes (thread_id, text) VALUES (%s, %s)",
                 (f"thread-{tenant}", f"old note of {tenant}"))
    conn.execute("INSERT INTO adapters (name, tenant, base_model, base_path, method, url)"
                 " VALUES (%s, %s, 'tiny', '/p', 'lora', '/a')", (f"adapter-{tenant}", tenant))


@pytest.fixture(scope="module")
def app_db(stack):
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        seed(conn, ACME, SECRET)
        seed(conn, GLOBEX, f"sk-globex-{RUN}")
        yield conn


@pytest.fixture(scope="module")
def sql(app_db, stack):
    """``sql(query, tenant=GLOBEX, **limits)`` → the tool's answer for a run of that tenant."""
    from graphs.tools import make_sql_tool

    def run(query: str, tenant: str = GLOBEX, **limits) -> str:
        return make_sql_tool({"switchyard": stack.database_url}, tenant=tenant, **limits).invoke({"query": query})

    return run


@pytest.fixture
def reader(app_db, stack):
    """A raw connection as the reader role, as someone holding its credentials would open it, with the
    role's read-only default switched off: what it cannot do, its privileges forbid."""
    with psycopg.connect(reader_url(stack.database_url, SqlToolSettings()), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        yield conn


def rows(answer: str) -> list[dict]:
    assert not answer.startswith("error"), answer
    return json.loads(answer)["rows"]


# --- the role ---------------------------------------------------------------------------------------

def test_the_reader_role_has_no_privilege_beyond_login(app_db):
    role = app_db.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin,"
                          " rolconfig FROM pg_roles WHERE rolname = %s", (READER_ROLE,)).fetchone()
    assert role[:6] == (False, False, False, False, False, True)
    assert {"default_transaction_read_only=on", "search_path=sql_tool", "track_activities=off"} <= set(role[6])
    assert app_db.execute("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
                          " WHERE r.rolname = %s", (READER_ROLE,)).fetchone()[0] == 0
    for predefined in ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
                       "pg_read_all_data", "pg_write_all_data", "pg_signal_backend"):
        assert not app_db.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (READER_ROLE, predefined)).fetchone()[0]


def test_the_reader_may_select_the_sql_tool_views_and_nothing_else(app_db):
    readable = app_db.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        "   AND (has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"
        "        OR has_any_column_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))",
        (READER_ROLE, READER_ROLE)).fetchall()
    assert sorted(r[0] for r in readable) == sorted(f"sql_tool.{view}" for view in VIEWS)
    for schema in ("public", "sql_tool"):
        assert not app_db.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", (READER_ROLE, schema)).fetchone()[0]
    assert not app_db.execute("SELECT has_database_privilege(%s, current_database(), 'CREATE')",
                              (READER_ROLE,)).fetchone()[0]
    for name in ("sql_tool.collections", "sql_tool.jobs"):  # checked as the view's owner, not the reader
        assert app_db.execute("SELECT %s::regclass::oid IN (SELECT oid FROM pg_class WHERE 'security_barrier=true'"
                              " = ANY(reloptions))", (name,)).fetchone()[0]


# --- writing, programs, server files ----------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "INSERT INTO public.agent_notes (thread_id, text) VALUES ('x', 'y')",
    "UPDATE public.jobs SET status = 'failed'",
    "DELETE FROM public.jobs",
    "CREATE TABLE public.pwned (x int)",
    "CREATE TEMP TABLE pwned (x int)",
    "WITH gone AS (DELETE FROM public.jobs RETURNING id) SELECT * FROM gone",
    "SELECT nextval('public.agent_notes_id_seq')",
    "COMMIT; DELETE FROM public.jobs",
])
def test_the_tool_cannot_write(sql, reader, app_db, statement):
    before = app_db.execute("SELECT count(*) FROM jobs WHERE tenant IN (%s, %s)", (ACME, GLOBEX)).fetchone()[0]
    assert sql(statement).startswith("error")
    if "TEMP" not in statement:  # PUBLIC may create temp tables: private to the session, gone with it
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor can the role, outside the tool
            reader.execute(statement)
    assert app_db.execute("SELECT count(*) FROM jobs WHERE tenant IN (%s, %s)", (ACME, GLOBEX)).fetchone()[0] == before
    assert app_db.execute("SELECT to_regclass('public.pwned')").fetchone()[0] is None


def test_the_tool_cannot_run_programs_or_touch_server_files(sql, reader, tmp_path):
    target = Path("/tmp") / f"switchyard-pwned-{RUN}"
    attacks = [
        f"COPY (SELECT 1) TO PROGRAM 'touch {target}'",
        f"COPY (SELECT 1) TO '{target}'",
        "COPY public.jobs FROM '/etc/passwd'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT pg_ls_dir('.')",
        "SELECT pg_stat_file('/etc/passwd')",
        "SELECT lo_import('/etc/passwd')",
        f"SELECT lo_export(0, '{target}')",
    ]
    for attack in attacks:
        assert sql(attack).startswith("error"), attack
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(attack)
    assert not target.exists()


# --- tables and tenants ------------------------------------------------------------------------------

@pytest.mark.parametrize("table", APP_TABLES)
def test_app_tables_are_not_readable(sql, reader, table):
    answer = sql(f"SELECT * FROM public.{table}")
    assert answer.startswith("error: InsufficientPrivilege"), answer
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(f"SELECT * FROM public.{table}")


def test_each_tenant_sees_its_own_rows_and_no_secrets(sql):
    for tenant, other in ((ACME, GLOBEX), (GLOBEX, ACME)):
        seen = {view: rows(sql(f"SELECT * FROM {view}", tenant=tenant)) for view in VIEWS}
        text = json.dumps(seen)
        assert tenant in text and other not in text
        assert [j["id"] for j in seen["jobs"]] == [f"job-{tenant}"]
        assert "params" not in seen["jobs"][0] and "sk-" not in json.dumps(seen["jobs"])
        assert sorted(n["text"] for n in seen["agent_notes"]) == [f"note of {tenant}", f"old note of {tenant}"]
        assert {c["collection"] for c in seen["chunks"]} == {f"coll-{tenant}"}
    assert rows(sql("SELECT * FROM jobs", tenant=f"nobody-{RUN}")) == []


@pytest.mark.parametrize("escape", [
    f"SELECT set_config('switchyard.tenant', '{ACME}', false), * FROM jobs",
    f"SELECT * FROM jobs WHERE set_config('switchyard.tenant', '{ACME}', false) IS NOT NULL",
    "SELECT set_config('search_path', 'public', false), * FROM jobs",
    f"SELECT * FROM sql_tool.jobs UNION ALL SELECT * FROM sql_tool.jobs WHERE id = 'job-{ACME}'",
])
def test_setting_tricks_do_not_reach_another_tenant(sql, escape):
    assert [r["id"] for r in rows(sql(escape))] == [f"job-{GLOBEX}"]


@pytest.mark.parametrize("escape", [
    "SET ROLE postgres", "RESET ROLE", "SET SESSION AUTHORIZATION postgres", "SET search_path = public",
    "SELECT 1; SELECT * FROM public.jobs", "SELECT 1; SET ROLE postgres",
    "SELECT pg_cancel_backend(pg_backend_pid())", "SELECT pg_terminate_backend(pg_backend_pid())",
])
def test_role_changes_and_second_statements_are_refused(sql, escape):
    assert sql(escape).startswith("error"), escape


def test_a_failing_cast_does_not_print_another_tenants_text(sql):
    """security_barrier: the caller's condition runs only on rows that passed the tenant filter."""
    answer = sql("SELECT document_id FROM documents WHERE text::int = 1 OR source IS NULL")
    assert answer.startswith("error") and GLOBEX in answer and SECRET not in answer, answer


def test_a_reader_session_the_application_did_not_bind_sees_nothing(reader, app_db):
    assert reader.execute("SELECT count(*) FROM sql_tool.jobs").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # it cannot bind itself to a tenant
        reader.execute("INSERT INTO public.sql_tool_sessions VALUES (pg_backend_pid(), now(), %s)", (ACME,))
    # A row left for its pid by an earlier backend (a crashed application) does not serve it.
    pid = reader.execute("SELECT pg_backend_pid()").fetchone()[0]
    app_db.execute("INSERT INTO sql_tool_sessions (backend_pid, backend_start, tenant)"
                   " VALUES (%s, now() - interval '1 hour', %s)", (pid, ACME))
    try:
        assert reader.execute("SELECT count(*) FROM sql_tool.jobs").fetchone()[0] == 0
    finally:
        app_db.execute("DELETE FROM sql_tool_sessions WHERE backend_pid = %s", (pid,))


def test_sessions_do_not_see_each_others_queries(sql, reader):
    """Every tenant's session is the same role: pg_stat_activity must not show one the other's SQL."""
    marker = f"acme_query_{RUN}"
    slow = threading.Thread(target=lambda: reader.execute(f"SELECT pg_sleep(2), '{marker}'"))
    slow.start()
    time.sleep(0.5)  # let it start: not even a superuser can see that it has (track_activities=off)
    try:
        activity = sql("SELECT pid, query FROM pg_catalog.pg_stat_activity")
    finally:
        slow.join()
    assert not activity.startswith("error") and marker not in activity, activity


# --- limits ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["SELECT pg_sleep(10)",
                                   "SELECT set_config('statement_timeout', '0', false), pg_sleep(10)"])
def test_the_statement_timeout_stops_a_long_query(sql, query):
    answer = sql(query, timeout_ms=300)
    assert answer.startswith("error: QueryCanceled"), answer


def test_rows_are_limited_and_cells_cut(sql):
    answer = json.loads(sql("SELECT g, repeat('x', 5000) AS big FROM generate_series(1, 100000) g", max_rows=5))
    assert [r["g"] for r in answer["rows"]] == [1, 2, 3, 4, 5] and answer["truncated"]
    assert len(answer["rows"][0]["big"]) < 5000


def test_a_privileged_role_in_configuration_is_refused(stack, app_db):
    """Another configured database is used as given, but never as a superuser."""
    from graphs.tools import make_sql_tool

    address = app_db.execute("SELECT inet_server_port()").fetchone()[0]
    other = f"postgresql://postgres@localhost:{address}/postgres"  # same server, not recognised as ours
    tool = make_sql_tool({"other": other}, tenant=GLOBEX)
    assert "refuses" in tool.invoke({"query": "SELECT 1"})


def test_the_reader_url_carries_the_readers_credentials_only():
    app = "postgresql://owner:app-secret@db.internal:6543/switchyard?sslmode=require"
    url = reader_url(app, SqlToolSettings())
    assert "app-secret" not in url and f"user={READER_ROLE}" in url and "sslmode=require" in url
    assert "password=reader-pw" in reader_url(app, SqlToolSettings(password="reader-pw"))
    assert reader_url(app, SqlToolSettings(url="postgresql://r@x/y")) == "postgresql://r@x/y"


def test_an_agent_run_queries_as_its_own_tenant(stack, app_db):
    """The tenant flows from the run (load_graph) through the graph to the tool."""
    from langchain_core.messages import ToolMessage

    from switchyard.agents.runs import load_graph

    model = {"provider": "scripted", "responses": [
        {"content": "", "tool_calls": [{"name": "sql_query", "args": {"query": "SELECT id FROM jobs"}}]},
        "done",
    ]}
    graph = load_graph("rag_agent", model=model, tenant=GLOBEX)
    state = graph.invoke({"messages": [("user", "my jobs?")]}, {"configurable": {"thread_id": f"sql-{RUN}"}})
    answer = next(m.content for m in state["messages"] if isinstance(m, ToolMessage))
    assert rows(answer) == [{"id": f"job-{GLOBEX}"}]


def test_a_kept_graph_is_never_another_tenants(stack, app_db, monkeypatch):
    """Graphs on the process's defaults are built once and kept (switchyard/agents/compiled.py): the same
    configured model for two tenants in one process gives each its own graph, whose SQL tool sees only
    that tenant's rows, in either order and on a second run."""
    from langchain_core.messages import ToolMessage

    from switchyard.agents.runs import load_graph
    from switchyard.llm.factory import get_llm_settings

    script = {"provider": "scripted", "responses": [
        {"content": "", "tool_calls": [{"name": "sql_query", "args": {"query": "SELECT id FROM jobs"}}]},
        "done",
    ]}
    monkeypatch.setenv("SWITCHYARD_LLM_MODELS", json.dumps({"sql-script": script}))
    get_llm_settings.cache_clear()
    try:
        graphs = {}
        for turn, tenant in enumerate([ACME, GLOBEX, ACME, GLOBEX]):
            graph = load_graph("rag_agent", model="sql-script", tenant=tenant)
            assert graphs.setdefault(tenant, graph) is graph  # kept, per tenant
            state = graph.invoke({"messages": [("user", "my jobs?")]},
                                 {"configurable": {"thread_id": f"sql-kept-{RUN}-{turn}"}})
            answer = next(m.content for m in state["messages"] if isinstance(m, ToolMessage))
            assert rows(answer) == [{"id": f"job-{tenant}"}]
        assert graphs[ACME] is not graphs[GLOBEX]
    finally:
        monkeypatch.delenv("SWITCHYARD_LLM_MODELS")
        get_llm_settings.cache_clear()


def test_migrating_another_database_of_the_cluster_reuses_and_repairs_the_role(stack, app_db):
    """Roles are cluster-wide: a second database's migrations find the role, take back what a DBA granted
    it by mistake, and give it that database's views only."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from switchyard.db import migrate

    name = f"second_{RUN}"
    app_db.execute(f"GRANT pg_read_server_files TO {READER_ROLE}")
    app_db.execute(f"ALTER ROLE {READER_ROLE} CREATEDB")
    app_db.execute(f"CREATE DATABASE {name}")
    try:
        second = make_conninfo("", **{**conninfo_to_dict(stack.database_url), "dbname": name})
        assert "0006_sql_roles.sql" in migrate(second)
        assert not app_db.execute("SELECT rolcreatedb OR pg_has_role(%s, 'pg_read_server_files', 'MEMBER')"
                                  " FROM pg_roles WHERE rolname = %s", (READER_ROLE, READER_ROLE)).fetchone()[0]
        with psycopg.connect(second, autocommit=True) as conn:
            assert conn.execute("SELECT has_table_privilege(%s, 'sql_tool.jobs', 'SELECT')",
                                (READER_ROLE,)).fetchone()[0]
    finally:
        app_db.execute(f"REVOKE pg_read_server_files FROM {READER_ROLE}")
        app_db.execute(f"ALTER ROLE {READER_ROLE} NOCREATEDB")
        app_db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_migrate_sets_the_configured_reader_password_hashed(stack, app_db, monkeypatch):
    from switchyard.agents.sql_tool import set_reader_password

    monkeypatch.setenv("SWITCHYARD_SQL_TOOL_PASSWORD", f"pw-{RUN}")
    try:
        set_reader_password(stack.database_url)
        stored = app_db.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (READER_ROLE,)).fetchone()[0]
        assert stored.startswith("SCRAM-SHA-256$") and f"pw-{RUN}" not in stored
    finally:
        app_db.execute(f"ALTER ROLE {READER_ROLE} PASSWORD NULL")


def test_production_roles_on_a_fresh_cluster(tmp_path, monkeypatch):
    """As production would run it: a DBA makes `switchyard_app` (no superuser, CREATEROLE) the database's
    owner and installs pgvector; migrations and the application run as switchyard_app, and create the
    reader themselves. The steps only a superuser may do are skipped with a notice."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from switchyard.config import reload_settings
    from switchyard.db import close_pools, migrate
    from switchyard.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path / "pg")
    admin_url = server.start()
    try:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("CREATE ROLE switchyard_app LOGIN NOSUPERUSER NOCREATEDB CREATEROLE")
            admin.execute("CREATE DATABASE switchyard OWNER switchyard_app")
        with psycopg.connect(make_conninfo(admin_url, dbname="switchyard"), autocommit=True) as admin:
            admin.execute("CREATE EXTENSION vector")
        app_url = make_conninfo("", **{**conninfo_to_dict(admin_url), "user": "switchyard_app", "dbname": "switchyard"})
        assert "0006_sql_roles.sql" in migrate(app_url)
        monkeypatch.setenv("SWITCHYARD_DATABASE_URL", app_url)
        reload_settings()
        with psycopg.connect(app_url, autocommit=True) as app:
            role = app.execute("SELECT rolsuper, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
                               (READER_ROLE,)).fetchone()
            assert role == (False, False, True)
            seed(app, ACME, SECRET)
            seed(app, GLOBEX, f"sk-globex-{RUN}")
        from graphs.tools import make_sql_tool

        tool = make_sql_tool({"switchyard": app_url}, tenant=GLOBEX)
        assert [r["id"] for r in rows(tool.invoke({"query": "SELECT id FROM jobs"}))] == [f"job-{GLOBEX}"]
        assert tool.invoke({"query": "SELECT * FROM public.jobs"}).startswith("error: InsufficientPrivilege")
    finally:
        close_pools()
        monkeypatch.undo()
        reload_settings()
        server.stop()
