-- Near-duplicates (murmur/dedupe.py, store/dedupe.py): a post whose embedding is within dedupe.threshold of
-- an earlier post's, inside dedupe.window, points at the earliest such post (by created_at, then id); an
-- original's duplicate_of is NULL. Links always point at an original (never at another copy), so "the
-- distinct texts" are the posts with duplicate_of IS NULL. No pgvector needed here: the links are filled
-- where embeddings exist; without them every post stays an original.
--
-- The foreign key is checked at commit (DEFERRABLE INITIALLY DEFERRED): when an original is deleted, the
-- statement trigger below first promotes its earliest remaining copy to original and points the other copies
-- at it; an immediate ON DELETE SET NULL would have orphaned them all before the trigger ran.
ALTER TABLE posts ADD COLUMN duplicate_of bigint
    REFERENCES posts (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX posts_duplicate_of_idx ON posts (duplicate_of) WHERE duplicate_of IS NOT NULL;

CREATE FUNCTION murmur_promote_copies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH heirs AS (
        SELECT DISTINCT ON (c.duplicate_of) c.duplicate_of AS gone, c.id AS heir
        FROM posts c
        WHERE c.duplicate_of IN (SELECT id FROM deleted_posts)
        ORDER BY c.duplicate_of, c.created_at, c.id
    )
    UPDATE posts p
    SET duplicate_of = CASE WHEN p.id = h.heir THEN NULL ELSE h.heir END
    FROM heirs h
    WHERE p.duplicate_of = h.gone;
    RETURN NULL;
END
$$;

CREATE TRIGGER posts_promote_copies AFTER DELETE ON posts
    REFERENCING OLD TABLE AS deleted_posts
    FOR EACH STATEMENT EXECUTE FUNCTION murmur_promote_copies();

-- Distinct posts per bucket: the posts that are no copy of an earlier post, so each text counts once, in
-- the bucket (and source) where it first appeared, and unique_posts add up across buckets and sources like
-- posts do. Rows aggregated before this migration had no links: every post was an original.
ALTER TABLE aggregates ADD COLUMN unique_posts integer;
UPDATE aggregates SET unique_posts = posts;
ALTER TABLE aggregates ALTER COLUMN unique_posts SET NOT NULL;
