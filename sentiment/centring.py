"""Per-language centring of e5 embeddings, so that search crosses languages.

multilingual-e5's embeddings of one language share a common direction: a query ranks its own language's
posts first, whatever they are about (measured in issue 14: a Chinese query about home cooking had no
English cooking post in its top 10). Subtracting each language's mean embedding and re-normalising removes
most of that (a known remedy for multilingual encoders), and leaves the subject to decide.

The means are fixed and versioned (MEANS_FILE, its README): computed once from labelled texts (English
from train.tsv, Chinese from zh_hotel.tsv and zh_shopping.tsv, a seeded sample of 2,000 each), shipped
with murmur, so stored vectors and queries are centred the same way on every machine. A language without
its own mean uses the mean of the means. New means are a new version: a new EMBEDDING_MODEL id.

    python -m murmur.sentiment.centring --lang en=train.tsv --lang zh=zh_hotel.tsv,zh_shopping.tsv
"""

from __future__ import annotations

import argparse
import csv
import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .embeddings import Embedder

MEANS_DIR = Path(__file__).resolve().parent / "models" / "e5-centring"
MEANS_FILE = MEANS_DIR / "means.safetensors"
VERSION = 1
FALLBACK = "*"  # the key of the mean of the means
SAMPLE = 2000
SEED = 14


@dataclass(frozen=True)
class Centring:
    """Language -> mean embedding (float32, 384); `FALLBACK` for every other language (and None)."""

    means: Mapping[str, np.ndarray]

    def mean(self, lang: str | None) -> np.ndarray:
        return self.means.get(lang or "", self.means[FALLBACK])

    def apply(self, vectors: np.ndarray, langs: Sequence[str | None]) -> np.ndarray:
        """Each row minus its language's mean, back to unit length."""
        centred = vectors - np.stack([self.mean(lang) for lang in langs]) if len(langs) else vectors
        norms = np.linalg.norm(centred, axis=1, keepdims=True)
        return (centred / np.maximum(norms, 1e-12)).astype(np.float32)


@functools.cache
def load_centring(path: Path = MEANS_FILE) -> Centring:
    """The shipped means (read once per process)."""
    from safetensors.numpy import load_file

    means = {name: value.astype(np.float32) for name, value in load_file(str(path)).items()}
    if FALLBACK not in means:
        means[FALLBACK] = np.mean(np.stack(list(means.values())), axis=0)
    return Centring(means)


def read_texts(files: Sequence[Path]) -> list[str]:
    """The `text` column of labelled TSV files (label<TAB>text[<TAB>...], a header row)."""
    texts: list[str] = []
    for file in files:
        with file.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                text = (row.get("text") or "").lstrip("\ufeff").strip()
                if text:
                    texts.append(text)
    return texts


def compute_means(files: Mapping[str, Sequence[Path]], embedder: Embedder, *, sample: int = SAMPLE,
                  seed: int = SEED) -> dict[str, np.ndarray]:
    """Per language, the mean plain e5 embedding of a seeded sample of `sample` texts from its files; plus
    FALLBACK, the mean of the means."""
    means: dict[str, np.ndarray] = {}
    for lang, paths in sorted(files.items()):
        texts = read_texts(paths)
        chosen = random.Random(seed).sample(texts, min(sample, len(texts)))
        means[lang] = embedder.embed(chosen).mean(axis=0).astype(np.float32)
    means[FALLBACK] = np.mean(np.stack(list(means.values())), axis=0).astype(np.float32)
    return means


def save_means(means: Mapping[str, np.ndarray], path: Path = MEANS_FILE, *, sample: int = SAMPLE,
               seed: int = SEED) -> None:
    """Write `means` (safetensors, with the version, sample size and seed in its metadata)."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in means.items()}, str(path),
              metadata={"version": str(VERSION), "sample": str(sample), "seed": str(seed)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m murmur.sentiment.centring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", action="append", required=True, metavar="LANG=FILE[,FILE]",
                        help="a language and its labelled TSV files (repeatable)")
    parser.add_argument("--out", type=Path, default=MEANS_FILE, help=f"where to write (default {MEANS_FILE})")
    parser.add_argument("--sample", type=int, default=SAMPLE, help=f"texts per language (default {SAMPLE})")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    from .embeddings import Embedder

    files = {}
    for item in args.lang:
        lang, _, names = item.partition("=")
        files[lang] = [Path(n).expanduser() for n in names.split(",") if n]
    means = compute_means(files, Embedder.load(args.device), sample=args.sample)
    save_means(means, args.out, sample=args.sample)
    for lang, mean in means.items():
        print(f"{lang}: |mean| = {np.linalg.norm(mean):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
