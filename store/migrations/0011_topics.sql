-- Topics (murmur/topics/): the alert kind topic_emerging, and which periods its check has seen.
--
-- A topic_emerging alert keeps the alerts table's unique key (kind, bucket_size, bucket_start, source, term,
-- model): `term` holds the topic's label (its characteristic words), `source` is 'all' (topics span the
-- sources) and `model` the embedding model. The key already tells two topics of one period apart, so the
-- store-once upsert and the webhook's delivery work unchanged and existing rows stay as they are; only the
-- kind's CHECK is widened.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('volume_spike', 'sentiment_shift', 'topic_emerging'));

-- A complete period (a UTC day) is checked for emerging topics once: the first aggregation after it ended
-- records it here, in the same transaction as the alerts it raised (clustering is seconds, not free).
CREATE TABLE topic_checks (
    bucket_size  text        NOT NULL CHECK (bucket_size IN ('day', 'week')),
    period_start timestamptz NOT NULL,
    model        text        NOT NULL,                -- the embedding model the topics were found with
    checked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket_size, period_start, model)
);
