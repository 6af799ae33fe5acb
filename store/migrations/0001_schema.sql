-- murmur's schema. Users query these tables directly (psql, Grafana, notebooks): see docs/sql.md.

-- One row per public post, whatever the platform. (source, source_id) is the platform's own
-- identity, so re-crawling a post updates it instead of duplicating it.
CREATE TABLE posts (
    id            bigserial PRIMARY KEY,
    source        text        NOT NULL,               -- 'mastodon', ...
    source_id     text        NOT NULL,               -- the platform's id (Mastodon: the status URI)
    url           text,
    author        text,
    text          text        NOT NULL,               -- plain text: HTML stripped, entities decoded
    lang          text,                               -- ISO 639-1 where known
    created_at    timestamptz NOT NULL,               -- when it was posted
    collected_at  timestamptz NOT NULL DEFAULT now(), -- when murmur first stored it
    updated_at    timestamptz NOT NULL DEFAULT now(), -- when murmur last changed it
    terms         text[]      NOT NULL DEFAULT '{}',  -- configured terms it matched
    tags          text[]      NOT NULL DEFAULT '{}',  -- hashtags the platform reported
    replies       integer,
    reposts       integer,
    likes         integer,
    raw           jsonb,                              -- the platform's record, for re-parsing
    UNIQUE (source, source_id)
);
CREATE INDEX posts_created_at_idx ON posts (created_at);
CREATE INDEX posts_terms_idx ON posts USING gin (terms);

-- One score per (post, model): several models can score the same posts side by side.
CREATE TABLE sentiment_scores (
    post_id       bigint      NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    model         text        NOT NULL,
    label         text        NOT NULL CHECK (label IN ('negative', 'neutral', 'positive')),
    negative      real        NOT NULL,
    neutral       real        NOT NULL,
    positive      real        NOT NULL,
    scored_at     timestamptz NOT NULL DEFAULT now(),
    aggregated_at timestamptz,                        -- NULL until the aggregate job has counted it
    PRIMARY KEY (post_id, model)
);
CREATE INDEX sentiment_scores_model_idx ON sentiment_scores (model, post_id);
CREATE INDEX sentiment_scores_unaggregated_idx ON sentiment_scores (post_id) WHERE aggregated_at IS NULL;

-- Hour and day buckets per (source, term, lang, model); derivable again from posts and scores
-- at any time (`murmur aggregate --rebuild`).
CREATE TABLE aggregates (
    bucket_size   text        NOT NULL CHECK (bucket_size IN ('hour', 'day')),
    bucket_start  timestamptz NOT NULL,               -- UTC start of the hour or day
    source        text        NOT NULL,
    term          text        NOT NULL,
    lang          text        NOT NULL,               -- 'und' when the language is unknown
    model         text        NOT NULL,
    posts         integer     NOT NULL,
    negative      integer     NOT NULL,
    neutral       integer     NOT NULL,
    positive      integer     NOT NULL,
    mean_polarity double precision NOT NULL,          -- mean of P(positive) - P(negative), in [-1, 1]
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket_size, bucket_start, source, term, lang, model)
);

-- Where each (source, query) stopped; moved only in the transaction that stores the posts before it.
CREATE TABLE crawl_state (
    source        text        NOT NULL,
    query         text        NOT NULL,               -- e.g. 'https://mastodon.social#tiktokrefugee'
    cursor        text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, query)
);

-- What each job did: one row per run of crawl, score or aggregate.
CREATE TABLE job_runs (
    id            bigserial   PRIMARY KEY,
    job           text        NOT NULL,               -- 'crawl:mastodon', 'score', 'aggregate'
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text        NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    stats         jsonb       NOT NULL DEFAULT '{}',
    error         text
);
CREATE INDEX job_runs_job_started_idx ON job_runs (job, started_at DESC);
