-- Day buckets folded from their hours (store/trends.py): an aggregation no longer reads a touched day's posts,
-- only its 24 hour rows. Folding `weighted_polarity` needs each row's sum of engagement weights (the
-- denominator of its weighted mean, migration 0004's murmur_engagement_weight), kept here.
ALTER TABLE aggregates ADD COLUMN weight_sum double precision;

-- Rows aggregated before this migration: their weights summed once from the same posts and scores the
-- aggregation read (every score of the row's model on the bucket's posts), hours first, then days from them.
UPDATE aggregates a SET weight_sum = w.weight_sum
FROM (
    SELECT date_bin(INTERVAL '1 hour', p.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket_start,
           p.source, term, COALESCE(p.lang, 'und') AS lang, s.model,
           sum(murmur_engagement_weight(p.likes, p.reposts, p.replies)) AS weight_sum
    FROM posts p
    JOIN sentiment_scores s ON s.post_id = p.id
    CROSS JOIN LATERAL unnest(p.terms) AS term
    GROUP BY 1, 2, 3, 4, 5
) w
WHERE a.bucket_size = 'hour' AND a.bucket_start = w.bucket_start AND a.source = w.source AND a.term = w.term
  AND a.lang = w.lang AND a.model = w.model;
UPDATE aggregates d SET weight_sum = (
    SELECT sum(h.weight_sum) FROM aggregates h
    WHERE h.bucket_size = 'hour' AND h.source = d.source AND h.term = d.term AND h.lang = d.lang
      AND h.model = d.model AND h.bucket_start >= d.bucket_start AND h.bucket_start < d.bucket_start + INTERVAL '1 day'
)
WHERE d.bucket_size = 'day';
-- A row whose posts changed since it was aggregated (its bucket waits in dirty_buckets) and found none:
-- each post weighs at least 1, so its post count is the closest floor until its bucket is recomputed.
UPDATE aggregates SET weight_sum = posts WHERE weight_sum IS NULL;
ALTER TABLE aggregates ALTER COLUMN weight_sum SET NOT NULL;
