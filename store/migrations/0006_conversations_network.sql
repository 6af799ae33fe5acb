-- Conversations on every source, how each post arrived, and the network's own volume (issue 11).

-- The source_id of the post or comment this one replies to, and of its thread's root (NULL: a top-level
-- post, or a platform that does not say). docs/sql.md says, per source, which form each id takes.
ALTER TABLE posts
    ADD COLUMN parent_source_id text,
    ADD COLUMN root_source_id   text,
    -- How the post first arrived: a crawl, a stream (Jetstream), or an import of a file.
    ADD COLUMN via              text NOT NULL DEFAULT 'crawl' CHECK (via IN ('crawl', 'stream', 'import'));
CREATE INDEX posts_parent_idx ON posts (source, parent_source_id) WHERE parent_source_id IS NOT NULL;
CREATE INDEX posts_root_idx ON posts (source, root_source_id) WHERE root_source_id IS NOT NULL;

-- Every post a stream saw created on the whole network, matching a term or not, per hour and language
-- (the baseline of `murmur report --share`). Counted in the transaction that moves the stream's cursor.
CREATE TABLE network_volume (
    bucket_start  timestamptz NOT NULL,               -- UTC start of the hour of the posts' created_at
    source        text        NOT NULL,               -- 'bluesky'
    lang          text        NOT NULL,               -- 'und' when the language is unknown
    posts         bigint      NOT NULL,
    PRIMARY KEY (bucket_start, source, lang)
);
