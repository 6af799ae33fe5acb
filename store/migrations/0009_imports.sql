-- Imports of captured files (issue 12): where a platform says a post was made from (RedNote's
-- ip_location, TikTok's locationCreated, Weibo's IP region), as the platform writes it.
ALTER TABLE posts ADD COLUMN region text;
