-- The job ledger: the source of truth for every job, however it arrived.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE jobs (
    id               text PRIMARY KEY,               -- = the Celery task id
    kind             text NOT NULL,                  -- the task name, e.g. switchyard.control.ping
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
    params           jsonb NOT NULL DEFAULT '{}',
    result           jsonb,
    error            jsonb,
    attempts         integer NOT NULL DEFAULT 0,
    producer         text NOT NULL DEFAULT 'default',
    tenant           text NOT NULL DEFAULT 'default',
    idempotency_key  text,
    callback_url     text,
    cancel_requested boolean NOT NULL DEFAULT false,
    lease_owner      text,
    lease_expires_at timestamptz,
    worker           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    dispatched_at    timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (producer, idempotency_key)
);

CREATE INDEX jobs_expired_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_undispatched ON jobs (created_at) WHERE status = 'queued' AND dispatched_at IS NULL;
CREATE INDEX jobs_kind_status ON jobs (kind, status);
CREATE INDEX jobs_created ON jobs (created_at DESC);

-- The durable part of each job's event log (status, metrics, messages, end). Tokens and other
-- high-rate events live only in the Redis replay stream.
CREATE TABLE job_events (
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    integer NOT NULL,
    type   text NOT NULL,
    data   jsonb NOT NULL DEFAULT '{}',
    ts     double precision NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Outbound webhook deliveries (a job's callback_url), one row per job.
CREATE TABLE callback_deliveries (
    job_id       text PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url          text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    response_code integer,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
