"""Import benchmark: a generated Reddit dump and a generated Zeeschuimer TikTok capture, each imported by
the real `murmur import` in a child process into a fresh schema of PostgreSQL.

    python bench/import.py [--dump-lines 500000] [--tiktok-lines 50000] [--match-every 100] [--level 3]
                           [--all-dump] [--database-url URL] [--workdir DIR]

e.g. `python bench/import.py --dump-lines 100000 --tiktok-lines 10000` for a quick look.

The dump `RS_2025-01.zst` holds submissions of ~1.5 KB, in the shape of tests/fixtures/reddit_dump/, written
as Pushshift / Arctic Shift write theirs: one zstd frame without a content size and a long window
(window_log 31, 2 GiB, as `zstd --long=31` does), so a reader must accept `max_window_size=2**31` and the
decoder may fill a buffer up to that window. The TikTok capture holds items of ~8 KB in the envelope of
tests/fixtures/zeeschuimer/tiktok.ndjson, captured from the For You feed (no search keyword in
`source_url`, so only an item's text can match a term). One line in `--match-every` (default 100: 1%)
mentions a default term.

Runs, each in a fresh schema, each a child `python -m murmur import FILE` timed from start to exit (Python
start-up and migrations included) with its peak RSS from wait4():
  dump, default terms -> input lines/s;  TikTok, default terms -> input lines/s;
  TikTok --all -> stored posts/s;  with --all-dump also the dump --all -> stored posts/s.
Also the peak RSS of a child that only decompresses the dump (what the zstd window costs) and of the dump
import at a fifth of the lines (memory flat in the file's size).

Prints `murmur import: N lines/s (dump, default terms), M posts/s stored (--all), peak RSS X MB`, X the
largest peak of the import runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
START = 1735689600  # 2025-01-01T00:00:00Z
MONTH = 31 * 86400
WORDS = ("the app people moving new video feed watch like follow friends music dance food travel city "
         "phone update news post share story today week learn language culture game sport school work "
         "home family weather market review price design photo camera trip coffee movie book art").split()
MATCHING = ("Everyone is moving to RedNote", "小红书 is the new home", "A TikTok refugee says hello",
            "Lemon8 or Xiaohongshu?")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()


def submission(i: int, rng: random.Random, match: bool) -> dict[str, Any]:
    """An RS_ line: the fields of tests/fixtures/reddit_dump/RS_2025-01.ndjson plus the usual others."""
    sid = f"1i{i:07x}"
    sub = rng.choice(("AskReddit", "TikTokCringe", "news", "China", "technology", "movies", "travel"))
    title = (MATCHING[i % len(MATCHING)] + " " if match else "") + _sentence(rng, 8)
    created = START + i * MONTH // 1_000_000
    return {
        "_meta": {"retrieved_2nd_on": created + 36 * 3600}, "all_awardings": [], "allow_live_comments": False,
        "archived": False, "author": f"user_{rng.randrange(10**6)}", "author_flair_css_class": None,
        "author_flair_richtext": [], "author_flair_text": None, "author_flair_type": "text",
        "author_fullname": f"t2_{rng.randrange(36**6):x}", "author_patreon_flair": False, "author_premium": False,
        "awarders": [], "can_gild": True, "category": None, "content_categories": None, "contest_mode": False,
        "created_utc": created, "discussion_type": None, "distinguished": None, "domain": f"self.{sub}",
        "edited": False, "gilded": 0, "gildings": {}, "hidden": False, "hide_score": False, "id": sid,
        "is_created_from_ads_ui": False, "is_crosspostable": True, "is_meta": False, "is_original_content": False,
        "is_reddit_media_domain": False, "is_robot_indexable": True, "is_self": True, "is_video": False,
        "link_flair_background_color": "", "link_flair_css_class": None, "link_flair_richtext": [],
        "link_flair_text": None, "link_flair_text_color": "dark", "link_flair_type": "text", "locked": False,
        "media": None, "media_embed": {}, "media_only": False, "name": f"t3_{sid}", "no_follow": True,
        "num_comments": rng.randrange(500), "num_crossposts": 0, "over_18": False,
        "permalink": f"/r/{sub}/comments/{sid}/post_{i}/", "pinned": False, "pwls": 6, "quarantine": False,
        "removed_by_category": None, "retrieved_on": created + 60, "score": rng.randrange(-5, 5000),
        "secure_media": None, "secure_media_embed": {}, "selftext": _sentence(rng, rng.randrange(20, 60)),
        "send_replies": True, "spoiler": False, "stickied": False, "subreddit": sub,
        "subreddit_id": "t5_2qh1i", "subreddit_name_prefixed": f"r/{sub}", "subreddit_subscribers": 45000000,
        "subreddit_type": "public", "suggested_sort": None, "thumbnail": "self", "title": title,
        "total_awards_received": 0, "treatment_tags": [], "upvote_ratio": 0.97, "url":
        f"https://www.reddit.com/r/{sub}/comments/{sid}/post_{i}/", "view_count": None, "whitelist_status": "all_ads",
        "wls": 6,
    }


def _cdn(rng: random.Random, kind: str) -> str:
    token = "".join(rng.choice("abcdef0123456789") for _ in range(64))
    return (f"https://p16-sign-va.tiktokcdn.com/tos-maliva-p-0068/{token}~tplv-{kind}.jpeg?lk3s=a5d48078"
            f"&x-expires=1737500000&x-signature=abcdefghijklmnopqrstuvwxyz0123456789%3D")


def tiktok_item(i: int, rng: random.Random, match: bool) -> dict[str, Any]:
    """A Zeeschuimer line: the envelope and item of tests/fixtures/zeeschuimer/tiktok.ndjson, padded as a
    real item_list entry is (cover, play and bitrate URLs, music, author)."""
    vid = str(7459000000000000000 + i)
    desc = (MATCHING[i % len(MATCHING)] + " " if match else "") + _sentence(rng, 12) + " #fyp #viral"
    bitrates = [{"Bitrate": 500000 + k, "CodecType": "h264", "GearName": f"normal_{540 + k}_0", "QualityType": 20 + k,
                 "PlayAddr": {"DataSize": 3000000, "Height": 1024, "Width": 576, "Uri": f"v12044gd0000{vid}{k}",
                              "UrlKey": f"v12044gd0000_{vid}_h264_{540 + k}p",
                              "UrlList": [_cdn(rng, "play") for _ in range(3)]}} for k in range(3)]
    data = {
        "id": vid, "desc": desc, "createTime": START + i * MONTH // 100_000,
        "author": {"id": str(6800000000000000000 + rng.randrange(10**9)), "uniqueId": f"user.{rng.randrange(10**6)}",
                   "nickname": "Someone", "avatarThumb": _cdn(rng, "avt"), "avatarMedium": _cdn(rng, "avt"),
                   "avatarLarger": _cdn(rng, "avt"), "signature": _sentence(rng, 10), "verified": False,
                   "secUid": "MS4wLjABAAAA" + "".join(rng.choice("abcdefXYZ0123456789") for _ in range(64))},
        "authorStats": {"followerCount": rng.randrange(10**6), "followingCount": 100, "heart": 5000,
                        "diggCount": 5, "videoCount": 30},
        "stats": {"diggCount": rng.randrange(10**6), "commentCount": rng.randrange(10**4), "shareCount": 99,
                  "playCount": rng.randrange(10**7), "collectCount": 591},
        "statsV2": {"diggCount": "866123", "commentCount": "4321", "shareCount": "99", "playCount": "5412345",
                    "collectCount": "591"},
        "textExtra": [{"hashtagName": "fyp", "start": 0, "end": 4, "type": 1},
                      {"hashtagName": "viral", "start": 5, "end": 11, "type": 1}],
        "challenges": [{"id": "229207", "title": "fyp", "desc": "", "coverLarger": _cdn(rng, "cover")},
                       {"id": "30860", "title": "viral", "desc": "", "coverLarger": _cdn(rng, "cover")}],
        "locationCreated": rng.choice(("US", "GB", "CA", "AU")), "isAd": False, "textLanguage": "en",
        "music": {"id": str(7000000000000000000 + i), "title": "original sound", "authorName": "Someone",
                  "original": True, "playUrl": _cdn(rng, "music"), "coverLarge": _cdn(rng, "cover"),
                  "coverMedium": _cdn(rng, "cover"), "coverThumb": _cdn(rng, "cover"), "duration": 15},
        "video": {"id": vid, "height": 1024, "width": 576, "duration": 15, "ratio": "540p", "format": "mp4",
                  "cover": _cdn(rng, "cover"), "originCover": _cdn(rng, "cover"), "dynamicCover": _cdn(rng, "cover"),
                  "playAddr": _cdn(rng, "play"), "downloadAddr": _cdn(rng, "play"), "bitrateInfo": bitrates,
                  "subtitleInfos": [], "zoomCover": {str(k): _cdn(rng, "zoom") for k in (240, 480, 720, 960)}},
    }
    return {"id": 1, "nav_index": "1:1:0", "item_id": vid, "timestamp_collected": (START + MONTH) * 1000,
            "source_platform": "tiktok.com", "source_platform_url": "https://www.tiktok.com/foryou",
            "source_url": "https://www.tiktok.com/api/recommend/item_list/?aid=1988&count=9&WebIdLastTime=1737300000",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "last_updated": (START + MONTH) * 1000, "data": data}


def write_dump(path: Path, lines: int, match_every: int, level: int) -> str:
    """RS_ lines, zstd with a 2 GiB window and no content size; returns how it was compressed."""
    import zstandard

    window_log = min(31, zstandard.WINDOWLOG_MAX)
    params = zstandard.ZstdCompressionParameters.from_level(level, window_log=window_log, enable_ldm=True,
                                                           write_content_size=False)
    cctx = zstandard.ZstdCompressor(compression_params=params)
    rng = random.Random(1)
    size = 0
    with open(path, "wb") as raw, cctx.stream_writer(raw) as out:
        for i in range(lines):
            line = json.dumps(submission(i, rng, i % match_every == 0), separators=(",", ":")).encode() + b"\n"
            out.write(line)
            size += len(line)
    return (f"{size / 2**20:.0f} MB of NDJSON, {size / lines / 1024:.1f} KB a line; level {level}, window_log "
            f"{window_log}, long-distance matching, no content size")


def write_tiktok(path: Path, lines: int, match_every: int) -> None:
    rng = random.Random(2)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(lines):
            out.write(json.dumps(tiktok_item(i, rng, i % match_every == 0), ensure_ascii=False) + "\n")


@dataclass
class Run:
    label: str
    seconds: float
    peak_mb: float
    lines: int
    stored: int
    summary: str


# Linux carries the forking process's peak RSS over exec into the child's ru_maxrss, so the child is
# started from this small launcher, not from the benchmark (which holds hundreds of MB); the launcher
# writes the child's peak (KiB) to the pipe whose descriptor it is given first.
_LAUNCH = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout + stderr) of a child run to its end."""
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(write_end), *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=REPO, pass_fds=(write_end,))
        os.close(write_end)
        code = proc.wait()
        seconds = time.perf_counter() - started
        with os.fdopen(read_end, "rb") as pipe:
            peak_kib = int(pipe.read() or 0)
        log.seek(0)
        output = log.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}:\n{output[-3000:]}")
    return seconds, peak_kib / 1024, output  # ru_maxrss is in KiB on Linux


