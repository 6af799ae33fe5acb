-- Scored posts per bucket, source, language, term set and model, with their labels and summed polarity:
-- what `murmur report --compare source|lang` and the dashboard's compare view read. They counted them from
-- the posts and scores of the whole range on every call (1.3 s at 1M posts, growing with them). Kept like
-- the other report tables (migration 0013, store/rollups.py): hours recomputed from their posts, days folded
-- from their hours, weeks summed at read time. Only scores the aggregation has folded in (aggregated_at
-- set) count, so the figures agree with the per-term trend; each post has one term set, so sums over the
-- sets holding any of the terms asked for count each post once. One level: source, language and terms kept.
CREATE TABLE report_sentiment (
    bucket_size  text        NOT NULL CHECK (bucket_size IN ('hour', 'day')),
    bucket_start timestamptz NOT NULL,               -- UTC start of the hour or day
    source       text        NOT NULL,
    lang         text        NOT NULL,               -- COALESCE(posts.lang, 'und'), as the report shows it
    terms        text[]      NOT NULL,               -- the posts' matched terms, sorted
    model        text        NOT NULL,
    posts        integer     NOT NULL,
    negative     integer     NOT NULL,               -- posts by label
    neutral      integer     NOT NULL,
    positive     integer     NOT NULL,
    polarity_sum numeric     NOT NULL                -- sum of positive - negative: mean = polarity_sum / posts
);
-- Exact (numeric) so that a day folded from its hours, in any order, equals the day a rebuild writes.
CREATE INDEX report_sentiment_read_idx ON report_sentiment (bucket_size, model, bucket_start);

-- An existing database: every hour with posts is marked, so the next aggregation fills the new table (and
-- recomputes the other report tables' hours, to the same rows).
INSERT INTO report_dirty (bucket_start, source)
SELECT DISTINCT date_bin(INTERVAL '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), source
FROM posts WHERE cardinality(terms) > 0;
