"""Instagram and Threads items of a Zeeschuimer capture -> `instagram` and `threads` posts.

Instagram (Zeeschuimer `modules/instagram.js`; 4CAT `datasources/instagram/search_instagram.py` ``map_item``):
- the item-list shape (the web API's media): ``code``, ``pk``, ``id`` ("<pk>_<author id>"), ``taken_at`` (s;
  left out by grid and thumbnail views), ``caption`` (``{"text"}`` or null), ``like_count`` (made up when
  ``like_and_view_counts_disabled``), ``comment_count``, ``play_count``/``view_count``, ``user``/``owner``
  (``username``);
- the Graph shape (``__typename`` "GraphImage"/"GraphVideo"/"GraphSidecar"): ``shortcode``, ``id``,
  ``taken_at_timestamp``, ``edge_media_to_caption.edges[0].node.text``, ``edge_media_preview_like.count``,
  ``edge_media_to_comment``/``edge_media_preview_comment`` ``.count``, ``owner.username``;
- the "Polaris" grid shape (``__typename`` "XIGPolaris..."): a ``code`` and a caption, no time (skip "no_time").
Ads (``product_type`` "ad", a ``link`` through facebook.com/ads/ig_redirect) are rejected by 4CAT: skip "ad".
The source id is the media pk (what a shortcode encodes, as for Threads); the URL the Graph API's
``permalink`` form, ``https://www.instagram.com/p/<shortcode>/``. The `instagram` spider reads the Graph API,
whose media ids are another numbering: an import and a crawl of the same post do not merge.

Threads (`modules/threads.js`; 4CAT `datasources/threads/search_threads.py`): ``pk``, ``code``, ``taken_at``
(s), ``caption.text`` (or null), ``user.username``, ``like_count``, ``text_post_app_info`` (``direct_reply_count``,
``repost_count``, ``quote_count``, ``reshare_count``): the record the `threads` spider reads from post pages,
mapped the same way (source id the pk, URL ``https://www.threads.com/@<user>/post/<code>``).
"""

from __future__ import annotations

from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import as_object, as_string, count, digit_string, inline_hashtags
from murmur.crawler.parsers.imported import Imported
from murmur.crawler.parsers.threads import post_url, shortcode_to_pk
from murmur.crawler.parsers.zeeschuimer.common import Capture, Skip, imported, metrics_of, nonempty, unix_time

__all__ = ["instagram_post", "threads_post"]

INSTAGRAM_POST = "https://www.instagram.com/p/{code}/"
_THREADS_COUNTS = {"replies": ("direct_reply_count",), "reposts": ("repost_count",), "quotes": ("quote_count",),
                   "shares": ("reshare_count",)}


def instagram_post(data: dict[str, Any], capture: Capture) -> list[Imported]:
    link = as_string(data.get("link"))
    if data.get("product_type") == "ad" or link.startswith("https://www.facebook.com/ads/ig_redirect"):
        raise Skip("ad")
    typename = as_string(data.get("__typename"))
    graph = typename.startswith("Graph")
    code = nonempty(data.get("shortcode") if graph else data.get("code"))
    if code is None:
        raise Skip("no_id")
    item_id = as_string(data.get("id"))
    pk = digit_string(data.get("pk")) or digit_string(item_id.split("_")[0]) or shortcode_to_pk(code)
    if pk is None:
        raise Skip("no_id")
    created = unix_time(data.get("taken_at_timestamp") if graph else data.get("taken_at"))
    if created is None:
        raise Skip("no_time")
    if graph:
        edges = as_object(data.get("edge_media_to_caption")).get("edges")
        first = edges[0] if isinstance(edges, list) and edges else None
        caption = as_string(as_object(as_object(first).get("node")).get("text"))
        likes = count(as_object(data.get("edge_media_preview_like") or data.get("edge_liked_by")).get("count"))
        replies = count(as_object(data.get("edge_media_to_comment") or data.get("edge_media_preview_comment"))
                        .get("count"))
    else:
        caption = as_string(as_object(data.get("caption")).get("text"))
        likes = count(data.get("like_count"))
        replies = count(data.get("comment_count"))
    metrics: dict[str, int] = {}
    if likes is not None and not data.get("like_and_view_counts_disabled"):
        metrics["likes"] = likes
    if replies is not None:
        metrics["replies"] = replies
    views = count(data.get("view_count")) if data.get("view_count") is not None else count(data.get("play_count"))
    if views is not None:
        metrics["views"] = views
    user = {**as_object(data.get("owner")), **{k: v for k, v in as_object(data.get("user")).items() if v is not None}}
    post = Post(
        source="instagram",
        source_id=pk,
        url=INSTAGRAM_POST.format(code=code),
        author=nonempty(user.get("username")),
        text=caption.strip(),
        created_at=created,
        tags=inline_hashtags(caption),
        metrics=metrics,
    )
    return [imported(capture, post, data)]


def threads_post(data: dict[str, Any], capture: Capture) -> list[Imported]:
    code = nonempty(data.get("code"))
    pk = digit_string(data.get("pk")) or (shortcode_to_pk(code) if code else None)
    if code is None or pk is None:
        raise Skip("no_id")
    created = unix_time(data.get("taken_at"))
    if created is None:
        raise Skip("no_time")
    username = nonempty(as_object(data.get("user")).get("username"))
    metrics = metrics_of(data, {"likes": ("like_count",)})
    metrics.update(metrics_of(data.get("text_post_app_info"), _THREADS_COUNTS))
    caption = as_string(as_object(data.get("caption")).get("text"))
    post = Post(
        source="threads",
        source_id=pk,
        url=post_url(username, code),
        author=username,
        text=caption,
        created_at=created,
        tags=[],  # as the spider: Threads has topic tags, not hashtags, and post pages do not list them
        metrics=metrics,
    )
    return [imported(capture, post, data)]