def import_run(label: str, path: Path, lines: int, server: str, schema: str, *extra: str) -> Run:
    import psycopg

    from bench.common import fresh_schema

    db = fresh_schema(server, schema)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MURMUR_")}
    env.update({"MURMUR_DATABASE_URL": db, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    seconds, peak, output = timed_child([sys.executable, "-m", "murmur", "import", str(path), *extra], env)
    with psycopg.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM posts").fetchone()[0]  # type: ignore[index]
    summary = next((line for line in reversed(output.splitlines()) if line.startswith(str(path))), output[-300:])
    run = Run(label, seconds, peak, lines, stored, summary.replace(str(path.parent) + "/", ""))
    print(f"{label:>28}: {lines} lines in {seconds:.1f}s = {lines / seconds:,.0f} lines/s, {stored} stored "
          f"= {stored / seconds:,.0f} posts/s, peak RSS {peak:.0f} MB\n{'':>30}{run.summary}", flush=True)
    return run


def window_cost(path: Path) -> float:
    """Peak RSS (MB) of a child that only streams the dump through the decompressor, less a bare child's."""
    read = ("import sys, zstandard\n"
            "r = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(open(sys.argv[1], 'rb'))\n"
            "while r.read(1 << 20): pass\n")
    _, bare, _ = timed_child([sys.executable, "-c", "import zstandard"], dict(os.environ))
    seconds, peak, _ = timed_child([sys.executable, "-c", read, str(path)], dict(os.environ))
    print(f"{'decompress only':>28}: {seconds:.1f}s, peak RSS {peak:.0f} MB ({peak - bare:.0f} MB over a bare "
          "interpreter: the decoder's window buffer, touched up to the smaller of the window and the data)")
    return peak - bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump-lines", type=int, default=500_000, help="submissions in the dump (default 500000)")
    parser.add_argument("--tiktok-lines", type=int, default=50_000, help="items in the capture (default 50000)")
    parser.add_argument("--match-every", type=int, default=100, help="one line in N mentions a term (default 100)")
    parser.add_argument("--level", type=int, default=3, help="zstd level of the dump (default 3)")
    parser.add_argument("--all-dump", action="store_true", help="also import the whole dump with --all (slow)")
    parser.add_argument("--database-url", default=os.environ.get("MURMUR_DATABASE_URL"),
                        help="a PostgreSQL to write to (default: an embedded one in a temp dir)")
    parser.add_argument("--workdir", type=Path, help="where the generated files go (default: a temp dir, removed)")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))  # run as a script: bench/ is not a package root
    from bench.common import server_url as bench_server

    work = args.workdir or Path(tempfile.mkdtemp(prefix="murmur-bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        dump, small, tiktok = work / "RS_2025-01.zst", work / "small" / "RS_2025-01.zst", work / "tiktok.ndjson"
        small.parent.mkdir(exist_ok=True)
        how = write_dump(dump, args.dump_lines, args.match_every, args.level)
        write_dump(small, args.dump_lines // 5, args.match_every, args.level)
        write_tiktok(tiktok, args.tiktok_lines, args.match_every)
        print(f"generated in {time.perf_counter() - started:.0f}s: {dump.name} {dump.stat().st_size / 2**20:.0f} MB "
              f"({how}), {tiktok.name} {tiktok.stat().st_size / 2**20:.0f} MB "
              f"({tiktok.stat().st_size / args.tiktok_lines / 1024:.1f} KB a line)", flush=True)
        server = bench_server(args.database_url)
        cost = window_cost(dump)
        runs = [
            import_run("dump, default terms", dump, args.dump_lines, server, "bench_import_dump"),
            import_run("dump/5, default terms", small, args.dump_lines // 5, server, "bench_import_small"),
            import_run("tiktok, default terms", tiktok, args.tiktok_lines, server, "bench_import_tiktok"),
            import_run("tiktok, --all", tiktok, args.tiktok_lines, server, "bench_import_tiktok_all", "--all"),
        ]
        if args.all_dump:
            runs.append(import_run("dump, --all", dump, args.dump_lines, server, "bench_import_dump_all", "--all"))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    dump_rate = runs[0].lines / runs[0].seconds
    stored_rate = min(r.stored / r.seconds for r in runs if r.label.endswith("--all"))
    peak = max(r.peak_mb for r in runs)
    print(f"peak RSS beyond the zstd window: {runs[0].peak_mb - cost:.0f} MB (dump), "
          f"{runs[1].peak_mb:.0f} MB at a fifth of the lines vs {runs[0].peak_mb:.0f} MB")
    print(f"murmur import: {dump_rate:,.0f} lines/s (dump, default terms), {stored_rate:,.0f} posts/s stored (--all), "
          f"peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
