-- `source_health` shows stream sources too (issue 11): their `stream:<source>` runs (one per consumer
-- process, its stats updated while it runs) beside the crawls' `crawl:<source>` runs. The first eight
-- columns keep their names, types and meaning; the stream's figures come after them.
--
-- For a stream source, posts_24h and posts_7d count the posts first stored by a stream (`via = 'stream'`:
-- Jetstream stores them as source bluesky, where the bluesky row counts them too).
CREATE OR REPLACE VIEW source_health AS
WITH runs AS (
    SELECT substr(job, strpos(job, ':') + 1) AS source, split_part(job, ':', 1) AS kind,
           id, started_at, finished_at, status, error, stats
    FROM job_runs
    WHERE job LIKE 'crawl:%' OR job LIKE 'stream:%'
), latest AS (
    SELECT DISTINCT ON (source) source, kind, started_at, finished_at, status, error, stats
    FROM runs
    ORDER BY source, started_at DESC, id DESC
), last_day AS (
    SELECT source, count(*) AS runs, count(*) FILTER (WHERE status = 'failed') AS failed,
           -- a stream's reconnects: those inside each run, and each run after the first (a restart)
           sum(CASE WHEN jsonb_typeof(stats->'reconnects') = 'number' THEN (stats->>'reconnects')::numeric
                    ELSE 0 END)::bigint
               + count(*) - 1 AS reconnects
    FROM runs
    WHERE started_at >= now() - INTERVAL '24 hours'
    GROUP BY source
), collected AS (
    SELECT source,
           count(*) FILTER (WHERE collected_at >= now() - INTERVAL '24 hours') AS posts_24h,
           count(*) AS posts_7d
    FROM posts
    WHERE collected_at >= now() - INTERVAL '7 days'
    GROUP BY source
), streamed AS (
    SELECT count(*) FILTER (WHERE collected_at >= now() - INTERVAL '24 hours') AS posts_24h,
           count(*) AS posts_7d
    FROM posts
    WHERE collected_at >= now() - INTERVAL '7 days' AND via = 'stream'
), sources AS (
    SELECT source FROM latest UNION SELECT source FROM collected
)
SELECT s.source,
       l.started_at AS last_run_at,
       l.status AS last_status,
       l.error AS last_error,
       COALESCE(d.runs, 0) AS runs_24h,
       COALESCE(d.failed, 0) AS failed_24h,
       CASE WHEN l.kind = 'stream' THEN st.posts_24h ELSE COALESCE(c.posts_24h, 0) END AS posts_24h,
       CASE WHEN l.kind = 'stream' THEN st.posts_7d ELSE COALESCE(c.posts_7d, 0) END AS posts_7d,
       -- what follows is NULL for a crawl source
       COALESCE(l.kind, 'crawl') AS kind,
       -- the running consumer's current connection (its stats say; NULL while it reconnects), else its start
       CASE WHEN l.kind <> 'stream' OR l.status <> 'running' THEN NULL
            WHEN jsonb_typeof(l.stats->'connected_since') = 'string' THEN (l.stats->>'connected_since')::timestamptz
            WHEN l.stats->'connected_since' IS NULL THEN l.started_at
       END AS connected_since,
       -- the consumer's own rate where its stats give one, else its events over the run's time so far
       CASE WHEN l.kind <> 'stream' THEN NULL
            WHEN jsonb_typeof(l.stats->'events_per_second') = 'number' THEN (l.stats->>'events_per_second')::float8
            ELSE round(CASE WHEN jsonb_typeof(l.stats->'events') = 'number' THEN (l.stats->>'events')::numeric
                            ELSE 0 END
                       / greatest(extract(epoch FROM COALESCE(l.finished_at, now()) - l.started_at), 1), 1)::float8
       END AS events_per_second,
       CASE WHEN l.kind = 'stream' AND jsonb_typeof(l.stats->'matched') = 'number'
            THEN (l.stats->>'matched')::numeric::bigint END AS matched_posts,
       CASE WHEN l.kind = 'stream' AND jsonb_typeof(l.stats->'lag') = 'number'
            THEN (l.stats->>'lag')::float8 END AS lag_seconds,
       CASE WHEN l.kind = 'stream' THEN greatest(COALESCE(d.reconnects, 0), 0) END AS reconnects_24h
FROM sources s
LEFT JOIN latest l ON l.source = s.source
LEFT JOIN last_day d ON d.source = s.source
LEFT JOIN collected c ON c.source = s.source
CROSS JOIN streamed st;
