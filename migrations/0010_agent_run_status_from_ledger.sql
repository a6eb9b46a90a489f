-- One lifecycle for every job (issue 10): a run's status is its job's, read from the ledger, instead of
-- a second status machine in agent_runs that the worker had to keep in step. agent_runs keeps what only
-- the run knows: its thread, graph, tenant, strategy, metadata, base checkpoint, usage, when it held the
-- thread, and whether its writes were rolled back.

DROP VIEW sql_tool.agent_runs;  -- it reads agent_runs.status; recreated below from agent_run_states

ALTER TABLE agent_runs DROP COLUMN status;      -- derived from jobs.status (+ result, error): agent_run_states
ALTER TABLE agent_runs DROP COLUMN interrupts;  -- in the job's result
ALTER TABLE agent_runs DROP COLUMN error;       -- the job's error
ALTER TABLE agent_runs ADD COLUMN rolled_back_at timestamptz;  -- its checkpoints were deleted (rollback)
COMMENT ON COLUMN agent_runs.started_at IS 'when the run took its thread';
COMMENT ON COLUMN agent_runs.finished_at IS 'when the run gave its thread back';

-- The run as LangGraph Platform shows it. Its status is the ledger's, in LangGraph's words:
--   job queued/running   → "running" once the run took its thread (started_at), else "pending"
--   job succeeded        → the result's "success" or "interrupted" (paused for a human)
--   job failed           → "rejected" (busy thread, strategy reject), "timeout" (a soft time limit), "error"
--   job cancelled        → "rolled_back" (its writes were deleted) or "cancelled"
--   no job row yet       → "pending" (the API records the run a moment before it records the job)
CREATE VIEW agent_run_states AS
SELECT r.run_id, r.thread_id, r.graph, r.tenant, r.multitask_strategy, r.metadata,
       CASE
           WHEN j.status = 'succeeded' THEN coalesce(j.result ->> 'status', 'success')
           WHEN j.status = 'failed' THEN CASE j.error ->> 'type'
                                             WHEN 'ThreadBusyError' THEN 'rejected'
                                             WHEN 'SoftTimeLimitExceeded' THEN 'timeout'
                                             ELSE 'error' END
           WHEN j.status = 'cancelled' THEN CASE WHEN r.rolled_back_at IS NULL THEN 'cancelled' ELSE 'rolled_back' END
           WHEN r.started_at IS NOT NULL THEN 'running'  -- also while it resumes after a crash
           ELSE 'pending'
       END AS status,
       j.status AS job_status, j.result -> 'interrupts' AS interrupts, j.error,
       r.base_checkpoint_id, r.base_recorded, r.usage, r.cost_usd, r.ttft_ms,
       r.created_at, r.started_at, coalesce(r.finished_at, j.finished_at) AS finished_at, r.rolled_back_at,
       r.updated_at
FROM agent_runs r LEFT JOIN jobs j ON j.id = r.run_id;
REVOKE ALL ON agent_run_states FROM PUBLIC;  -- as every app table: nothing for the SQL tool's reader role

-- The SQL tool's view, as in 0006, with the status from the ledger.
CREATE VIEW sql_tool.agent_runs WITH (security_barrier) AS
SELECT r.run_id, r.thread_id, r.graph, r.status, r.usage, r.cost_usd, r.created_at, r.started_at,
       r.finished_at
FROM agent_run_states r
WHERE r.tenant = (SELECT tenant FROM sql_tool_current_tenant);
GRANT SELECT ON sql_tool.agent_runs TO switchyard_sql_reader;
