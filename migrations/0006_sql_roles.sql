-- Least privilege for the agents' SQL tool (issue 8): it runs as `switchyard_sql_reader`, a login role
-- with SELECT on the tenant-filtered views of schema `sql_tool` and nothing else (docs/security-db.md).
--
-- Roles are cluster-wide, the rest of this file is per database: the role steps are written to be
-- re-run by every database of a cluster (IF NOT EXISTS, and a lost CREATE ROLE race is caught, because
-- `switchyard migrate`'s advisory lock is per database). They need CREATEROLE (a superuser in the
-- embedded Postgres); where a DBA created the role beforehand they only check it.

-- 1. The reader role: no superuser, no CREATEDB/CREATEROLE/REPLICATION/BYPASSRLS, member of no role.
DO $$
DECLARE
    reader constant text := 'switchyard_sql_reader';
    bad record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
        BEGIN
            -- LOGIN without a password: it can log in only where pg_hba trusts it (the embedded
            -- server's loopback) until `switchyard migrate` sets SWITCHYARD_SQL_TOOL_PASSWORD.
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION'
                           ' NOBYPASSRLS NOINHERIT CONNECTION LIMIT 64', reader);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database of this cluster created it at the same moment
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader
               AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
        EXECUTE format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', reader);
    END IF;
    -- Whatever a DBA granted it: the reader inherits nothing (pg_read_server_files,
    -- pg_execute_server_program, pg_read_all_data, an application role ...).
    FOR bad IN SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
               JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = reader LOOP
        EXECUTE format('REVOKE %I FROM %I', bad.rolname, reader);
    END LOOP;
END
$$;

