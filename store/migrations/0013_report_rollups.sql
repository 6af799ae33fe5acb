-- What `murmur report` (and the dashboard) read for co-occurring terms and hashtags, the language mix and
-- the top posts (issue 15): per-bucket tables kept by the aggregation (store/rollups.py), so a report reads
-- an index range over buckets instead of every post of its range. Like `aggregates`, they can be derived
-- again from posts and scores at any time (`murmur aggregate --rebuild`). docs/sql.md describes them.
--
-- Hour rows are computed from the posts, day rows from the day's hour rows (sums, and the best of the
-- hours' best), so an hour that gains posts costs its own hour and one fold of its day. A week is the sum
-- of its days at read time. Every post with a term counts, scored or not (as the reports always have).

-- Levels. The tables count each bucket's posts at several levels of detail, so a report reads the coarsest
-- that answers its filters (store/reports.py picks it) rather than every (source, language, term set) group:
-- at 10M posts a day holds hundreds of such groups. A level keeps some of source, lang and terms and writes
-- '*' (terms: '{}') for the others:
--   0: source, lang, terms (every table; any filters)   1: none (report_tags, report_top_posts: no filter)
--   4: terms (all three: co-occurring terms, --term)     5: source, lang (report_term_sets: the language mix)
-- Every post counts once at each level.

-- Posts per bucket, source, language and term set. A post has exactly one term set (its `terms`, sorted),
-- so summing the rows whose set holds any of the terms asked for counts each post once.
CREATE TABLE report_term_sets (
    bucket_size  text        NOT NULL CHECK (bucket_size IN ('hour', 'day')),
    level        smallint    NOT NULL,               -- which of source, lang, terms the row keeps (above)
    bucket_start timestamptz NOT NULL,               -- UTC start of the hour or day
    source       text        NOT NULL,               -- '*': all sources (the level does not keep it)
    lang         text        NOT NULL,               -- lower(COALESCE(posts.lang, 'und')); '*': all
    terms        text[]      NOT NULL,               -- the posts' matched terms, sorted (as configured); '{}': all
    posts        integer     NOT NULL
);
-- Not a primary key: the aggregation writes each group once (GROUP BY), and one narrower index is cheaper to
-- fill (a rebuild writes millions of rows). It serves the reports' ranges (a level, the sources and
-- languages asked for, then time) and the aggregation's deletes of a bucket (PostgreSQL 18 skips through
-- the few levels, sources and languages; an older server scans the level's index). Likewise below.
CREATE INDEX report_term_sets_read_idx ON report_term_sets (bucket_size, level, source, lang, bucket_start);

-- Posts per bucket, source, language and term set holding each hashtag ('#' || lower(tag)); a hashtag that
-- is only one of the post's own terms written as a hashtag (#rednote on a RedNote post) is left out, as the
-- co-occurrence report leaves it out.
CREATE TABLE report_tags (
    bucket_size  text        NOT NULL CHECK (bucket_size IN ('hour', 'day')),
    level        smallint    NOT NULL,
    bucket_start timestamptz NOT NULL,
    source       text        NOT NULL,
    lang         text        NOT NULL,
    terms        text[]      NOT NULL,
    tag          text        NOT NULL,               -- '#xiaohongshu'
    posts        integer     NOT NULL
);
CREATE INDEX report_tags_read_idx ON report_tags (bucket_size, level, source, lang, bucket_start);

-- The 50 most positive and the 50 most negative scored posts (polarity = positive - negative; ties to the
-- most engaged, then the newest, then the highest id) per bucket, source, language, term set and model:
-- the best `limit` of any union of these groups are among the groups' own best `limit`, so --top can go
-- up to 50 (reports/highlights.py says so when asked for more). Text, URL and author are read from
-- `posts` for the few rows shown.
CREATE TABLE report_top_posts (
    bucket_size  text        NOT NULL CHECK (bucket_size IN ('hour', 'day')),
    level        smallint    NOT NULL,
    bucket_start timestamptz NOT NULL,
    source       text        NOT NULL,
    lang         text        NOT NULL,
    terms        text[]      NOT NULL,
    model        text        NOT NULL,
    positive     boolean     NOT NULL,               -- true: the most positive (polarity > 0); false: negative
    rank         smallint    NOT NULL,               -- 1 = the most positive (negative) of its group
    post_id      bigint      NOT NULL,
    polarity     real        NOT NULL,
    engagement   bigint      NOT NULL,               -- murmur_engagement(likes, reposts, replies)
    created_at   timestamptz NOT NULL
);
-- A report reads the first `limit` ranks of the groups of one level in its range: the index holds the rank.
CREATE INDEX report_top_posts_read_idx
    ON report_top_posts (bucket_size, level, source, lang, bucket_start, model, positive, rank);

-- The hours whose posts changed (inserted, deleted, or a column these tables read changed), whatever their
-- scores: the next aggregation recomputes them (new and removed scores reach it through sentiment_scores
-- and dirty_buckets as before). Filled by the statement triggers below; a plain insert, never a conflict,
-- so concurrent writers never wait on each other here.
CREATE TABLE report_dirty (
    bucket_start timestamptz NOT NULL,               -- UTC start of the hour
    source       text        NOT NULL
);

CREATE FUNCTION murmur_report_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO report_dirty (bucket_start, source)
        SELECT DISTINCT date_bin(INTERVAL '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), source
        FROM new_posts WHERE cardinality(terms) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO report_dirty (bucket_start, source)
        SELECT DISTINCT date_bin(INTERVAL '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), source
        FROM old_posts WHERE cardinality(terms) > 0;
    ELSE
        -- Only what the report tables read: a new like count moves a post among the top posts, a new
        -- duplicate_of or raw payload moves nothing here.
        INSERT INTO report_dirty (bucket_start, source)
        SELECT DISTINCT date_bin(INTERVAL '1 hour', c.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), c.source
        FROM old_posts o
        JOIN new_posts n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.source, o.created_at, o.terms), (n.source, n.created_at, n.terms))
            AS c(source, created_at, terms)
        WHERE cardinality(c.terms) > 0
          AND (o.source, o.created_at, o.lang, o.terms, o.tags, o.likes, o.reposts, o.replies)
              IS DISTINCT FROM (n.source, n.created_at, n.lang, n.terms, n.tags, n.likes, n.reposts, n.replies);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER posts_report_dirty_insert AFTER INSERT ON posts
    REFERENCING NEW TABLE AS new_posts
    FOR EACH STATEMENT EXECUTE FUNCTION murmur_report_dirty();
CREATE TRIGGER posts_report_dirty_update AFTER UPDATE ON posts
    REFERENCING OLD TABLE AS old_posts NEW TABLE AS new_posts
    FOR EACH STATEMENT EXECUTE FUNCTION murmur_report_dirty();
CREATE TRIGGER posts_report_dirty_delete AFTER DELETE ON posts
    REFERENCING OLD TABLE AS old_posts
    FOR EACH STATEMENT EXECUTE FUNCTION murmur_report_dirty();

-- An existing database: every hour with posts is dirty, so the first aggregation after this migration
-- fills the tables (one pass over the posts, as `murmur aggregate --rebuild` would).
INSERT INTO report_dirty (bucket_start, source)
SELECT DISTINCT date_bin(INTERVAL '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), source
FROM posts WHERE cardinality(terms) > 0;
