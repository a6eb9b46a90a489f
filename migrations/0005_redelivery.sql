-- Faults (RELIABILITY.md): the reaper re-sends a queued job that nobody claimed in time (its message
-- may have died with the broker), and infrastructure faults are retried a bounded number of times.
ALTER TABLE jobs ADD COLUMN redispatches integer NOT NULL DEFAULT 0;   -- re-sends by the reaper
ALTER TABLE jobs ADD COLUMN infra_retries integer NOT NULL DEFAULT 0;  -- releases after a lost connection

-- The reaper's scan for queued jobs whose last send is older than the re-send delay.
CREATE INDEX jobs_queued_dispatched ON jobs (dispatched_at) WHERE status = 'queued';