-- 2. Session defaults for the role. The tool sets them per connection too; these cover anyone else who
-- logs in as the reader. The read-only, timeout and search_path ones the session could change back,
-- so the tool does not rely on them alone (switchyard/agents/sql_tool.py). track_activities=off can be
-- set only by a superuser, and then not by the session: other reader sessions (other tenants' queries)
-- cannot see its query text in pg_stat_activity.
DO $$
DECLARE
    reader constant text := 'switchyard_sql_reader';
    setting text;
    current_settings text[];
BEGIN
    SELECT coalesce(s.setconfig, '{}') INTO current_settings
    FROM pg_roles r LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
    WHERE r.rolname = reader;
    FOREACH setting IN ARRAY ARRAY['default_transaction_read_only=on', 'statement_timeout=5s',
                                   'idle_in_transaction_session_timeout=10s', 'search_path=sql_tool',
                                   'track_activities=off'] LOOP
        CONTINUE WHEN setting = ANY (current_settings);
        BEGIN
            EXECUTE format('ALTER ROLE %I SET %s TO %L', reader, split_part(setting, '=', 1),
                           split_part(setting, '=', 2));
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'switchyard: cannot set % for % (not a superuser): ask the DBA', setting, reader;
        END;
    END LOOP;
END
$$;

-- 3. Who may read what. Nothing in schema public for the reader: no table, sequence or function
-- privilege of its own (PUBLIC keeps the default USAGE on schema public, which opens no table: no app
-- table grants anything to PUBLIC; tests/security/test_sql_tool.py checks every table).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM switchyard_sql_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM switchyard_sql_reader;
REVOKE ALL ON SCHEMA public FROM switchyard_sql_reader;
-- Before PostgreSQL 15 PUBLIC could CREATE in schema public (CVE-2018-1058); take that away as 15 does,
-- keeping it for the migrating role. Where the migrator does not own the schema this only warns.
DO $$
BEGIN
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    IF NOT has_schema_privilege(current_user, 'public', 'CREATE') THEN
        EXECUTE format('GRANT CREATE ON SCHEMA public TO %I', current_user);
    END IF;
END
$$;

-- Signalling backends of one's own role is allowed to PUBLIC; every SQL-tool session is the same role,
-- so one tenant's query could cancel another's. Only a superuser can change these functions' ACL; the
-- migrating role keeps them.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'pg_catalog'::regnamespace
                AND p.proname IN ('pg_cancel_backend', 'pg_terminate_backend') LOOP
        BEGIN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'switchyard: cannot revoke % from PUBLIC (not a superuser)', fn;
        END;
    END LOOP;
END
$$;

-- 4. Which tenant a reader session serves. Why a table keyed by the backend, and not a setting such as
-- current_setting('switchyard.tenant'): any role can change any custom setting, even inside a SELECT
-- (set_config), so a filter on one is a suggestion. This row is written by the application (the
-- table's owner) for the reader connection's backend right before its query and deleted after; the
-- reader has no privilege on it, and cannot change its own pg_backend_pid(). `backend_start` pins the
-- row to that one backend: a row left behind by a crashed application never serves a later backend
-- that reuses the pid.
CREATE TABLE IF NOT EXISTS sql_tool_sessions (
    backend_pid   integer PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    tenant        text NOT NULL,
    bound_at      timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON sql_tool_sessions FROM PUBLIC;

-- The tenant of the current session, or no row. Views run with their owner's privileges, so the
-- reader reads it only through the sql_tool views below, never directly.
CREATE OR REPLACE VIEW sql_tool_current_tenant AS
SELECT s.tenant
FROM sql_tool_sessions s
WHERE s.backend_pid = pg_backend_pid()
  AND s.backend_start = (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid());
REVOKE ALL ON sql_tool_current_tenant FROM PUBLIC;

-- agent_notes had no tenant: new rows carry the run's tenant (the save_note tool), older ones take
-- their thread's.
ALTER TABLE agent_notes ADD COLUMN IF NOT EXISTS tenant text;

-- 5. The views: what an agent may reasonably ask about its own tenant, and no secrets (no job params,
-- results, errors, callback URLs or leases; no storage paths). Views, not row-level security on the
-- tables, because they also choose the columns. security_barrier: a condition of the caller's query
-- (say a cast that fails and prints the value) is evaluated only on rows that passed the tenant filter.
CREATE SCHEMA IF NOT EXISTS sql_tool;
REVOKE ALL ON SCHEMA sql_tool FROM PUBLIC;

CREATE OR REPLACE VIEW sql_tool.collections WITH (security_barrier) AS
SELECT c.name, g.model AS embedding_model, g.dimension, c.created_at,
       (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS document_count
FROM collections c LEFT JOIN index_generations g ON g.id = c.active_generation
WHERE c.tenant = (SELECT tenant FROM sql_tool_current_tenant);

CREATE OR REPLACE VIEW sql_tool.documents WITH (security_barrier) AS
SELECT c.name AS collection, d.id AS document_id, d.source, d.metadata, d.chunk_count, d.text,
       d.created_at, d.updated_at
FROM documents d JOIN collections c ON c.id = d.collection_id
WHERE c.tenant = (SELECT tenant FROM sql_tool_current_tenant);

-- Chunks of each collection's active generation, without their vectors.
CREATE OR REPLACE VIEW sql_tool.chunks WITH (security_barrier) AS
SELECT c.name AS collection, k.document_id, k.position, k.text, k.metadata
FROM chunks k JOIN collections c ON c.id = k.collection_id AND k.generation_id = c.active_generation
WHERE c.tenant = (SELECT tenant FROM sql_tool_current_tenant);

CREATE OR REPLACE VIEW sql_tool.jobs WITH (security_barrier) AS
SELECT j.id, j.kind, j.status, j.attempts, j.created_at, j.started_at, j.finished_at, j.updated_at
FROM jobs j
WHERE j.tenant = (SELECT tenant FROM sql_tool_current_tenant);

CREATE OR REPLACE VIEW sql_tool.agent_runs WITH (security_barrier) AS
SELECT r.run_id, r.thread_id, r.graph, r.status, r.usage, r.cost_usd, r.created_at, r.started_at,
       r.finished_at
FROM agent_runs r
WHERE r.tenant = (SELECT tenant FROM sql_tool_current_tenant);

CREATE OR REPLACE VIEW sql_tool.agent_notes WITH (security_barrier) AS
SELECT n.id, n.thread_id, n.text, n.created_at
FROM agent_notes n LEFT JOIN agent_threads t ON t.thread_id = n.thread_id
WHERE coalesce(n.tenant, t.tenant) = (SELECT tenant FROM sql_tool_current_tenant);

CREATE OR REPLACE VIEW sql_tool.adapters WITH (security_barrier) AS
SELECT a.name, a.base_model, a.method, a.metrics, a.created_at
FROM adapters a
WHERE a.tenant = (SELECT tenant FROM sql_tool_current_tenant);

GRANT USAGE ON SCHEMA sql_tool TO switchyard_sql_reader;
GRANT SELECT ON sql_tool.collections, sql_tool.documents, sql_tool.chunks, sql_tool.jobs,
                sql_tool.agent_runs, sql_tool.agent_notes, sql_tool.adapters TO switchyard_sql_reader;
