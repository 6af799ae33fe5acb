"""X (Twitter) items of a Zeeschuimer capture -> `x` posts.

Zeeschuimer `modules/twitter.js` (module id "twitter.com") keeps the GraphQL timelines' tweet results (with
``id`` set to ``legacy.id_str`` and ``promoted`` when the entry had ``promotedMetadata``) and, from the old
``adaptive.json`` search, ``{id, legacy: <tweet>, user: <user>, type: "adaptive"}``. 4CAT
`datasources/twitter-import/search_twitter.py` maps both: ``rest_id``/``legacy.id_str``, ``legacy.created_at``
("Wed Jan 15 10:00:00 +0000 2025"), ``legacy.full_text`` (a retweet as "RT @<user>: <text>"), the author's
``screen_name`` under ``core.user_results.result.legacy`` (or ``.core`` in newer responses),
``legacy.entities.hashtags[].text``, the counts, ``legacy.conversation_id_str`` and
``legacy.in_reply_to_status_id_str``. Promoted tweets are ads: skip "ad".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import as_object, as_string, digit_string
from murmur.crawler.parsers.imported import Imported
from murmur.crawler.parsers.zeeschuimer.common import Capture, Skip, imported, metrics_of, nonempty, pick

__all__ = ["x_post"]

_COUNTS = {"likes": ("favorite_count",), "replies": ("reply_count",), "reposts": ("retweet_count",),
           "quotes": ("quote_count",)}


def x_post(data: dict[str, Any], capture: Capture) -> list[Imported]:
    if data.get("promoted") is True:
        raise Skip("ad")
    if data.get("__typename") == "TweetUnavailable" or "tombstone" in data:
        raise Skip("unavailable")
    tweet = as_object(data.get("tweet")) or data  # TweetWithVisibilityResults nests the tweet once more
    legacy = as_object(tweet.get("legacy"))
    tweet_id = digit_string(tweet.get("rest_id")) or digit_string(legacy.get("id_str")) or digit_string(
        tweet.get("id"))
    if tweet_id is None:
        raise Skip("no_id")
    created = _created(legacy.get("created_at"))
    if created is None:
        raise Skip("no_time")
    handle = _screen_name(tweet) if tweet.get("type") != "adaptive" else nonempty(
        as_object(tweet.get("user")).get("screen_name"))
    note = as_string(as_object(as_object(as_object(tweet.get("note_tweet")).get("note_tweet_results")).get("result"))
                     .get("text"))
    text = note or as_string(legacy.get("full_text"))
    retweet = as_object(as_object(legacy.get("retweeted_status_result")).get("result"))
    retweet = as_object(retweet.get("tweet")) or retweet
    if retweet:
        original = as_string(as_object(retweet.get("legacy")).get("full_text"))
        by = _screen_name(retweet)
        text = f"RT @{by}: {original}" if by and original else text
    hashtags = [nonempty(as_object(h).get("text")) for h in as_object(legacy.get("entities")).get("hashtags") or []]
    metrics = metrics_of(legacy, _COUNTS)
    views = digit_string(as_object(pick(tweet, "views", "ext_views")).get("count"))
    if views is not None:
        metrics["views"] = int(views)
    conversation = digit_string(legacy.get("conversation_id_str"))
    parent = digit_string(legacy.get("in_reply_to_status_id_str"))
    post = Post(
        source="x",
        source_id=tweet_id,
        url=f"https://x.com/{handle or 'i/web'}/status/{tweet_id}",
        author=handle,
        text=text.strip(),
        created_at=created,
        tags=list(dict.fromkeys(h for h in hashtags if h)),
        metrics=metrics,
        parent_source_id=parent,
        root_source_id=conversation if parent and conversation and conversation != tweet_id else None,
    )
    return [imported(capture, post, data)]


def _screen_name(tweet: dict[str, Any]) -> str | None:
    user = as_object(as_object(as_object(tweet.get("core")).get("user_results")).get("result"))
    return nonempty(as_object(user.get("legacy")).get("screen_name")) or nonempty(
        as_object(user.get("core")).get("screen_name"))


def _created(value: Any) -> datetime | None:
    try:
        return datetime.strptime(as_string(value), "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
    except ValueError:
        return None
