"""int8 on the CPU: torch dynamic quantization of a loaded model's Linear layers, and the check that
decides whether it may be the default.

Dynamic quantization stores each Linear weight as int8 (one scale per output row) and quantizes the
activations batch by batch at run time: no calibration data, nothing to ship, done in ~0.1 s after
`load()`. On 2 CPU cores it scores about 1.6x faster than float32 (docs/benchmarks.md). It changes the
probabilities slightly, so a model run this way gets its own id (`<id>+int8`): stored scores say what
produced them, and the int8 model becomes a default only where `compare_on` says it loses at most
`MAX_MACRO_RECALL_DROP` of macro recall.
"""

from __future__ import annotations

import contextlib
import copy as copying
import dataclasses
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .model import ModelError, SentimentModel
from .scorer import Score, Scorer

INT8_SUFFIX = "+int8"
# int8 may replace float32 as the CPU default when val macro recall drops by at most this (0.5 points).
MAX_MACRO_RECALL_DROP = 0.005
_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")  # torch's quantized CPU kernels (qnnpack: ARM)


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    # torch >= 2.9 marks torch.ao.quantization (eager-mode quantize_dynamic) as deprecated in favour of
    # torchao, a separate package murmur does not depend on, and warns on every call, plus once more
    # for the qint8 weight tensors it creates. The API still works in the torch we support and the
    # warning names nothing a murmur user can act on, so it is silenced here, for these calls only.
    # If torch does remove it, `int8_available()` turns False and tests/test_quantize.py fails.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_channel", category=UserWarning)
        yield


def _quantization_api() -> Any:
    with _quiet_deprecation():
        from torch.ao import quantization

    return quantization if hasattr(quantization, "quantize_dynamic") else None


def int8_available(device: torch.device | str | None = None) -> bool:
    """Whether this torch can run int8 dynamic quantization (on `device`, when given: CPU only)."""
    if device is not None and torch.device(device).type != "cpu":
        return False
    try:
        api = _quantization_api()
    except ImportError:
        return False
    return api is not None and any(e in torch.backends.quantized.supported_engines for e in _ENGINES)


def int8_validated(sm: SentimentModel) -> bool:
    """Whether the built-in model's murmur.json records int8 within `MAX_MACRO_RECALL_DROP` of float32
    (its "int8" entry, from `compare_on` on val.tsv); False for any other model."""
    import json

    from .model import BUILTINS, MANIFEST

    for folder in BUILTINS.values():
        manifest = Path(folder) / MANIFEST
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if data.get("model_id") == sm.model_id:
                return bool(data.get("int8", {}).get("eligible"))
    return False


def wants_int8(sm: SentimentModel, quantize: str) -> bool:
    """model.quantize: "int8" always, "none" never, "auto" on the CPU where the model card validated it."""
    if quantize == "int8":
        return True
    return quantize == "auto" and int8_available(sm.device) and int8_validated(sm)


def is_int8(sm: SentimentModel) -> bool:
    """Whether `sm` already runs int8 Linear layers."""
    with _quiet_deprecation():
        from torch.ao.nn.quantized import dynamic as nnqd

    return any(isinstance(m, nnqd.Linear) for m in sm.model.modules())


def quantize_int8(sm: SentimentModel, *, copy: bool = False) -> SentimentModel:
    """`sm` with its Linear layers in int8 (CPU only), its id suffixed with `+int8`.

    The layers are swapped in place, so no second copy of the weights is ever in memory: use the
    returned model, not `sm`, afterwards. With `copy=True`, `sm` is left as it was (to compare the two).
    An already quantized model is returned as it is. Raises `ModelError` off the CPU or where this
    torch has no int8 kernels.
    """
    if sm.device.type != "cpu":
        raise ModelError(
            f"int8 quantization runs on the cpu only and the model is on {sm.device.type}; "
            'set model.quantize = "none" (or "auto") or model.device = "cpu"'
        )
    if not int8_available():
        raise ModelError(
            f"this torch {torch.__version__} has no int8 dynamic quantization "
            f"(quantized engines: {', '.join(torch.backends.quantized.supported_engines) or 'none'}); "
            'set model.quantize = "none" (or "auto")'
        )
    if is_int8(sm):
        return sm
    api = _quantization_api()
    model = copying.deepcopy(sm.model) if copy else sm.model
    # One scale per output row rather than per matrix: as fast here, and on val.tsv it kept macro recall
    # (MiniLM: 0.7204 vs float32 0.7197) where one scale per matrix lost 1.4 points.
    with _quiet_deprecation():
        model = api.quantize_dynamic(
            model, {torch.nn.Linear: api.per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    model.eval()
    return dataclasses.replace(sm, model_id=sm.model_id + INT8_SUFFIX, model=model)


def compare_on(tsv: Path | str, fp32_scorer: Scorer, int8_scorer: Scorer, *, limit: int = 0) -> dict[str, Any]:
    """float32 vs int8 on a labelled `label<TAB>text` file: each one's `evaluate()` result, the share of
    texts given the same label, the macro recall drop, and whether int8 may be the CPU default."""
    from .train import evaluate, read_tsv

    rows = read_tsv(Path(tsv))
    texts = [text for _, text in (rows[:limit] if limit > 0 else rows)]
    fp32 = fp32_scorer.score(texts)
    int8 = int8_scorer.score(texts)
    result_fp32 = evaluate(_Replay(fp32_scorer, texts, fp32), Path(tsv), limit=limit)
    result_int8 = evaluate(_Replay(int8_scorer, texts, int8), Path(tsv), limit=limit)
    drop = result_fp32["macro_recall"] - result_int8["macro_recall"]
    return {
        "file": str(tsv),
        "rows": len(texts),
        "fp32": result_fp32 | {"model": fp32_scorer.model.model_id},
        "int8": result_int8 | {"model": int8_scorer.model.model_id},
        "label_agreement": sum(a.label == b.label for a, b in zip(fp32, int8, strict=True)) / len(texts),
        "macro_recall_drop": drop,
        "int8_eligible": drop <= MAX_MACRO_RECALL_DROP,
    }


class _Replay(Scorer):
    """Scores computed already, handed to `evaluate()` so its metrics are reused without scoring twice."""

    def __init__(self, scorer: Scorer, texts: Sequence[str], scores: Sequence[Score]) -> None:
        super().__init__(scorer.model, max_tokens=scorer.max_tokens, max_length=scorer.max_length)
        self._texts = list(texts)
        self._scores = list(scores)

    def score(self, texts: Sequence[str]) -> list[Score]:
        if list(texts) != self._texts:
            raise ValueError("replayed scores are for other texts")
        return list(self._scores)
