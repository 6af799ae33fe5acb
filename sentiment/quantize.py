"""int8 on the CPU: a loaded model's Linear layers in int8 (one scale per output row, activations
quantized batch by batch at run time), the calibration that keeps that accurate, and the check that
decides whether it may be the default.

Plain dynamic quantization gives all of a layer's inputs one scale per batch. The inputs of a transformer's
feed-forward output projection (GELU outputs) carry a few channels 5-60x larger than the rest, so that
one scale crushes the others: murmur-e5-sentiment lost 2.8 points of val macro recall that way. Smoothing
(SmoothQuant, Xiao et al. 2023) divides those input channels by s and multiplies the weight's columns by
s, which changes nothing in float32 and moves the range into the weights, which have a scale per row.
s = max|x|^alpha / max|w|^(1-alpha) per channel, from activations recorded on a few hundred training
texts (`calibrate`); `fit_int8` picks alpha on val.tsv and writes the scales into the model directory
(`int8.safetensors`, 74 KB for e5) with the figures in murmur.json. Where the CPU has VNNI (AVX512-VNNI,
AVX-VNNI, AMX) activations use all 8 bits; elsewhere 7 (`reduce_range`), which older x86 kernels need
to avoid overflow.

A model run this way gets its own id (`<id>+int8`): stored scores say what produced them, and the int8
model becomes a default only where `fit_int8` measured it within `MAX_MACRO_RECALL_DROP` of float32.
"""

from __future__ import annotations

import contextlib
import copy as copying
import dataclasses
import functools
import json
import random
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .cards import with_int8_section
from .data import Row, read_tsv, split_holdout, texts_of
from .evaluate import evaluate, evaluate_rows
from .model import MANIFEST, ModelError, SentimentModel, load
from .scorer import Score, Scorer

INT8_SUFFIX = "+int8"
INT8_FILE = "int8.safetensors"  # per-layer smoothing scales, in the model directory
# int8 may replace float32 as the CPU default when val macro recall drops by at most this (0.5 points).
MAX_MACRO_RECALL_DROP = 0.005
# Linear layers whose inputs are smoothed: a BERT-style layer's feed-forward output projection
# ("...layer.3.output.dense"; not "...attention.output.dense").
SMOOTHED = re.compile(r"layer\.\d+\.output\.dense$")
ALPHAS = (0.5, 0.75, 0.9)
_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")  # torch's quantized CPU kernels (qnnpack: ARM)


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    # torch >= 2.9 marks torch.ao.quantization as deprecated in favour of torchao, a separate package
    # murmur does not depend on, and warns for the qint8 tensors murmur creates. The kernels still
    # work in the torch we support and the warning names nothing a murmur user can act on, so it is
    # silenced here, for these calls only. If torch does remove them, `int8_available()` turns False
    # and tests/test_quantize.py fails.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_channel", category=UserWarning)
        yield


def int8_available(device: torch.device | str | None = None) -> bool:
    """Whether this torch can run int8 dynamic quantization (on `device`, when given: CPU only)."""
    if device is not None and torch.device(device).type != "cpu":
        return False
    ops = getattr(torch.ops, "quantized", None)
    try:
        has_ops = ops is not None and hasattr(ops, "linear_dynamic") and hasattr(ops, "linear_prepack")
    except RuntimeError:
        has_ops = False
    return has_ops and any(e in torch.backends.quantized.supported_engines for e in _ENGINES)


