"""A topic's characteristic words: class-based TF-IDF (c-TF-IDF, as BERTopic does it) over the topic's posts
against the period's other topics. Each topic's posts are one document; a word weighs its frequency in the
topic times log(1 + average words per topic / its frequency over all topics), so words every topic uses
(the tracked terms themselves) sink and the topic's own rise.

Tokens: URLs, @mentions and numbers dropped; English (and other Latin-script) words lower-cased, stop words
dropped; Chinese runs segmented with jieba, one-character words and stop words dropped."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

LABEL_WORDS = 3  # words in a topic's label
TOP_WORDS = 8  # words listed with a topic

_DROP = re.compile(r"https?://\S+|www\.\S+|[@＠][\w.\-]+(?:@[\w.\-]+)?", re.UNICODE)
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_HAN}]+|[^\W\d_](?:[^\W_]|['’\-](?=[^\W\d_]))+", re.UNICODE)
_IS_HAN = re.compile(rf"[{_HAN}]")

# Function words that survive jieba's segmentation as words of two characters or more.
_ZH_STOP = frozenset("""
我们 你们 他们 她们 它们 自己 这个 那个 这些 那些 这样 那样 这里 那里 什么 怎么 为什么 因为 所以 但是 然后
而且 或者 如果 虽然 已经 还是 就是 不是 没有 一个 一些 一下 一点 一直 一样 可以 可能 应该 觉得 知道 现在 今天
真的 非常 特别 还有 大家 时候 之后 之前 以后 以前 因此 其实 只是 就要 不会 不能 能够 比较 这么 那么 起来
""".split())
_EN_EXTRA_STOP = frozenset("""
im ive youre dont doesnt didnt cant wont isnt arent wasnt just really like got get gets getting amp rt via
also still even much many one two now new today yeah lol
""".split())


@cache
def _en_stop() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | _EN_EXTRA_STOP


@cache
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # it announces its dictionary at INFO on first use
    return jieba


def tokenize(text: str) -> list[str]:
    """The words of a post that can characterise a topic."""
    out: list[str] = []
    stop = _en_stop()
    for match in _TOKEN.finditer(_DROP.sub(" ", text)):
        token = match.group()
        if _IS_HAN.match(token):
            out.extend(w for w in _jieba().lcut(token) if len(w) > 1 and w not in _ZH_STOP)
            continue
        word = token.lower().replace("’", "'")
        bare = word.replace("'", "")
        if len(bare) > 1 and word not in stop and bare not in stop:
            out.append(word)
    return out


def topic_words(docs_per_topic: Sequence[Sequence[str]], *, top: int = TOP_WORDS) -> list[list[str]]:
    """For each topic (its posts' texts), its `top` words by c-TF-IDF against the other topics."""
    from sklearn.feature_extraction.text import CountVectorizer

    joined = [[tokenize(text) for text in docs] for docs in docs_per_topic]
    if not any(tokens for docs in joined for tokens in docs):
        return [[] for _ in docs_per_topic]
    vectorizer = CountVectorizer(analyzer=lambda tokens: tokens)
    counts = vectorizer.fit_transform([[t for tokens in docs for t in tokens] for docs in joined])
    vocabulary = vectorizer.get_feature_names_out()
    tf = np.asarray(counts.toarray(), dtype=float)
    words_per_topic = tf.sum(axis=1, keepdims=True)
    frequency = tf.sum(axis=0)
    average = float(words_per_topic.mean())
    weights = (tf / np.maximum(words_per_topic, 1)) * np.log1p(average / np.maximum(frequency, 1))
    out = []
    for row, present in zip(weights, tf, strict=True):
        # ties (common in small topics) broken by the word itself, so the label is the same on every run
        order = sorted((i for i in np.flatnonzero(present)), key=lambda i: (-row[i], vocabulary[i]))
        out.append([str(vocabulary[i]) for i in order[:top]])
    return out


def label(words: Sequence[str]) -> str:
    """A topic's name for people: its first few words."""
    return " · ".join(words[:LABEL_WORDS]) if words else "(no words)"
