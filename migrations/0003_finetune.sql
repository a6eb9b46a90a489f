-- Fine-tune pool: uploaded files, base models, checkpoints and the adapter registry.
-- A fine-tuning job itself is a row in `jobs` (kind switchyard.finetune.train); its OpenAI id is
-- "ftjob-" || jobs.id.

CREATE TABLE finetune_files (
    id          text PRIMARY KEY,                 -- "file-<hex>"
    tenant      text NOT NULL DEFAULT 'default',
    filename    text NOT NULL,
    purpose     text NOT NULL,
    bytes       bigint NOT NULL,
    url         text NOT NULL,                    -- where the content lives in the artifact store
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX finetune_files_tenant ON finetune_files (tenant, created_at DESC);

CREATE TABLE finetune_base_models (
    name        text PRIMARY KEY,
    path        text NOT NULL,                    -- a local directory written by save_pretrained
    description text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per saved training checkpoint; the newest one is where a redelivered job resumes.
CREATE TABLE finetune_checkpoints (
    id          text PRIMARY KEY,                 -- "ftckpt-<hex>"
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step        integer NOT NULL,
    path        text NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, step)
);

-- The adapter registry: one adapter per finished job (a redelivered job updates, never duplicates).
CREATE TABLE adapters (
    name        text PRIMARY KEY,                 -- the job's fine_tuned_model
    job_id      text UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
    tenant      text NOT NULL DEFAULT 'default',
    base_model  text NOT NULL,                    -- as the job named it
    base_path   text NOT NULL,                    -- where it was loaded from
    method      text NOT NULL CHECK (method IN ('lora', 'qlora')),
    config      jsonb NOT NULL DEFAULT '{}',      -- resolved hyperparameters and the peft config
    metrics     jsonb NOT NULL DEFAULT '{}',
    url         text NOT NULL,                    -- artifact directory (adapter_config.json, adapter_model.safetensors)
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX adapters_base ON adapters (base_model);
