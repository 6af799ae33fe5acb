"""The per-bucket tables the reports read (migrations 0013, 0016): posts per term set, hashtags per term set,
the top posts and the scored posts per source, language, term set and model, kept by the aggregation so a
report never scans `posts`.

Which hours to recompute: those whose posts changed (`report_dirty`, filled by triggers on `posts`) and
those whose scores did (the aggregation's `touched_buckets`). Each such hour is recomputed whole from its
posts, all sources together (the coarser levels span them; an hour is small: ~4,600 posts at 10M posts over
90 days), then each day holding one is folded again from its 24 hours' rows: a day never reads its posts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

TOP_KEPT = 50  # top posts kept per group and side: the largest --top a report can ask for

_EPOCH = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

# The levels each table keeps (migration 0013): each post once per level, with what the level keeps and '*'
# ('{}') for the rest. The reports read one level per query (store/reports.py picks it from KEPT_LEVELS).
_LEVELS = {
    "report_term_sets": "(0::smallint, m.source, m.lang, m.terms), (4::smallint, '*', '*', m.terms), "
                        "(5::smallint, m.source, m.lang, '{}'::text[])",
    "report_tags": "(0::smallint, m.source, m.lang, m.terms), (1::smallint, '*', '*', '{}'::text[]), "
                   "(4::smallint, '*', '*', m.terms)",
}
_LEVELS["report_top_posts"] = _LEVELS["report_tags"]
KEPT_LEVELS = {"report_term_sets": (0, 4, 5), "report_tags": (0, 1, 4), "report_top_posts": (0, 1, 4)}


def _levels(table: str) -> str:
    return f"CROSS JOIN LATERAL (VALUES {_LEVELS[table]}) AS g(level, source, lang, terms)"


# The hours to redo (all sources: the coarser levels span them): marked by the triggers, or holding posts
# whose scores the aggregation just claimed (or dropped: dirty_buckets). Claimed with DELETE .. RETURNING,
# so a mark committed meanwhile stays for the next run. A day bucket touched alone (murmur always marks its
# hour too) is taken as all its hours.
_CLAIM = """
WITH marked AS (DELETE FROM report_dirty RETURNING bucket_start)
INSERT INTO report_hours (bucket_start)
SELECT bucket_start FROM marked
UNION
SELECT bucket_start FROM touched_buckets WHERE bucket_size = 'hour'
UNION
SELECT h FROM touched_buckets t, generate_series(t.bucket_start, t.bucket_start + INTERVAL '23 hours',
                                                 INTERVAL '1 hour') h
WHERE t.bucket_size = 'day'
  AND NOT EXISTS (SELECT 1 FROM touched_buckets x WHERE x.bucket_size = 'hour' AND x.source = t.source
                  AND x.bucket_start >= t.bucket_start AND x.bucket_start < t.bucket_start + INTERVAL '1 day')
"""

# The posts of the hours to redo (every post with a term, scored or not), once, with what the tables key on.
_POSTS = f"""
CREATE TEMP TABLE report_posts ON COMMIT DROP AS
SELECT p.id, date_bin(INTERVAL '1 hour', p.created_at, {_EPOCH}) AS bucket_start, p.source,
       lower(COALESCE(p.lang, 'und')) AS lang, COALESCE(p.lang, 'und') AS lang_shown,
       ARRAY(SELECT t FROM unnest(p.terms) AS t ORDER BY t) AS terms,
       ARRAY(SELECT DISTINCT '#' || lower(tag) FROM unnest(p.tags) AS tag
             WHERE NOT EXISTS (SELECT 1 FROM unnest(p.terms) AS t, lower(regexp_replace(t, '\\s+', '', 'g')) AS h
                               WHERE lower(tag) IN (h, h || 's'))) AS tags,
       p.created_at, murmur_engagement(p.likes, p.reposts, p.replies) AS engagement
