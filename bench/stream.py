"""Stream benchmark: a local websocket server replays what Jetstream sends for
`wantedCollections=app.bsky.feed.post` at rising rates into the real consumer (`run_stream`), with the
default terms and the baseline on.

    python bench/stream.py [--rates 1000,2000,5000,7500,10000,20000] [--hold 60] [--database-url URL]
    python bench/stream.py --rates 1000,5000 --hold 10          # a quick look

The events are generated, seeded: post creates in several languages (about 1% matching a default term;
a quarter of them replies, some to stored posts, some with hashtag or link facets, a few image-only), a
few updates and deletes, identity and account events. Each event's `time_us` is when it is due at the
rate (not when it was sent), so a server held back by a slow consumer shows up as lag.

The server runs in this process; the consumer in a child process (`run_stream`, as `murmur stream`
runs it): two Python processes, so the server does not take the consumer's GIL. For each rate this
prints the events/s the consumer sustained (events over the time from the commit of the first to that
of the last), the lag p99 (each event's `time_us` to the first look, every 50 ms, at a committed cursor
at or past it), and whether anything was lost: `network_volume` total == creates sent, stored posts ==
the matching creates (and replies to them) the server's own model expects, the cursor at the last
`time_us`, no reconnect. Then `murmur stream: N events/s sustained, lag p99 X s` for the highest rate
held `--hold` seconds with lag p99 under 5 s and nothing lost. It stops rising after a rate that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
POLL = 0.05  # seconds between looks at the committed cursor
MAX_LAG = 5.0
RATES = "1000,2000,5000,7500,10000,20000"
S32 = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable, as atproto TIDs (rkeys) are written

# Words to make posts of, per language; CJK written without spaces. The mix is illustrative of Bluesky
# (mostly English, then Japanese and Portuguese), not measured.
WORDS = {
    "en": ("the just finally today coffee morning my cat dog new album this is so good honestly cannot believe "
           "anyone else watching game tonight rain again weekend plans reading book love it thanks everyone "
           "for the support work meeting long day sunset photo from walk park train late music favourite "
           "song drawing commission open art sketch feels like spring garden bread baked politics news vote "
           "election climate science paper published code bug fixed release"),
    "pt": ("hoje finalmente bom dia café gato cachorro novo álbum isso é muito bom alguém mais assistindo "
           "jogo hoje chuva de novo fim de semana lendo livro obrigado pelo apoio trabalho reunião dia longo "
           "pôr do sol foto passeio música favorita desenho primavera jardim pão política notícia eleição"),
    "es": ("hoy por fin buenos días café gato perro nuevo disco esto es muy bueno alguien más viendo partido "
           "esta noche lluvia otra vez fin de semana leyendo libro gracias por el apoyo trabajo reunión"),
    "de": ("heute endlich guten Morgen Kaffee Katze Hund neues Album das ist so gut schaut noch jemand Spiel "
           "heute Abend Regen schon wieder Wochenende lese Buch danke für die Unterstützung Arbeit Sitzung"),
    "fr": ("aujourd'hui enfin bonjour café chat chien nouvel album c'est trop bien quelqu'un regarde le match "
           "ce soir pluie encore week-end je lis un livre merci pour le soutien travail réunion longue journée"),
}
CJK = {
    "ja": ("今日は 朝 コーヒー 猫 新しい アルバム すごく 良い 誰か 試合 見てる 雨 また 週末 本 読んでる 応援 "
           "ありがとう 仕事 会議 長い 一日 夕焼け 写真 散歩 音楽 好き 絵 描いた 春 ですね でした ました").split(),
    "zh": ("今天 终于 早上 咖啡 猫 新 专辑 真的 很好 有人 在看 比赛 又 下雨 周末 读书 谢谢 大家 支持 工作 开会 "
           "漫长的 一天 日落 照片 散步 音乐 喜欢 画画 春天 了 的 吧").split(),
    "ko": ("오늘 드디어 아침 커피 고양이 새 앨범 정말 좋다 누가 경기 보고 있나 비 또 주말 책 읽는 중 감사합니다 "
           "일 회의 긴 하루 노을 사진 산책 음악 좋아요").split(),
}
LANG_MIX = (("en", 55), ("ja", 15), ("pt", 12), ("de", 4), ("es", 4), ("fr", 3), ("ko", 3), ("zh", 4))
# Posts about the default terms (config/default.toml), as people wrote them in January 2025.
MATCHING = (
    ("en", "Day {n} on RedNote and everyone is so kind"), ("en", "Is anyone else a TikTok refugee here? {w}"),
    ("en", "Downloaded Xiaohongshu last night, {w}"), ("en", "Lemon8 or RedNote, which one {w}"),
    ("zh", "小红书上来了好多美国人 {w}"), ("zh", "TikTok难民 {w}"), ("ja", "小红书(RedNote)に{w}"),
    ("pt", "Entrei no RedNote hoje, {w}"), ("es", "¿Alguien más en Lemon8? {w}"),
)
TAGS = ("art", "photography", "gamedev", "booksky", "bluesky", "music", "news", "science", "cats")


def tid(n: int) -> str:
    """13 base32-sortable characters of a 63-bit integer (an atproto TID)."""
    out = []
    for _ in range(13):
        out.append(S32[n & 31])
        n >>= 5
    return "".join(reversed(out))


class Firehose:
    """Generates Jetstream frames (JSON text) and keeps the model of what the consumer must store."""

    def __init__(self, seed: int, terms: list[str]) -> None:
        self.rnd = random.Random(seed)
        rnd = self.rnd
        self.dids = ["did:plc:" + "".join(rnd.choice(S32) for _ in range(24)) for _ in range(50_000)]
        self.cids = ["bafyrei" + "".join(rnd.choice(S32) for _ in range(52)) for _ in range(1000)]
        self.plain = self._pool(terms, 20_000, matching=False)
        self.matching = self._pool(terms, 2_000, matching=True)
        self.recent: list[tuple[str, str | None]] = []  # (uri, its root) of the last creates, a ring
        self.ring_at = 0
        self.stored: set[str] = set()  # what the consumer must hold in `posts`
        self.stored_recent: list[tuple[str, str | None]] = []
        self.with_replies: set[str] = set()  # never deleted: the consumer's thread lookup would see them
        self.deleted: set[str] = set()
        self.creates = self.events = self.last_us = 0
        self.counts: dict[str, int] = {}

    # --- texts ---

    def _text(self, lang: str) -> str:
        rnd = self.rnd
        if lang in CJK:
            words = rnd.choices(CJK[lang], k=rnd.randint(3, 20))
            text = ("" if lang in ("ja", "zh") else " ").join(words)
        else:
            words = rnd.choices(WORDS[lang].split(), k=rnd.randint(4, 40))
            text = " ".join(words).capitalize()
        return text + rnd.choice(("", "", "", ".", "!", " 🙂", " 🎉", "..."))

    def _pool(self, terms: list[str], size: int, *, matching: bool) -> list[str]:
        """Record bodies (JSON members after createdAt), checked with the consumer's own parser and matcher:
        a plain one never matches a term, a matching one always does."""
        from murmur.crawler.parsers import jetstream as parser
        from murmur.crawler.text import TermMatcher, normalise_text

        matcher, rnd, pool = TermMatcher(terms), self.rnd, list[str]()
        langs, weights = zip(*LANG_MIX, strict=True)
        while len(pool) < size:
            if matching:
                lang, template = rnd.choice(MATCHING)
                text = template.format(n=rnd.randint(1, 9), w=self._text(lang if lang != "zh" else "zh"))
            else:
                lang = rnd.choices(langs, weights)[0]
                text = self._text(lang) if rnd.random() > 0.02 else ""  # image-only posts: no text
            record: dict[str, Any] = {}
            facets = []
            if rnd.random() < 0.1:  # a hashtag written out, with its facet (byte offsets, UTF-8)
                tag = rnd.choice(TAGS)
                start = len(text.encode()) + 1
                text += f" #{tag}"
                facets.append({"features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
                               "index": {"byteEnd": start + len(tag) + 1, "byteStart": start}})
            if rnd.random() < 0.08:  # a shortened link and its facet
                start = len(text.encode()) + 1
                shown = f"example.org/{tid(rnd.getrandbits(40))[:8]}..."
                text += " " + shown
                facets.append({"features": [{"$type": "app.bsky.richtext.facet#link",
                                             "uri": f"https://{shown[:-3]}/full-path"}],
                               "index": {"byteEnd": start + len(shown.encode()), "byteStart": start}})
            if not text or rnd.random() < 0.3:
                record["embed"] = {"$type": "app.bsky.embed.images", "images": [{
                    "alt": "", "aspectRatio": {"height": 1000, "width": 750},
                    "image": {"$type": "blob", "ref": {"$link": rnd.choice(self.cids)},
                              "mimeType": "image/jpeg", "size": rnd.randint(50_000, 900_000)}}]}
            if facets:
                record["facets"] = facets
            declared = lang if rnd.random() > 0.1 else rnd.choice(("en", "ja", "pt"))
            record["langs"] = [declared] if rnd.random() > 0.05 else []
            record["text"] = text
            body = json.dumps(record, ensure_ascii=False, separators=(",", ":"))[1:-1]
            frame = self._frame("did:plc:check", 1_736_900_000_000_000, "create", "3lcheck", body, "")
            event = parser.parse_frame(frame)
            assert isinstance(event, parser.Create)
            post = event.post
            if bool(matcher.match(normalise_text(post.text), post.tags)) == matching:
                pool.append(body)
        return pool

    # --- frames ---

    def _frame(self, did: str, time_us: int, operation: str, rkey: str, body: str, reply: str) -> str:
        when = datetime.fromtimestamp(time_us / 1e6 - self.rnd.random(), UTC).isoformat(timespec="milliseconds")
        return (f'{{"did":"{did}","time_us":{time_us},"kind":"commit","commit":{{"rev":"{tid(time_us << 10)}",'
                f'"operation":"{operation}","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{'
                f'"$type":"app.bsky.feed.post","createdAt":"{when[:-6]}Z",{body}{reply}}},'
                f'"cid":"{self.rnd.choice(self.cids)}"}}}}')

    def next(self, time_us: int) -> str:
        """The next frame, due at `time_us` (made strictly increasing, as the cursor check needs)."""
        time_us = self.last_us = max(time_us, self.last_us + 1)
        self.events += 1
        rnd, roll = self.rnd, self.rnd.random()
        did = rnd.choice(self.dids)
        if roll < 0.02:
            return self._count("identity", f'{{"did":"{did}","time_us":{time_us},"kind":"identity","identity":'
                               f'{{"did":"{did}","handle":"user{did[8:16]}.bsky.social","seq":{self.events},'
                               f'"time":"2025-01-15T00:00:00.000Z"}}}}')
        if roll < 0.035:
            return self._count("account", f'{{"did":"{did}","time_us":{time_us},"kind":"account","account":'
                               f'{{"active":true,"did":"{did}","seq":{self.events},'
                               f'"time":"2025-01-15T00:00:00.000Z"}}}}')
        if roll < 0.04 and self.recent:  # an update (rare: the app cannot edit; other clients can)
            uri, root = rnd.choice(self.recent)
            if uri not in self.deleted and root is None:
                # A post some reply already names does not become stored here: the consumer would keep those
                # replies if the edit shares their batch, and not otherwise.
                newly = uri not in self.with_replies and rnd.random() < 0.2
                body = rnd.choice(self.matching if uri in self.stored or newly else self.plain)
                if body in self.matching:
                    self.stored.add(uri)
                udid, rkey = uri[5:].split("/app.bsky.feed.post/")
                return self._count("update", self._frame(udid, time_us, "update", rkey, body, ""))
        if roll < 0.10 and self.recent:  # a delete of a post with no reply
            uri, _ = rnd.choice(self.recent)
            if uri not in self.deleted and uri not in self.with_replies:
                self.deleted.add(uri)
                self.stored.discard(uri)
                udid, rkey = uri[5:].split("/app.bsky.feed.post/")
                return self._count("delete", f'{{"did":"{udid}","time_us":{time_us},"kind":"commit","commit":'
                                   f'{{"rev":"{tid(time_us << 10)}","operation":"delete",'
                                   f'"collection":"app.bsky.feed.post","rkey":"{rkey}"}}}}')
        return self._create(did, time_us)

    def _create(self, did: str, time_us: int) -> str:
        rnd = self.rnd
        self.creates += 1
        matching = rnd.random() < 0.01
        body = rnd.choice(self.matching if matching else self.plain)
        uri = f"at://{did}/app.bsky.feed.post/{tid(time_us << 10 | rnd.getrandbits(10))}"
        reply, root = "", None
        if rnd.random() < 0.25:
            pick = rnd.random()
            if pick < 0.05 and self.stored_recent:
                parent, proot = rnd.choice(self.stored_recent)
            elif pick < 0.6 and self.recent:
                parent, proot = rnd.choice(self.recent)
            else:  # a reply to an older post, not in this stream's window
                parent, proot = f"at://{rnd.choice(self.dids)}/app.bsky.feed.post/{tid(rnd.getrandbits(60))}", None
            if parent in self.deleted:
                parent, proot = f"at://{did}/app.bsky.feed.post/{tid(rnd.getrandbits(60))}", None
            root = proot or parent
            self.with_replies.update((parent, root))
            cid = rnd.choice(self.cids)
            reply = (f',"reply":{{"parent":{{"cid":"{cid}","uri":"{parent}"}},'
                     f'"root":{{"cid":"{cid}","uri":"{root}"}}}}')
            matching = matching or parent in self.stored or root in self.stored
        if matching and '"text":""' not in body:
            self.stored.add(uri)
            self._remember(self.stored_recent, (uri, root), 2_000)
        self._remember(self.recent, (uri, root), 50_000)
        rkey = uri.rsplit("/", 1)[1]
        return self._count("create", self._frame(did, time_us, "create", rkey, body, reply))

    def _remember(self, ring: list[tuple[str, str | None]], item: tuple[str, str | None], size: int) -> None:
        if len(ring) < size:
            ring.append(item)
        else:
            ring[self.rnd.randrange(size)] = item

    def _count(self, kind: str, frame: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return frame


class Server:
    """One websocket client at a time on 127.0.0.1; `phase` sends `rate` events a second for `hold` s."""

    def __init__(self, firehose: Firehose) -> None:
        self.firehose = firehose
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ws: Any = None
        self.connections: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True, name="bench-jetstream").start()
        if not self._ready.wait(10):
            raise RuntimeError("the bench server did not start")

    def close(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
            self.url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws: Any) -> None:
        self.connections.append(ws.request.path)
        self.ws = ws
        await ws.wait_closed()

    def phase(self, rate: int, hold: float) -> dict[str, Any]:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(self._phase(rate, hold), self.loop).result()

    async def _phase(self, rate: int, hold: float) -> dict[str, Any]:
        """Send until `rate * hold` events are out, or give up `hold / 4 + 5` s late (the consumer pushes back)."""
        total, sent, firehose, ws = int(rate * hold), 0, self.firehose, self.ws
        times: list[int] = []
        t0 = time.time()
        give_up = t0 + hold * 1.25 + 5
        while sent < total:
            now = time.time()
            if now > give_up:
                break
            due = min(total, int((now - t0) * rate) + 1)
            while sent < due:
                time_us = int((t0 + sent / rate) * 1_000_000)
                frame = firehose.next(time_us)
                times.append(firehose.last_us)
                await ws.send(frame)
                sent += 1
            await asyncio.sleep(max(t0 + sent / rate - time.time(), 0.001))
        return {"t0": t0, "sent": sent, "total": total, "send_seconds": time.time() - t0, "times": times}


def consumer_child(url: str, database_url: str) -> int:
    """The consumer, in this (child) process: `run_stream` with the default settings but the bench server's
    URL, until SIGTERM; progress and the outcome as JSON lines on stdout."""
    from murmur.config import load_settings
    from murmur.crawler.stream import run_stream

    settings = load_settings(environ={}, overrides={"sources": {"jetstream": {"instances": [url]}}})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    outcome = run_stream(settings, database_url, stop=stop,
                         on_progress=lambda stats: print(json.dumps({"progress": stats}, default=str), flush=True))
    print(json.dumps({"outcome": {"status": outcome.status, "stats": outcome.stats, "error": outcome.error}},
                     default=str), flush=True)
    return 0


class Watcher:
    """Looks at the committed cursor every POLL seconds: (wall time, cursor) pairs."""

    def __init__(self, database_url: str) -> None:
        self.url, self.looks, self.done = database_url, [(0.0, 0)], threading.Event()
        threading.Thread(target=self._run, daemon=True, name="bench-watcher").start()

    def _run(self) -> None:
        import psycopg

        from murmur.store.posts import get_cursor

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.is_set():
                value = get_cursor(conn, "jetstream", "app.bsky.feed.post")
                self.looks.append((time.time(), int(value) if value else 0))
                time.sleep(POLL)

    def committed(self, time_us: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.looks[-1][1] < time_us:
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)
        return True


def lag_p99(times: list[int], looks: list[tuple[float, int]]) -> float:
    """p99 over events of (first look at a cursor >= the event's time_us) - time_us; inf if never seen."""
    import numpy as np

    at = np.array([t for t, _ in looks] + [np.inf])
    cursors = np.maximum.accumulate(np.array([c for _, c in looks], dtype=np.int64))
    events = np.array(times, dtype=np.int64)
    seen = at[np.searchsorted(cursors, events, side="left")]
    return float(np.percentile(seen - events / 1e6, 99))


def committed_rate(times: list[int], looks: list[tuple[float, int]], start: float, end: float) -> float:
    """Events committed per second over the middle 80% of [start, end] (the first and last commits): the
    offered rate when the consumer keeps up, its own pace when it does not. The edges are left out because
    a batch is committed at its first event after an idle second, and the last one up to a second late."""
    from bisect import bisect_right

    def committed_by(when: float) -> tuple[float, int]:
        at, cursor = max((look for look in looks if look[0] <= when), default=looks[0])
        return at, bisect_right(times, cursor)

    (a, n_a), (b, n_b) = committed_by(start + 0.1 * (end - start)), committed_by(start + 0.9 * (end - start))
    return (n_b - n_a) / (b - a) if b > a else 0.0


def counts(database_url: str) -> tuple[int, int, int]:
    """(posts stored, network_volume total, the cursor)."""
    import psycopg

    from murmur.store.posts import get_cursor

    with psycopg.connect(database_url) as conn:
        posts = conn.execute("SELECT count(*) FROM posts WHERE source = 'bluesky'").fetchall()[0][0]
        volume = conn.execute("SELECT coalesce(sum(posts), 0) FROM network_volume").fetchall()[0][0]
        cursor = get_cursor(conn, "jetstream", "app.bsky.feed.post")
    return int(posts), int(volume), int(cursor or 0)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def judge(rate: int, sent: dict[str, Any], watcher: Watcher, firehose: Firehose, server: Server, db: str,
          hold: float) -> tuple[str, bool, float, float]:
    """Wait for the phase's last event to be committed, then: its line, whether it held, events/s, lag p99."""
    last = sent["times"][-1]
    caught_up = watcher.committed(last, timeout=max(30.0, hold))
    first_at = next((t for t, c in watcher.looks if c >= sent["times"][0]), float("inf"))
    commit_at = next((t for t, c in watcher.looks if c >= last), float("inf"))
    sent["wall"] = (commit_at if caught_up else time.time()) - sent["t0"]
    p99 = lag_p99(sent["times"], list(watcher.looks))
    posts, volume, cursor = counts(db)
    lost = []
    if sent["sent"] < sent["total"]:
        lost.append(f"only {sent['sent']} of {sent['total']} sent in time")
    if volume != firehose.creates:
        lost.append(f"network_volume {volume} != {firehose.creates} creates")
    if posts != len(firehose.stored):
        lost.append(f"{posts} posts stored != {len(firehose.stored)} expected")
    if cursor != last:
        lost.append(f"cursor {cursor} != last time_us {last}")
    if len(server.connections) != 1:
        lost.append(f"{len(server.connections) - 1} reconnects")
    sustained = committed_rate(sent["times"], watcher.looks, first_at, commit_at) if caught_up else 0.0
    held = caught_up and not lost and p99 < MAX_LAG
    verdict = "ok" if held else "FAILED: " + ("; ".join(lost) or f"lag p99 {p99:.2f} s")
    line = (f"{rate:>6} events/s offered: {sustained:,.0f} sustained, lag p99 {p99:.2f} s, {verdict}; "
            f"{sent['sent']} events sent in {sent['send_seconds']:.1f} s, {firehose.creates} creates so far "
            f"(network_volume {volume}), {posts} posts stored ({len(firehose.stored)} expected)")
    return line, held, sustained, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=RATES, help=f"events/s, rising, comma-separated (default {RATES})")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds each rate is held (default 60)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the generated events (default 11)")
    parser.add_argument("--database-url", default=os.environ.get("MURMUR_DATABASE_URL"),
                        help="a PostgreSQL to write to (default: an embedded one in a temp dir)")
    parser.add_argument("--child", nargs=2, metavar=("WS_URL", "DB_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return consumer_child(*args.child)

    sys.path.insert(0, str(REPO))  # run as a script: bench/ is not a package root
    from bench.common import fresh_schema
    from bench.common import server_url as bench_server
    from murmur.config import load_settings

    rates = [int(r) for r in args.rates.split(",")]
    db = fresh_schema(bench_server(args.database_url), "bench_stream")
    terms = list(load_settings(environ={}).terms)
    built = time.perf_counter()
    firehose = Firehose(args.seed, terms)
    print(f"generated text pools in {time.perf_counter() - built:.1f}s; terms {terms}; baseline on", flush=True)
    server = Server(firehose)
    server.start()
    child = subprocess.Popen([sys.executable, __file__, "--child", server.url, db], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines: list[dict[str, Any]] = []
    threading.Thread(target=lambda: lines.extend(json.loads(x) for x in child.stdout or () if x.startswith("{")),
                     daemon=True).start()
    watcher: Watcher | None = None
    best: tuple[int, float] | None = None
    try:
        deadline = time.monotonic() + 60
        while server.ws is None:  # the child migrates the schema, then connects
            if time.monotonic() > deadline or child.poll() is not None:
                print("the consumer did not connect", file=sys.stderr)
                return 1
            time.sleep(0.1)
        watcher = Watcher(db)  # the schema is there once the consumer connects
        for rate in rates:
            cpu0 = cpu_seconds(child.pid)
            sent = server.phase(rate, args.hold)
            line, held, sustained, p99 = judge(rate, sent, watcher, firehose, server, db, args.hold)
            cpu = cpu_seconds(child.pid) - cpu0
            print(f"{line}, consumer CPU {cpu / sent['wall']:.0%}", flush=True)
            if not held:
                break
            best = (round(sustained), p99)
            time.sleep(1.0)
    finally:
        if watcher is not None:
            watcher.done.set()
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
        server.close()
    outcome = next((x["outcome"] for x in reversed(lines) if "outcome" in x), None)
    if outcome:
        print(f"consumer: {outcome['status']}, stats {json.dumps(outcome['stats'], default=str)}")
    print(f"events sent by kind: {firehose.counts}")
    if best is None:
        print("murmur stream: no rate held (see above)")
        return 1
    print(f"murmur stream: {best[0]} events/s sustained, lag p99 {best[1]:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
