-- Agent pool: threads and runs (LangGraph Platform's shapes), and the demo side-effect table.
-- LangGraph's own checkpoint tables are created by PostgresSaver.setup() (switchyard.agents.checkpoints).

CREATE TABLE agent_threads (
    thread_id  text PRIMARY KEY,
    tenant     text NOT NULL DEFAULT 'default',
    graph      text,
    status     text NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    metadata   jsonb NOT NULL DEFAULT '{}',
    active_run text,                                  -- the one run allowed on the thread at a time
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_threads_updated ON agent_threads (updated_at);

-- One row per run; run_id = the job id.
CREATE TABLE agent_runs (
    run_id             text PRIMARY KEY,
    thread_id          text NOT NULL,
    graph              text NOT NULL,
    tenant             text NOT NULL DEFAULT 'default',
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'success', 'error', 'interrupted',
                                         'cancelled', 'rejected', 'rolled_back')),
    multitask_strategy text NOT NULL DEFAULT 'enqueue',
    metadata           jsonb NOT NULL DEFAULT '{}',
    base_checkpoint_id text,                          -- the thread's head when the run began (rollback, resume)
    base_recorded      boolean NOT NULL DEFAULT false, -- base_checkpoint_id is set (it is NULL on a new thread)
    usage              jsonb,
    cost_usd           double precision,
    ttft_ms            double precision,
    interrupts         jsonb,
    error              jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_runs_thread ON agent_runs (thread_id, created_at);

-- Written by the `save_note` tool: the side effect that needs human approval.
CREATE TABLE agent_notes (
    id         bigserial PRIMARY KEY,
    thread_id  text NOT NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