FROM {{posts}}
WHERE cardinality(p.terms) > 0
"""
# `tags` as the co-occurrence counts them: '#' || lower(tag), once per post, less those that are only one of
# the post's own terms written as a hashtag (#rednote on a RedNote post, #tiktokrefugees on a "TikTok
# refugee" one: store/report_scan.py has the same rule over the posts).
_IN_HOURS = """report_hours h JOIN posts p
  ON p.created_at >= h.bucket_start AND p.created_at < h.bucket_start + INTERVAL '1 hour'"""

_TERM_SETS = f"""
INSERT INTO report_term_sets (bucket_size, level, bucket_start, source, lang, terms, posts)
SELECT 'hour', g.level, m.bucket_start, g.source, g.lang, g.terms, count(*)
FROM report_posts m {_levels("report_term_sets")}
GROUP BY g.level, m.bucket_start, g.source, g.lang, g.terms
ORDER BY g.level, m.bucket_start
"""
# Written in (level, bucket) order, a level's rows for a range lie on few pages (a report reads one level;
# written as the levels come, its 3,000 rows for 90 days were spread over 4,400 pages at 1M posts).

_TAGS = f"""
INSERT INTO report_tags (bucket_size, level, bucket_start, source, lang, terms, tag, posts)
SELECT 'hour', g.level, m.bucket_start, g.source, g.lang, g.terms, tag, count(*)
FROM report_posts m CROSS JOIN LATERAL unnest(m.tags) AS tag {_levels("report_tags")}
GROUP BY g.level, m.bucket_start, g.source, g.lang, g.terms, tag
ORDER BY g.level, m.bucket_start
"""

# Scored posts (the scores the aggregation has folded in: aggregated_at is set before this runs) per source,
# language as shown, term set and model: the --compare source|lang series (store/reports.py).
_SENTIMENT = """
INSERT INTO report_sentiment (bucket_size, bucket_start, source, lang, terms, model, posts, negative, neutral,
                              positive, polarity_sum)
SELECT 'hour', m.bucket_start, m.source, m.lang_shown, m.terms, s.model, count(*),
       count(*) FILTER (WHERE s.label = 'negative'), count(*) FILTER (WHERE s.label = 'neutral'),
       count(*) FILTER (WHERE s.label = 'positive'), sum((s.positive - s.negative)::numeric)
FROM report_posts m JOIN sentiment_scores s ON s.post_id = m.id AND s.aggregated_at IS NOT NULL
GROUP BY m.bucket_start, m.source, m.lang_shown, m.terms, s.model
ORDER BY m.bucket_start
"""

# The order of the top posts, one for both sides: the most positive (negative) first, then the most
# engaged, the newest, the highest id (so the order is total and the hours' and days' ranks agree).
_ORDER = "CASE WHEN positive THEN polarity ELSE -polarity END DESC, engagement DESC, created_at DESC, post_id DESC"

_TOP = f"""
INSERT INTO report_top_posts (bucket_size, level, bucket_start, source, lang, terms, model, positive, rank, post_id,
                              polarity, engagement, created_at)
SELECT 'hour', level, bucket_start, source, lang, terms, model, positive, rank, post_id, polarity, engagement,
       created_at
FROM (
    SELECT g.level, m.bucket_start, g.source, g.lang, g.terms, m.model, m.positive, m.post_id, m.polarity,
           m.engagement, m.created_at,
           row_number() OVER (PARTITION BY g.level, m.bucket_start, g.source, g.lang, g.terms, m.model, m.positive
                              ORDER BY {_ORDER}) AS rank
    FROM (
        SELECT p.bucket_start, p.source, p.lang, p.terms, s.model, s.positive - s.negative > 0 AS positive,
               p.id AS post_id, s.positive - s.negative AS polarity, p.engagement, p.created_at
        FROM report_posts p JOIN sentiment_scores s ON s.post_id = p.id
        WHERE s.positive - s.negative <> 0
    ) m {_levels("report_top_posts")}
) ranked
WHERE rank <= {TOP_KEPT}
"""

# The days holding a redone hour, folded again from their hours.
_DAYS = f"""
CREATE TEMP TABLE report_days ON COMMIT DROP AS
SELECT DISTINCT date_bin(INTERVAL '1 day', bucket_start, {_EPOCH}) AS bucket_start FROM report_hours
"""
_DAY_HOURS = """(SELECT r.* FROM report_days d JOIN {table} r
  ON r.bucket_size = 'hour' AND r.bucket_start >= d.bucket_start
 AND r.bucket_start < d.bucket_start + INTERVAL '1 day')"""
_ALL_HOURS = "(SELECT * FROM {table} WHERE bucket_size = 'hour')"

_DAY_TERM_SETS = f"""
INSERT INTO report_term_sets (bucket_size, level, bucket_start, source, lang, terms, posts)
SELECT 'day', level, date_bin(INTERVAL '1 day', bucket_start, {_EPOCH}), source, lang, terms, sum(posts)
FROM {{hours}} r
GROUP BY level, 3, source, lang, terms
ORDER BY level, 3
"""
_DAY_TAGS = f"""
INSERT INTO report_tags (bucket_size, level, bucket_start, source, lang, terms, tag, posts)
SELECT 'day', level, date_bin(INTERVAL '1 day', bucket_start, {_EPOCH}), source, lang, terms, tag, sum(posts)
FROM {{hours}} r
GROUP BY level, 3, source, lang, terms, tag
ORDER BY level, 3
"""
# The best 50 of a day's group are among the best 50 of each of its hours' groups.
_DAY_TOP = f"""
INSERT INTO report_top_posts (bucket_size, level, bucket_start, source, lang, terms, model, positive, rank, post_id,
                              polarity, engagement, created_at)
