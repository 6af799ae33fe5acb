-- requires: vector
-- Post embeddings for search (and topics, near-duplicates): one row per post and embedding model.
-- The first line above tells store/migrate.py to skip this migration, with one log line, on a server
-- without the pgvector extension (or a role that may not create it); it is tried again at the next start.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE post_embeddings (
    post_id    bigint      NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    model      text        NOT NULL,               -- e.g. 'multilingual-e5-small/centred@1'
    embedding  vector(384) NOT NULL,               -- unit length: cosine distance is <=>
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, model)
);
CREATE INDEX post_embeddings_hnsw_idx ON post_embeddings USING hnsw (embedding vector_cosine_ops);
