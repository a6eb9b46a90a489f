-- The reaper's repair of a lost `end` (RELIABILITY.md): a worker killed between committing a job's
-- final status and publishing its `end` leaves a finished job whose stream never ends. The reaper scans
-- jobs that finished since its last pass (jobs_finished) and looks each one's `end` up (job_events_end).
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX job_events_end ON job_events (job_id) WHERE type = 'end';