SELECT 'day', level, day, source, lang, terms, model, positive, rank, post_id, polarity, engagement, created_at
FROM (
    SELECT level, date_bin(INTERVAL '1 day', bucket_start, {_EPOCH}) AS day, source, lang, terms, model, positive,
           post_id, polarity, engagement, created_at,
           row_number() OVER (PARTITION BY level, date_bin(INTERVAL '1 day', bucket_start, {_EPOCH}), source, lang,
                                           terms, model, positive
                              ORDER BY {_ORDER}) AS rank
    FROM {{hours}} r
) ranked
WHERE rank <= {TOP_KEPT}
"""

_DAY_SENTIMENT = f"""
INSERT INTO report_sentiment (bucket_size, bucket_start, source, lang, terms, model, posts, negative, neutral,
                              positive, polarity_sum)
SELECT 'day', date_bin(INTERVAL '1 day', bucket_start, {_EPOCH}), source, lang, terms, model, sum(posts),
       sum(negative), sum(neutral), sum(positive), sum(polarity_sum)
FROM {{hours}} r
GROUP BY 2, source, lang, terms, model
ORDER BY 2
"""

TABLES = ("report_term_sets", "report_tags", "report_top_posts", "report_sentiment")
_HOUR_QUERIES = (_TERM_SETS, _TAGS, _TOP, _SENTIMENT)
_DAYS_FROM_HOURS = ((_DAY_TERM_SETS, "report_term_sets"), (_DAY_TAGS, "report_tags"), (_DAY_TOP, "report_top_posts"),
                    (_DAY_SENTIMENT, "report_sentiment"))


def refresh_rollups(conn: psycopg.Connection, *, rebuild: bool = False) -> int:
    """Recompute the report tables' hours that changed, and their days; `rebuild` recomputes them all
    from the posts. Call inside the aggregation's transaction, after it filled `touched_buckets`.
    Returns how many hour buckets were recomputed."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS report_hours (bucket_start timestamptz) ON COMMIT DELETE ROWS")
    conn.execute("DELETE FROM report_hours")  # called in a caller's transaction, an earlier run's rows are here
    with conn.cursor() as cur:
        if rebuild:
            # Sorts of millions of rows (the ranks, the groups): in memory, not in temporary files.
            cur.execute("SET LOCAL work_mem = '256MB'")
            cur.execute("DELETE FROM report_dirty")
            for table in TABLES:
                cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            cur.execute(sql.SQL(_POSTS).format(posts=sql.SQL("posts p")))
        else:
            cur.execute(_CLAIM)
            hours = cur.rowcount
            if hours == 0:
                return 0
            # Analysed, the planner reads each hour through posts (created_at) rather than guessing the
            # temporary table's size (store/trends.py says what that cost).
            cur.execute("ANALYZE report_hours")
            for table in TABLES:
                cur.execute(sql.SQL("DELETE FROM {} r USING report_hours h WHERE r.bucket_size = 'hour' "
                                    "AND r.bucket_start = h.bucket_start").format(sql.Identifier(table)))
            cur.execute(sql.SQL(_POSTS).format(posts=sql.SQL(_IN_HOURS)))
        cur.execute("ANALYZE report_posts")
        for query in _HOUR_QUERIES:
            cur.execute(query)
        cur.execute("DROP TABLE report_posts")
        if rebuild:
            row = cur.execute("SELECT count(DISTINCT bucket_start) FROM report_term_sets "
                              "WHERE bucket_size = 'hour' AND level = 4").fetchone()
            hours = int(row[0]) if row else 0
            for query, table in _DAYS_FROM_HOURS:
                cur.execute(sql.SQL(query).format(hours=sql.SQL(_ALL_HOURS).format(table=sql.Identifier(table))))
            return hours
        cur.execute(_DAYS)
        cur.execute("ANALYZE report_days")
        for query, table in _DAYS_FROM_HOURS:
            cur.execute(sql.SQL("DELETE FROM {} r USING report_days d WHERE r.bucket_size = 'day' "
                                "AND r.bucket_start = d.bucket_start").format(sql.Identifier(table)))
            cur.execute(sql.SQL(query).format(hours=sql.SQL(_DAY_HOURS).format(table=sql.Identifier(table))))
        cur.execute("DROP TABLE report_days")
    return hours
