-- requires: pg_trgm
-- Lexical matching for `murmur search --hybrid` (store/lexical.py): pg_trgm's word_similarity ranks the posts
-- that contain the query's words. The first line above makes store/migrate.py skip this migration, with one
-- log line, on a server without pg_trgm; `--hybrid` then says so and plain search works.
--
-- No trigram index is created here: on every insert it would cost ingestion for an option few runs use. A
-- hybrid search scans the posts its filters leave (--since, --source, ...); on a large database, an index
-- makes the lexical half fast (docs/sql.md):
--   CREATE INDEX CONCURRENTLY posts_text_trgm_idx ON posts USING gin (text gin_trgm_ops);
CREATE EXTENSION IF NOT EXISTS pg_trgm;
