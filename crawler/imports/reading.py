"""Reading import files as streams of records, whatever their size: plain, gzip or zstandard (told by the
file's first bytes, not its name), NDJSON lines, JSON arrays and CSV rows, each record with its line (or,
in a JSON array, its position) so bad input can be reported where it is.

Memory stays flat: one buffer of the file, one record at a time. The bytes read from disk are counted and
hashed on the way (`Tally`), for the progress bar and the sha256 recorded with each import.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

BUFFER = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Pushshift and Arctic Shift dumps are written with a long window (up to 2 GB); zstandard refuses a
# window above 128 MB unless told, and a decoder holds the whole window, so this is the memory such a
# file costs (the file's frame header says what it needs: most dumps declare 2 GB, smaller ones less).
ZSTD_MAX_WINDOW = 2**31
# CSV fields can be long (a post's text and its raw record); the csv module's default limit is 128 kB.
csv.field_size_limit(2**31 - 1)


class BadRecord:
    """A record that could not be read: `kind` is counted with its line ("not_json", "bad_csv", ...)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


class ReadError(Exception):
    """The file stopped making sense part-way (a truncated or corrupt compressed stream): what came before
    is imported, the rest is not."""


class Tally(io.RawIOBase):
    """The file as read from disk: counts and hashes every byte that passes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes += n
        return n or 0

    def drain(self) -> None:
        """Read what is left, so the hash covers the whole file."""
        while self.read(BUFFER):
            pass


@contextmanager
def open_stream(path: Path) -> Iterator[tuple[IO[bytes], Tally]]:
    """(the decompressed content, the tally of the file's bytes) of `path`."""
    with open(path, "rb") as raw:
        tally = Tally(raw)
        buffered = io.BufferedReader(tally, BUFFER)
        magic = buffered.peek(4)[:4]
        if magic.startswith(GZIP_MAGIC):
            yield gzip.GzipFile(fileobj=buffered, mode="rb"), tally  # type: ignore[misc]
        elif magic == ZSTD_MAGIC:
            import zstandard

            reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(
                buffered, read_across_frames=True)
            yield io.BufferedReader(reader, BUFFER), tally
        else:
            yield buffered, tally


def compression_error() -> tuple[type[BaseException], ...]:
    """The errors a truncated or corrupt compressed stream raises while it is read."""
    errors: list[type[BaseException]] = [EOFError, gzip.BadGzipFile, OSError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - a dependency
        pass
    return tuple(errors)


def first_bytes(path: Path, size: int = 65536) -> bytes:
    """The first `size` decompressed bytes of `path` (format sniffing)."""
    with open_stream(path) as (stream, _):
        try:
            return stream.read(size)
        except compression_error():
            return b""


def first_object(path: Path, lines: int = 20) -> dict[str, Any] | None:
    """The first JSON object among the first `lines` non-blank lines of an NDJSON file (a bad line or two at
    the top does not hide the format), or None."""
    with open_stream(path) as (stream, _):
        try:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    value = None
                if isinstance(value, dict):
                    return value
                lines -= 1
                if lines <= 0:
                    return None
        except compression_error():
            return None
    return None


def ndjson_records(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, object or BadRecord) for each non-blank line."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            yield number, BadRecord("not_json")


def csv_records(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, row as a dict) for each row; UTF-8 with or without a BOM (MediaCrawler writes utf-8-sig)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.DictReader(text)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield reader.line_num, BadRecord("bad_csv")
            continue
        yield reader.line_num, row


def json_array_records(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(position from 1, element) of a top-level JSON array, decoded one element at a time (the whole
    array is never held): MediaCrawler's older `.json` files are one array per file."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace")
    decoder = json.JSONDecoder()
    buf, pos, eof = "", 0, False
    chunk = BUFFER

    def fill() -> bool:
        nonlocal buf, pos, eof, chunk
        if eof:
            return False
        more = text.read(chunk)
        if not more:
            eof = True
            return False
        buf = buf[pos:] + more
        pos = 0
        return True

    def skip_space() -> str:
        """The next non-blank character ('' at the end of the file), `pos` at it."""
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not fill():
                return ""

    if skip_space() != "[":
        yield 1, BadRecord("not_json_array")
        return
    pos += 1
    position = 0
    while True:
        ch = skip_space()
        if ch == "]" or ch == "":
            if ch == "" and position:
                yield position + 1, BadRecord("not_json")  # the array never closes: a truncated file
            return
        if position:
            if ch != ",":
                yield position + 1, BadRecord("not_json")
                return
            pos += 1
            skip_space()
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except ValueError:
                value, end = None, -1
            # An element is whole once something follows it (a number cut at the buffer's end looks whole).
            if end != -1 and (end < len(buf) or eof):
                break
            chunk = min(chunk * 2, 64 * BUFFER)  # one large element: read more at a time
            if not fill():
                if end != -1:
                    break
                yield position + 1, BadRecord("not_json")
                return
        position += 1
        pos = end
        yield position, value
