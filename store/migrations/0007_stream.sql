-- Stream sources (issue 11): buckets to recompute because their posts changed under the aggregates.

-- A post deleted on the stream, or edited so that its scores were dropped, leaves the hour and day buckets
-- it was counted in wrong until they are recomputed; only new scores queued a bucket before. The next
-- aggregation claims these rows with the new scores and recomputes the buckets whole (store/trends.py).
CREATE TABLE dirty_buckets (
    bucket_size   text        NOT NULL CHECK (bucket_size IN ('hour', 'day')),
    bucket_start  timestamptz NOT NULL,
    source        text        NOT NULL,
    model         text        NOT NULL,
    marked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket_size, bucket_start, source, model)
);
