-- Posts no configured model may score (a language none covers, or none detected), with the reason.
-- They are never given a fake neutral score; when the configuration later covers their language,
-- the next `murmur score` scores them and their row here goes away.
CREATE TABLE unscored_posts (
    post_id     bigint      PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    reason      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_lang_idx ON posts (lang);
