-- The engagement of a post and its weight, defined once (aggregation, the views and people's own queries
-- call them), and the next run of each scheduled job, recorded by murmur itself.

-- likes + reposts + replies, a missing count as 0 (not STRICT: NULL arguments are counted, not propagated).
CREATE FUNCTION murmur_engagement(likes bigint, reposts bigint, replies bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT COALESCE(likes, 0) + COALESCE(reposts, 0) + COALESCE(replies, 0) $$;

-- What a post weighs in `weighted_polarity`: 1 + ln(1 + engagement). A post nobody reacted to counts
-- once, one with 1,000 reactions about eight times, so a viral post moves the mean without drowning
-- it. A negative count (a platform's glitch) weighs as none.
CREATE FUNCTION murmur_engagement_weight(likes bigint, reposts bigint, replies bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 1 + ln(1 + greatest(murmur_engagement(likes, reposts, replies), 0)) $$;

-- The same columns, types and rows as in 0003; the engagement now through the function.
CREATE OR REPLACE VIEW top_posts AS
SELECT p.id AS post_id, p.source, p.url, p.author, p.text, p.lang, p.created_at, p.terms, p.tags,
       s.model, s.label, s.positive - s.negative AS polarity,
       murmur_engagement(p.likes, p.reposts, p.replies) AS engagement
FROM posts p
JOIN sentiment_scores s ON s.post_id = p.id;

-- When each job of `murmur serve` runs next, written by the service when it registers its jobs and
-- after each run (murmur status reads it). next_run_at NULL: the job is paused.
CREATE TABLE job_schedule (
    job              text             PRIMARY KEY,  -- 'crawl:mastodon', 'score', 'aggregate'
    next_run_at      timestamptz,
    interval_seconds double precision NOT NULL,
    updated_at       timestamptz      NOT NULL DEFAULT now()
);