@functools.cache
def full_range_activations() -> bool:
    """True where the CPU multiplies u8 x s8 without 16-bit overflow (VNNI or AMX): all 8 bits are safe."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    except OSError:
        pass
    return False  # unknown CPU (or not Linux): 7-bit activations, always safe


class Int8Linear(torch.nn.Module):
    """A Linear layer in int8: weights with one scale per output row, activations quantized per batch;
    `smooth` (per input channel) is folded into the weights and divided out of the input."""

    def __init__(self, linear: torch.nn.Linear, *, smooth: torch.Tensor | None = None,
                 reduce_range: bool | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        if smooth is not None:
            smooth = smooth.detach().float().reshape(-1)
            if smooth.numel() != self.in_features:
                raise ModelError(f"smoothing scales for {self.in_features} inputs have {smooth.numel()}; "
                                 "re-run `murmur model int8`")
            weight = weight * smooth
            self.register_buffer("inverse_smooth", 1.0 / smooth)
        else:
            self.inverse_smooth = None
        scales = (weight.abs().amax(dim=1) / 127.5).clamp(min=1e-8).double()  # symmetric, per row
        zeros = torch.zeros(self.out_features, dtype=torch.long)
        with _quiet_deprecation():
            qweight = torch.quantize_per_channel(weight, scales, zeros, 0, torch.qint8)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.reduce_range = (not full_range_activations()) if reduce_range is None else reduce_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        if self.inverse_smooth is not None:
            x = x * self.inverse_smooth
        return torch.ops.quantized.linear_dynamic(x, self._packed, reduce_range=self.reduce_range).to(dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"smoothed={self.inverse_smooth is not None}, reduce_range={self.reduce_range}")


def int8_validated(sm: SentimentModel) -> bool:
    """Whether the model's murmur.json records int8 within `MAX_MACRO_RECALL_DROP` of float32 (its "int8"
    entry, written by `fit_int8` from val.tsv) on a CPU of the kind it was measured on; False for a model
    with no such record."""
    entry = (_manifest(sm) or {}).get("int8", {})
    # Validated with 8-bit activations, it says nothing about a CPU that can only use 7.
    same_cpu_kind = not entry.get("full_range_activations", False) or full_range_activations()
    return bool(entry.get("eligible")) and same_cpu_kind


def wants_int8(sm: SentimentModel, quantize: str) -> bool:
    """model.quantize: "int8" always, "none" never, "auto" on the CPU where the model card validated it."""
    if quantize == "int8":
        return True
    return quantize == "auto" and int8_available(sm.device) and int8_validated(sm)


def is_int8(sm: SentimentModel) -> bool:
    """Whether `sm` already runs int8 Linear layers."""
    return any(isinstance(m, Int8Linear) for m in sm.model.modules())


def quantize_int8(sm: SentimentModel, *, copy: bool = False,
                  smoothing: dict[str, torch.Tensor] | None = None) -> SentimentModel:
    """`sm` with its Linear layers (not the classification head) in int8, its id suffixed with `+int8`.

    Smoothing scales come from `smoothing`, else from the model directory's int8.safetensors when it
    has one. The layers are swapped in place: use the returned model, not `sm`, afterwards. With
    `copy=True`, `sm` is left as it was (to compare the two). An already quantized model is returned as
    it is. Raises `ModelError` off the CPU or where this torch has no int8 kernels.
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
    if smoothing is None:
        smoothing = load_smoothing(sm)
    model = copying.deepcopy(sm.model) if copy else sm.model
    head = _head(model)
    # Names first, then one layer at a time: holding the modules in a list would keep every float32
    # weight alive until the last layer is done (a peak of both copies).
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head]
    for full in names:
        parent_name, _, name = full.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, name, Int8Linear(getattr(parent, name), smooth=smoothing.get(full)))
    model.eval()
    return dataclasses.replace(sm, model_id=sm.model_id + INT8_SUFFIX, model=model)


def _head(model: torch.nn.Module) -> torch.nn.Module | None:
    # The classification head stays float32: it is tiny, and its outputs are the probabilities.
    for attr in ("classifier", "score"):
        head = getattr(model, attr, None)
        if isinstance(head, torch.nn.Module):
            out_proj = getattr(head, "out_proj", None)
            return out_proj if isinstance(out_proj, torch.nn.Linear) else head
    return None


def load_smoothing(sm: SentimentModel) -> dict[str, torch.Tensor]:
    """The smoothing scales in the model directory's int8.safetensors ({} when there are none)."""
    if sm.path is None or not (sm.path / INT8_FILE).is_file():
        return {}
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(sm.path / INT8_FILE)))
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"cannot read {sm.path / INT8_FILE} ({exc}); re-run `murmur model int8`") from None


