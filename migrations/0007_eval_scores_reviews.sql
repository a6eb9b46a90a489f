-- Eval pool: per-item scores of switchyard.eval.run jobs, and human review of a sample of them.
-- The job itself (params, aggregate result) is its row in `jobs`.

CREATE TABLE eval_items (
    job_id     text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    item_id    text NOT NULL,
    position   integer NOT NULL,                 -- order in the dataset
    prediction text,                             -- given, or produced by `generate`
    scores     jsonb NOT NULL DEFAULT '{}',      -- metric -> value
    stats      jsonb NOT NULL DEFAULT '{}',      -- metric -> sufficient statistics (corpus BLEU, chrF)
    errors     jsonb NOT NULL DEFAULT '{}',      -- metric (or "generate") -> why this item was not scored
    item       jsonb NOT NULL DEFAULT '{}',      -- the input item, for reviewers and `show`
    PRIMARY KEY (job_id, item_id)
);

-- A review asks humans to rate a sample of an eval job's items. The eval job ends when its scores are
-- stored; the review completes later, when every sampled item has `raters` ratings.
CREATE TABLE eval_reviews (
    id           text PRIMARY KEY,               -- "rev-<hex>"
    job_id       text NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
    tenant       text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'complete')),
    spec         jsonb NOT NULL,                 -- sample, raters, scale, instructions
    item_ids     text[] NOT NULL,
    agreement    jsonb,                          -- set when complete
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX eval_reviews_tenant ON eval_reviews (tenant, created_at DESC);

CREATE TABLE eval_ratings (
    review_id  text NOT NULL REFERENCES eval_reviews (id) ON DELETE CASCADE,
    item_id    text NOT NULL,
    rater      text NOT NULL,
    score      integer NOT NULL,
    comment    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (review_id, item_id, rater)         -- a rater's second rating of an item replaces the first
);