def calibrate(sm: SentimentModel, texts: Sequence[str], *, alpha: float, max_length: int = 128) -> dict[
    str, torch.Tensor
]:
    """Smoothing scales for the layers `SMOOTHED` names, from their inputs' largest values on `texts`."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be between 0 and 1")
    peaks: dict[str, torch.Tensor] = {}
    layers = {n: m for n, m in sm.model.named_modules() if isinstance(m, torch.nn.Linear) and SMOOTHED.search(n)}

    def record(name: str) -> Any:
        def hook(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().float().abs().reshape(-1, args[0].shape[-1]).amax(dim=0)
            peaks[name] = torch.maximum(peaks[name], x) if name in peaks else x

        return hook

    hooks = [m.register_forward_pre_hook(record(n)) for n, m in layers.items()]
    try:
        Scorer(sm, max_length=max_length).score(list(texts))
    finally:
        for h in hooks:
            h.remove()
    scales = {}
    for name, peak in peaks.items():
        w = layers[name].weight.detach().float().abs().amax(dim=0)  # per input channel
        scales[name] = (peak.clamp(min=1e-5) ** alpha / w.clamp(min=1e-5) ** (1 - alpha)).contiguous()
    return scales


def compare_on(tsv: Path | str, fp32_scorer: Scorer, int8_scorer: Scorer, *, limit: int = 0) -> dict[str, Any]:
    """float32 vs int8 on a labelled `label<TAB>text` file: each one's `evaluate()` result, the share of
    texts given the same label, the macro recall drop, and whether int8 may be the CPU default."""
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


def _manifest(sm: SentimentModel) -> dict[str, Any] | None:
    if sm.path is None or not (sm.path / MANIFEST).is_file():
        return None
    try:
        data = json.loads((sm.path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # A manifest describes the model it was written with; an int8 record for another id says nothing.
    return data if data.get("model_id") == sm.model_id else None


def calibration_texts(files: Sequence[Path], rows: int, seed: int, *, zh_holdout: float = 0.0,
                      exclude: Sequence[Path] = ()) -> list[str]:
    """A seeded sample of `rows` texts from each file; a two-label file (Chinese reviews) first loses the
    held-out share training set aside (`zh_holdout`, same seed), so no held-out text is seen."""
    keep_out = texts_of(exclude)
    texts: list[str] = []
    for path in files:
        data = [r for r in read_tsv(Path(path)) if r[1] not in keep_out]
        if zh_holdout and not any(label == "neutral" for label, _ in data):
            data, _ = split_holdout(data, zh_holdout, seed, keep_out)
        rng = random.Random(seed)
        texts.extend(t for _, t in rng.sample(data, min(rows, len(data))))
    return texts


def fit_int8(
    model_dir: Path,
    calibration: Sequence[str],
    val_file: Path,
    *,
    alphas: Sequence[float] = ALPHAS,
    zh_rows: Sequence[Row] = (),
    progress: Any = None,
) -> dict[str, Any]:
    """Calibrate int8 for the model in `model_dir`, choose alpha on `val_file`, and write the scales
    (int8.safetensors) and the figures (murmur.json's "int8" entry: eligible when within
    `MAX_MACRO_RECALL_DROP` of float32). Returns that entry."""
    import datetime as dt

    from safetensors.torch import save_file

    say = progress or (lambda _msg: None)
    sm = load(str(model_dir), device="cpu")
    if sm.path is None or not (sm.path / MANIFEST).is_file():
        raise ModelError(f"{model_dir} has no {MANIFEST}; int8 calibration is recorded in murmur's model directories")
    val_rows = read_tsv(Path(val_file))
    max_length = int((_manifest(sm) or {}).get("max_length", 128))
    fp32 = Scorer(sm, max_length=max_length)
    fp32_val = evaluate_rows(fp32, val_rows)
    fp32_zh = evaluate_rows(fp32, zh_rows) if zh_rows else None
    say(f"float32: val macro recall {fp32_val['macro_recall']:.4f}")
    tried: dict[str, float] = {}
    best: dict[str, Any] | None = None  # only the best candidate's int8 copy of the model is kept alive
    for alpha in (None, *alphas):
        scales = calibrate(sm, calibration, alpha=alpha, max_length=max_length) if alpha is not None else {}
        int8 = Scorer(quantize_int8(sm, copy=True, smoothing=scales), max_length=max_length)
        result = evaluate_rows(int8, val_rows)
        say(f"int8 alpha={alpha}: val macro recall {result['macro_recall']:.4f}")
        tried["none" if alpha is None else str(alpha)] = round(result["macro_recall"], 4)
        # The best macro recall; on a tie, no smoothing (nothing to ship), else the first tried.
        rank = (result["macro_recall"], alpha is None)
        if best is None or rank > (best["val"]["macro_recall"], best["alpha"] is None):
            best = {"alpha": alpha, "scales": scales, "val": result, "scorer": int8}
    assert best is not None
    drop = fp32_val["macro_recall"] - best["val"]["macro_recall"]
    entry: dict[str, Any] = {
        "scheme": "int8 Linear layers (head excepted), one scale per output row; activations quantized per "
                  "batch, 8-bit on VNNI/AMX CPUs, else 7-bit",
        "smoothing": {"layers": SMOOTHED.pattern, "alpha": best["alpha"], "file": INT8_FILE,
                      "calibration_texts": len(calibration)} if best["alpha"] is not None else None,
        "alphas_tried": tried,
        "val_macro_recall": round(best["val"]["macro_recall"], 4),
        "val_accuracy": round(best["val"]["accuracy"], 4),
        "fp32_val_macro_recall": round(fp32_val["macro_recall"], 4),
        "fp32_val_accuracy": round(fp32_val["accuracy"], 4),
        "macro_recall_drop_points": round(100 * drop, 2),
        "eligible": drop <= MAX_MACRO_RECALL_DROP,
        "full_range_activations": full_range_activations(),
        # Activation scales are per batch, so int8 figures move with how texts are batched.
        "max_tokens": fp32.max_tokens,
        "measured_by": "murmur model int8 (murmur.sentiment.quantize.fit_int8) on " + Path(val_file).name,
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
    }
    if zh_rows and fp32_zh is not None:
        zh = evaluate_rows(best["scorer"], zh_rows)
        entry.update(zh_heldout_accuracy=round(zh["accuracy"], 4),
                     fp32_zh_heldout_accuracy=round(fp32_zh["accuracy"], 4), zh_heldout_rows=len(zh_rows))
    if best["scales"]:
        save_file({k: v.contiguous() for k, v in best["scales"].items()}, str(sm.path / INT8_FILE))
    elif (sm.path / INT8_FILE).exists():
        (sm.path / INT8_FILE).unlink()
    manifest = json.loads((sm.path / MANIFEST).read_text(encoding="utf-8"))
    manifest["int8"] = entry
    (sm.path / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    card = sm.path / "MODEL_CARD.md"
    if card.is_file():
        card.write_text(with_int8_section(card.read_text(encoding="utf-8"), entry), encoding="utf-8")
    return entry


def fit_int8_from_files(
    model_dir: Path,
    *,
    calibrate_files: Sequence[Path],
    val_file: Path,
    zh_file: Path | None = None,
    rows: int = 256,
    seed: int | None = None,
    alphas: Sequence[float] = ALPHAS,
    exclude: Sequence[Path] = (),
    progress: Any = None,
) -> dict[str, Any]:
    """`fit_int8` with its texts drawn as training draws them: `rows` seeded texts from each calibration
    file, the Chinese file's held-out part (the model's recipe: seed and share) kept out of calibration and
    used to report Chinese accuracy, the texts of the `exclude` files (the tests' samples) never used."""
    recipe = json.loads((Path(model_dir) / MANIFEST).read_text(encoding="utf-8")).get("recipe", {})
    seed = int(recipe.get("seed", 13)) if seed is None else seed
    holdout = float(recipe.get("zh_holdout", 0.15))
    texts = calibration_texts(calibrate_files, rows, seed, zh_holdout=holdout, exclude=exclude)
    zh_rows: list[Row] = []
    if zh_file is not None:
        keep_out = texts_of(exclude)
        zh_rows = split_holdout(read_tsv(Path(zh_file)), holdout, seed, keep_out)[1]
    if progress:
        progress(f"int8 for {Path(model_dir).name}: {len(texts)} calibration texts from "
                 f"{', '.join(Path(f).name for f in calibrate_files)}; alpha chosen on {Path(val_file).name} "
                 f"among none, {', '.join(map(str, alphas))}")
    return fit_int8(Path(model_dir), texts, Path(val_file), alphas=alphas, zh_rows=zh_rows, progress=progress)
